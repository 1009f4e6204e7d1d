"""How far gym-pusht itself departs from its own episodes when started a little off: the fidelity a
perfect Push-T dynamics model could reach from an imperfect start.

    python benchmarks/pusht_sensitivity.py --data data/pusht/stress168
    python benchmarks/pusht_sensitivity.py --data data/pusht/heldout50 --families ""

Each episode of the dataset (it needs the ``episode_seed`` column; ``behavior`` groups them by
family) is played again in gym-pusht from its reset, with its recorded actions, in several ways:

- ``exact replay``: ``reset(seed=episode_seed)``, as it was collected (block IoU 1.000: the check that
  the replay is the episode);
- ``placed at the true pose``: the agent and the block put at the reset's poses (``info``), the agent
  at rest: what a model that reads the start frame without error starts from. pymunk keeps state no
  frame shows (contact impulses carried from step to step), so even this departs;
- ``+D px`` / ``+A deg``: the block placed ``D`` pixels of 512 off in a random direction, or turned by
  ``A`` degrees either way (a start frame read with that error).

Scored as the fidelity benchmark's long protocol scores a model: block IoU of each frame against the
recorded one (``world_gym.envs.pusht.metrics.block_iou``), averaged over the first 15 and the first
``--horizon`` steps of each episode, then over the episodes of a family; each family weighs the same
in the mean. Prints a markdown table and, last, one JSON line.

    python benchmarks/pusht_sensitivity.py --data data/pusht/stress168 --one-step 300 --model pusht-pose-state

``--one-step N`` asks instead how well one step can be predicted from what frames show: for ``N``
frames a family in which the block moves, gym-pusht is restarted from the recorded poses, the agent's
velocity recovered exactly from its last two positions and target
(:func:`~world_gym.envs.pusht.behaviours.agent_velocity`), the block at rest (pymunk's carried contact
impulses and the block's speed at the frame's last physics substep are in no frame), and stepped
once with the recorded action; the block's position error (px of 512) and turn error (degrees)
against the recorded next frame are what gym-pusht's own physics makes of a frame's poses. ``--model`` scores a
pose-state world model's step (``pusht-pose-state``) on the same frames from the same true poses.
Needs no frames (``world-gym collect --no-images`` data serves).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from world_gym.data.episodes import load_episodes
from world_gym.envs.pusht import metrics

#: ``(label, block offset in pixels of 512, block turn in degrees)``; ``None``: the exact replay
DEFAULT_STARTS = "exact,0:0,0.01:0,0.1:0,0.5:0,0:0.1,0:0.3"


def parse_starts(text: str) -> list[tuple[str, float | None, float | None]]:
    """``"exact,0:0,0.5:0,0:0.3"`` -> ``[(label, px, deg), ...]`` (``px`` None for the exact replay)."""
    starts = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item == "exact":
            starts.append(("exact replay", None, None))
            continue
        try:
            px, deg = (float(v) for v in item.split(":"))
        except ValueError:
            raise SystemExit(f"--starts: {item!r} is neither 'exact' nor PX:DEG") from None
        if px < 0 or deg < 0:
            raise SystemExit(f"--starts: {item!r}: offsets are sizes (>= 0)")
        label = ("placed at the true pose" if px == 0 and deg == 0 else
                 " ".join(part for part in (f"+{px:g} px" if px else "", f"+{deg:g} deg" if deg else "") if part))
        starts.append((label, px, deg))
    if not starts:
        raise SystemExit("--starts: nothing to run")
    return starts


def play(env: Any, sim: Any, seed: int, actions: np.ndarray, px: float | None, deg: float | None,
         rng: np.random.Generator) -> np.ndarray:
    """Frames ``(T, 96, 96, 3)`` of ``actions`` from the episode's reset, exact or placed off."""
    from world_gym.planning.imagination import Start

    frame, info = env.reset(seed=seed)
    if px is None:
        return np.stack([env.step(a)[0] for a in actions])
    direction = rng.normal(size=2)
    offset = direction / np.linalg.norm(direction) * px
    block = np.asarray(info["block_pose"], np.float64) + np.array([*offset, np.deg2rad(deg) * rng.choice([-1, 1])])
    start = Start(frame=frame, payload=(np.asarray(info["pos_agent"], np.float64), np.zeros(2), block))
    return sim.imagine(start, actions[None].astype(np.float32), decode="all").frames[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/pusht/stress", help="LeRobotDataset with an episode_seed column")
    parser.add_argument("--families", default=None,
                        help="comma-separated behaviour families ('' for all episodes as one group; "
                             "default: every family of the behavior column)")
    parser.add_argument("--episodes", type=int, default=None, help="at most this many episodes a family")
    parser.add_argument("--horizon", type=int, default=150, help="steps scored (episodes shorter are skipped)")
    parser.add_argument("--starts", default=DEFAULT_STARTS, help="'exact' or PX:DEG entries, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the offsets' directions and signs")
    parser.add_argument("--one-step", type=int, default=0, metavar="N",
                        help="instead: single steps from N recorded frames a family where the block moves")
    parser.add_argument("--model", default=None, help="with --one-step: a pose-state world model to score beside")
    args = parser.parse_args(argv)
    if args.model and not args.one_step:
        raise SystemExit("--model scores single steps: give --one-step N")
    if args.one_step < 0:
        raise SystemExit(f"--one-step must be >= 0, got {args.one_step}")
    if args.one_step:
        return one_step(args)
    starts = parse_starts(args.starts)

    from world_gym.envs.pusht.behaviours import family_name
    from world_gym.envs.pusht.ground_truth import make_pusht_env
    from world_gym.envs.pusht.simulator_model import PushTSimulator

    by_family = args.families != ""
    data = load_episodes(args.data, ("episode_seed", *(("behavior",) if by_family else ())), progress=False)
    seeds = np.asarray(data.extras["episode_seed"]).reshape(-1)
    groups: dict[str, list[np.ndarray]] = {}
    for rows in data.episode_rows():
        if len(rows) - 1 < args.horizon:
            continue
        name = family_name(np.asarray(data.extras["behavior"]).reshape(-1)[rows[0]]) if by_family else "all"
        groups.setdefault(name, []).append(rows)
    wanted = [n for n in (args.families or "").split(",") if n]
    if wanted:
        missing = sorted(set(wanted) - set(groups))
        if missing:
            raise SystemExit(f"no episodes of {missing} with {args.horizon} steps; present: {sorted(groups)}")
        groups = {n: groups[n] for n in wanted}
    if not groups:
        raise SystemExit(f"no episode in {args.data} has {args.horizon} steps")
    groups = {n: eps[: args.episodes] for n, eps in groups.items()}

    env, sim, rng = make_pusht_env(), PushTSimulator(), np.random.default_rng(args.seed)
    scores: dict[str, dict[str, dict[str, float]]] = {label: {} for label, _, _ in starts}
    for name, eps in groups.items():
        per_start: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in starts}
        for rows in eps:
            actions = data.actions[rows[: args.horizon]]
            true = data.frames[rows[1 : args.horizon + 1]]
            for label, px, deg in starts:
                frames = play(env, sim, int(seeds[rows[0]]), actions, px, deg, rng)
                iou = np.array([metrics.block_iou(p, t) for p, t in zip(frames, true)], np.float64)
                per_start[label].append((float(iou[:15].mean()), float(iou.mean())))
        for label, values in per_start.items():
            arr = np.array(values)
            scores[label][name] = {"short": float(arr[:, 0].mean()), "long": float(arr[:, 1].mean()),
                                   "episodes": len(values)}
        print(f"{name}: {len(eps)} episodes", flush=True)

    names = list(groups)
    head = "| start | " + " | ".join(names) + (" | mean |" if len(names) > 1 else " |")
    lines = [f"block IoU over 15 / {args.horizon} steps, gym-pusht against its own episodes ({args.data})", "",
             head, "| --- |" + " ---: |" * (len(names) + (len(names) > 1))]
    for label, per in scores.items():
        cells = [f"{per[n]['short']:.3f} / {per[n]['long']:.3f}" for n in names]
        if len(names) > 1:
            per["mean"] = {k: float(np.mean([per[n][k] for n in names])) for k in ("short", "long")}
            cells.append(f"{per['mean']['short']:.3f} / {per['mean']['long']:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    report = {"benchmark": "pusht_sensitivity", "data": str(args.data), "horizon": args.horizon,
              "seed": args.seed, "episodes": {n: len(e) for n, e in groups.items()}, "scores": scores}
    print(json.dumps(report))
    return report


def one_step(args: argparse.Namespace) -> dict[str, Any]:
    """``--one-step``: gym-pusht (and ``--model``) one step from recorded poses, per family."""
    import torch

    from world_gym.envs.pusht.behaviours import agent_velocity, family_name
    from world_gym.envs.pusht.contact import tokens_to_pixels
    from world_gym.envs.pusht.pose_state import pose_to_state, states_to_tokens
    from world_gym.envs.pusht.simulator_model import PushTSimulator
    from world_gym.envs.pusht.train_pose import POSE_COLUMNS, pose_rows
    from world_gym.planning.imagination import Start

    by_family = args.families != ""
    data = load_episodes(args.data, (*POSE_COLUMNS, *(("behavior",) if by_family else ())), progress=False,
                         images=False)
    agent = np.asarray(data.extras[POSE_COLUMNS[0]], np.float64)[:, :2]
    block = np.asarray(data.extras[POSE_COLUMNS[1]], np.float64)
    actions = np.asarray(data.actions, np.float64)
    episode = np.asarray(data.episode_index)
    names = (np.array([family_name(c) for c in np.asarray(data.extras["behavior"]).reshape(-1)]) if by_family
             else np.full(len(episode), "all"))
    # frame t with t - 1 and t + 1 in its episode, the block moving from t to t + 1 (by 0.1 px or more)
    t = np.arange(1, len(episode) - 1)
    moves = np.linalg.norm(block[t + 1, :2] - block[t, :2], axis=1)
    t = t[(episode[t - 1] == episode[t]) & (episode[t + 1] == episode[t]) & (moves >= 0.1)]
    wanted = [n for n in (args.families or "").split(",") if n] or list(dict.fromkeys(names[t]))
    rng = np.random.default_rng(args.seed)
    picked = {}
    for name in wanted:
        rows = t[names[t] == name]
        if len(rows) == 0:
            raise SystemExit(f"no frame of {name!r} in {args.data} has the block moving")
        picked[name] = np.sort(rng.choice(rows, min(args.one_step, len(rows)), replace=False))

    def errors(pred: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        position = np.linalg.norm(pred[:, 2:4] - block[rows + 1, :2], axis=1)
        turn = np.degrees(np.abs((pred[:, 4] - block[rows + 1, 2] + np.pi) % (2 * np.pi) - np.pi))
        agent_miss = np.linalg.norm(pred[:, :2] - agent[rows + 1], axis=1)
        return {"position": float(position.mean()), "position_p90": float(np.percentile(position, 90)),
                "turn": float(turn.mean()), "agent": float(agent_miss.mean())}

    sim = PushTSimulator()
    model = None
    if args.model:
        from world_gym.world_model import WorldModel

        model = WorldModel.from_pretrained(args.model)
        if model.config.backbone != "PoseState":  # its state: agent x, y, block x, y in [-1, 1], angle
            raise SystemExit(f"--model {args.model}: a {model.config.backbone!r} backbone, not a pose-state step")
    methods = ["gym-pusht restarted", *([str(args.model)] if model is not None else [])]
    scores: dict[str, dict[str, Any]] = {m: {} for m in methods}

    def to_pixels(tokens: torch.Tensor, scale: float) -> np.ndarray:
        """Pose tokens ``(N, 6, 1, 1)`` -> ``(N, 5)``: the agent's position and the block's pose
        (pixels of 512, radians)."""
        return torch.cat(tokens_to_pixels(tokens, scale), -1).double().numpy()

    if model is not None:
        states = pose_to_state(torch.from_numpy(pose_rows(data.extras)))  # what the model's step reads
        normalized = torch.from_numpy(model.action_spec.normalize(actions.astype(np.float32)))
    for name, rows in picked.items():
        tokens = []
        for r in rows:
            velocity = agent_velocity(agent[r - 1], agent[r], actions[r - 1])
            start = Start(frame=np.zeros((96, 96, 3), np.uint8), payload=(agent[r], velocity, block[r]))
            tokens.append(sim.imagine(start, actions[r][None, None].astype(np.float32)).latents[0, 0])
        restarted = to_pixels(torch.stack(tokens), sim.token_scale)
        motion = np.linalg.norm(block[rows + 1, :2] - block[rows, :2], axis=1)
        scores[methods[0]][name] = {**errors(restarted, rows), "frames": len(rows), "block_motion": float(motion.mean())}
        if model is not None:
            with torch.no_grad():
                pred = model.backbone.step(states[rows - 1], states[rows], normalized[rows - 1], normalized[rows])
            predicted = to_pixels(states_to_tokens(pred, 1.0), 1.0)
            scores[methods[1]][name] = {**errors(predicted, rows), "frames": len(rows)}
        print(f"{name}: {len(rows)} frames", flush=True)

    lines = [f"one step from recorded poses ({args.data}): block position error (px of 512) / turn error (degrees)", "",
             "| family | frames | block motion | " + " | ".join(methods) + " |",
             "| --- | ---: | ---: |" + " ---: |" * len(methods)]
    for name in picked:
        first = scores[methods[0]][name]
        cells = [f"{scores[m][name]['position']:.2f} / {scores[m][name]['turn']:.2f}" for m in methods]
        lines.append(f"| {name} | {first['frames']} | {first['block_motion']:.2f} | " + " | ".join(cells) + " |")
    if len(picked) > 1:
        for m in methods:
            scores[m]["mean"] = {k: float(np.mean([scores[m][n][k] for n in picked])) for k in ("position", "turn")}
        lines.append("| mean | | | " + " | ".join(f"{scores[m]['mean']['position']:.2f} / {scores[m]['mean']['turn']:.2f}"
                                                 for m in methods) + " |")
    print("\n".join(lines))
    report = {"benchmark": "pusht_sensitivity", "protocol": "one_step", "data": str(args.data), "seed": args.seed,
              "frames": {n: len(r) for n, r in picked.items()}, "scores": scores}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
