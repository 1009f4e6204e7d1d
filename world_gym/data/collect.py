"""``world-gym collect pusht``: record gym-pusht episodes of a behaviour mix into a LeRobotDataset.

An episode is ``env.reset(seed)`` followed by steps of one policy until success or 300 steps, at
gym-pusht's native 10 Hz with 96 x 96 RGB frames (row layout: :mod:`world_gym.data.lerobot_io`).

Seeds: the split fixes the seed range, disjoint by construction (``train`` from 100000 up,
``heldout`` 0..9999, ``stress`` 10000..99999), and episode ``i`` of a split always gets the same
seed, behaviour and noise level (seed ``start + i`` in ``train`` and ``heldout``), so a re-run with
the same arguments continues where the last one stopped and never stores a seed twice.
``--episodes`` is the total wanted in the root, not the number to add.

Behaviours (``behavior`` column): 0 ``expert`` (scripted pusher on privileged state), 1 ``noisy``
(the same with a noise level from ``--noise-levels``, stored in ``noise_level``), 2 ``play`` (smooth
random motions), 3 ``policy``: rollouts of learned policies given by ``--policy`` (any spec of
``world-gym evaluate``, e.g. ``zoo:runs/zoo``; several policies take the ``policy`` episodes in
turn, and ``meta/world_gym_policies.json`` records which seed each one played). Failures of learned
policies are what a world model trained on expert data cannot imagine (IRASim, HMA), so their
rollouts belong in its training data. These four are the **training families** of the shipped
Push-T models. The **stress families** of :mod:`world_gym.envs.pusht.behaviours` (codes 10-16:
``sweep``, ``circle``, ``side_switch``, ``wall_push``, ``near_miss``, ``bounds``, ``park``) are
built unlike them, to measure a world model off its training behaviours. ``--mix`` also takes the
groups ``training`` (the default mix), ``broad`` (the broad training families of
:mod:`world_gym.envs.pusht.broad_play`, codes 4-9, equally; ``fast_play``, code 17, is named on its
own) and ``stress`` (the stress families,
equally), and names
without a weight (weight 1). More behaviours: :func:`register_behavior`. Episode ``i`` takes its
behaviour from the mix by a golden-ratio sequence, so every prefix of the episode list follows the
mix closely; in the ``stress`` split the mix's families play in turn instead (weights only say
which), each on its own seed block (:func:`world_gym.envs.pusht.behaviours.family_seeds`), whatever
the other families.

Parallelism: ``--workers N`` runs episodes in N processes that send finished episodes to the one
writer process (the parent); ``--workers 1`` runs everything in the parent.

    world-gym collect pusht --root data/pusht/train --episodes 300 --split train \\
        --mix expert=0.3,noisy=0.4,play=0.3 --workers 2
    world-gym collect pusht --root data/pusht/zoo_rollouts --episodes 60 --split train \\
        --mix policy=1 --policy zoo:runs/zoo,only=random+bc_steps1000+act_steps600
    world-gym collect pusht --root data/pusht/stress --episodes 56 --split stress --mix stress
    world-gym collect pusht --root data/pusht/broad --episodes 3000 --split train --mix broad --no-images

``--no-images`` stores no frames (gym-pusht runs without rendering): the pose-state and pose-token
dynamics train on the state, action and pose columns alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from world_gym.envs.pusht.behaviours import (
    BROAD_FAMILIES,
    STRESS_FAMILIES,
    STRESS_SEEDS,
    family_seeds,
    make_stress_policy,
)

SPLITS: dict[str, tuple[int, int]] = {
    "train": (100_000, 2**31 - 1), "heldout": (0, 10_000), "stress": STRESS_SEEDS,
}
"""Seed range ``[start, stop)`` of each split; the ranges do not overlap."""

DEFAULT_MIX = "expert=0.3,noisy=0.4,play=0.3"
DEFAULT_NOISE_LEVELS = (5.0, 15.0, 35.0)


@dataclass(frozen=True)
class Behavior:
    """A way of acting in gym-pusht: its code in the ``behavior`` column and its policy factory."""

    code: int
    make_policy: Callable[[float], Any]
    noisy: bool = False


def _expert(noise: float) -> Any:
    from world_gym.policies.pusht_expert import PushTExpert

    return PushTExpert(noise=noise)


def _play(noise: float) -> Any:
    from world_gym.policies.pusht_expert import PushTPlay

    return PushTPlay()


def _broad(name: str, noise: float) -> Any:
    from world_gym.envs.pusht.broad_play import make_broad_policy

    return make_broad_policy(name)


def _needs_policy(noise: float) -> Any:
    raise ValueError("the 'policy' behaviour plays the policies given by --policy (collect(policy=...))")


BEHAVIORS: dict[str, Behavior] = {
    "expert": Behavior(0, _expert),
    "noisy": Behavior(1, _expert, noisy=True),
    "play": Behavior(2, _play),
    "policy": Behavior(3, _needs_policy),
    **{name: Behavior(code, functools.partial(_broad, name)) for name, code in BROAD_FAMILIES.items()},
    **{name: Behavior(code, functools.partial(make_stress_policy, name))
       for name, code in STRESS_FAMILIES.items()},
}
# ``broad``: the six broad families of the first broad collection (codes 4-9; ``fast_play`` apart)
MIX_GROUPS = {"training": DEFAULT_MIX, "broad": ",".join(n for n, c in BROAD_FAMILIES.items() if 4 <= c <= 9),
              "stress": ",".join(STRESS_FAMILIES)}


def register_behavior(name: str, behavior: Behavior) -> None:
    """Add a behaviour to the mix vocabulary (e.g. ``Behavior(3, load_my_policy)``).

    The factory must be importable by worker processes (a module-level function).
    """
    if name in BEHAVIORS or behavior.code in {b.code for b in BEHAVIORS.values()}:
        raise ValueError(f"behaviour {name!r} or code {behavior.code} already registered")
    BEHAVIORS[name] = behavior


@dataclass(frozen=True)
class EpisodeSpec:
    """What to record: gym-pusht reset seed, behaviour name and noise level; for the ``policy``
    behaviour, the ``--policy`` spec text and which of its policies plays."""

    seed: int
    behavior: str
    noise: float = 0.0
    policy: str = ""
    policy_index: int = 0


def parse_mix(text: str) -> dict[str, float]:
    """``"expert=0.3,noisy=0.4,play=0.3"`` -> normalized weights, checked against :data:`BEHAVIORS`;
    a name without a weight weighs 1, a :data:`MIX_GROUPS` name stands for its mix."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name in MIX_GROUPS:
            for member, share in parse_mix(MIX_GROUPS[name]).items():
                mix[member] = mix.get(member, 0.0) + share * float(weight or 1)
            continue
        if name not in BEHAVIORS:
            raise ValueError(f"unknown behaviour {name!r} in mix; known: {sorted(BEHAVIORS)}")
        mix[name] = float(weight or 1)
    total = sum(mix.values())
    if not mix or total <= 0 or min(mix.values()) < 0:
        raise ValueError(f"mix {text!r} needs non-negative weights with a positive sum")
    return {name: w / total for name, w in mix.items()}


def plan_episodes(
    split: str, episodes: int, mix: dict[str, float], noise_levels: tuple[float, ...] = DEFAULT_NOISE_LEVELS,
    policy: str = "", num_policies: int = 0,
) -> list[EpisodeSpec]:
    """The first ``episodes`` episodes of a split: seed, behaviour and noise of each, deterministically.

    Args:
        split: a key of :data:`SPLITS`.
        episodes: how many.
        mix: behaviour weights (as :func:`parse_mix` returns).
        noise_levels: levels the ``noisy`` behaviours cycle through.
        policy: spec text of the ``policy`` behaviour's policies.
        num_policies: how many policies ``policy`` names; the ``policy`` episodes cycle through them.

    Returns:
        One spec per episode, seeds ``start, start + 1, ...``; in the ``stress`` split, the mix's
        families in turn, each on its own seeds (:func:`~world_gym.envs.pusht.behaviours.family_seeds`).
    """
    if split == "stress":
        names = [n for n, w in mix.items() if w > 0]
        seeds = {n: family_seeds(n, len(range(i, episodes, len(names)))) for i, n in enumerate(names)}
        return [EpisodeSpec(seeds[names[i % len(names)]][i // len(names)], names[i % len(names)])
                for i in range(episodes)]
    start, stop = SPLITS[split]
    if episodes > stop - start:
        raise ValueError(f"split {split!r} has only {stop - start} seeds, asked for {episodes}")
    names = list(mix)
    edges = np.cumsum([mix[n] for n in names])
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    if mix.get("policy", 0) > 0 and (not policy or num_policies < 1):
        raise ValueError("the mix has 'policy' episodes: give the policies to play (--policy SPEC)")
    specs, noisy_count, policy_count = [], 0, 0
    for i in range(episodes):
        u = ((i + 0.5) * golden) % 1.0
        name = names[min(int(np.searchsorted(edges, u, side="right")), len(names) - 1)]
        noise, text, index = 0.0, "", 0
        if BEHAVIORS[name].noisy:
            noise = float(noise_levels[noisy_count % len(noise_levels)])
            noisy_count += 1
        if name == "policy":
            text, index = policy, policy_count % num_policies
            policy_count += 1
        specs.append(EpisodeSpec(start + i, name, noise, text, index))
    return specs


def record_episode(env: Any, policy: Any, spec: EpisodeSpec, images: bool = True) -> dict[str, np.ndarray]:
    """Run one gym-pusht episode and return its rows (columns of :data:`~world_gym.envs.pusht.ground_truth.PUSHT_FEATURES`).

    Args:
        env: a pixel-observation gym-pusht env (``make_pusht_env()``), time limit included.
        policy: a Policy reading gym-pusht's ``info``.
        spec: seed, behaviour and noise of the episode.
        images: keep the frames (``observation.image``); False: the state columns only.

    Returns:
        Column -> array with one row per frame (steps + 1 rows; see ``lerobot_io``).
    """
    from world_gym.envs.pusht.ground_truth import coverage

    obs, info = env.reset(seed=spec.seed)
    policy.reset(seed=spec.seed)
    frames, agent, poses, covs = [obs], [info["pos_agent"]], [info["block_pose"]], [coverage(info["block_pose"])]
    actions, rewards, successes = [], [], []
    queue: list[np.ndarray] = []  # the rest of an action chunk, played before the policy is asked again
    terminated = truncated = False
    while not (terminated or truncated):
        if not queue:
            chunk = np.asarray(policy.act(obs, info), dtype=np.float32)
            if chunk.shape[-1:] != (2,) or chunk.ndim not in (1, 2) or chunk.size == 0:
                raise ValueError(f"policy returned shape {chunk.shape}; "
                                 "Push-T takes (2,) targets or (k, 2) chunks")
            queue = list(chunk.reshape(-1, 2))
        action = queue.pop(0)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        successes.append(info["is_success"])
        if images:
            frames.append(obs)
        agent.append(info["pos_agent"])
        poses.append(info["block_pose"])
        covs.append(info["coverage"])
    # The final frame's row: the agent holds its last target; next.* describe that frame itself.
    actions.append(actions[-1])
    rewards.append(rewards[-1])
    successes.append(successes[-1])
    n = len(agent)
    block_pose = np.asarray(poses, dtype=np.float64)
    block_pose[:, 2] = np.mod(block_pose[:, 2], 2 * np.pi)  # as gym-pusht's state observation
    done = np.zeros((n, 1), dtype=bool)
    done[-1] = True
    code = BEHAVIORS[spec.behavior].code
    return {
        **({"observation.image": np.asarray(frames, dtype=np.uint8)} if images else {}),
        "observation.state": np.asarray(agent, dtype=np.float32),
        "action": np.asarray(actions, dtype=np.float32),
        "observation.block_pose": block_pose.astype(np.float32),
        "observation.coverage": np.asarray(covs, dtype=np.float32).reshape(n, 1),
        "next.reward": np.asarray(rewards, dtype=np.float32).reshape(n, 1),
        "next.success": np.asarray(successes, dtype=bool).reshape(n, 1),
        "next.done": done,
        "behavior": np.full((n, 1), code, dtype=np.int64),
        "noise_level": np.full((n, 1), spec.noise, dtype=np.float32),
        "episode_seed": np.full((n, 1), spec.seed, dtype=np.int64),
    }


_WORKER: dict[str, Any] = {}


def _run_spec(spec: EpisodeSpec, max_steps: int = 300, images: bool = True) -> dict[str, np.ndarray]:
    """Record one episode with this process's env and cached policies (worker entry point); without
    ``images`` the scripted behaviours play gym-pusht's state observation (no rendering)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    obs_type = "pixels" if images or spec.policy else "state"
    if ("env", max_steps, obs_type) not in _WORKER:
        from world_gym.envs.pusht.ground_truth import make_pusht_env

        _WORKER["env", max_steps, obs_type] = make_pusht_env(obs_type=obs_type, max_episode_steps=max_steps)
    key = (spec.behavior, spec.noise, spec.policy, spec.policy_index)
    if key not in _WORKER:
        if spec.policy:
            _WORKER[key] = _policy_specs(spec.policy)[spec.policy_index].make()
        else:
            _WORKER[key] = BEHAVIORS[spec.behavior].make_policy(spec.noise)
    return record_episode(_WORKER["env", max_steps, obs_type], _WORKER[key], spec, images)


def _policy_specs(text: str) -> list[Any]:
    """The :class:`~world_gym.policies.base.PolicySpec` list of a ``--policy`` text, loaded once
    per process."""
    if ("specs", text) not in _WORKER:
        from world_gym.policies.zoo import parse_policy_spec

        _WORKER["specs", text] = parse_policy_spec(text)
    return _WORKER["specs", text]


def _episodes(specs: list[EpisodeSpec], workers: int, max_steps: int,
              images: bool = True) -> Iterator[dict[str, np.ndarray]]:
    run = functools.partial(_run_spec, max_steps=max_steps, images=images)
    if workers <= 1:
        yield from map(run, specs)
        return
    # spawn: the parent has torch/lerobot loaded, which forked children should not inherit.
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(run, specs, chunksize=1)


def collect(
    root: str | Path,
    episodes: int,
    split: str = "train",
    mix: str | dict[str, float] = DEFAULT_MIX,
    noise_levels: tuple[float, ...] = DEFAULT_NOISE_LEVELS,
    workers: int = 1,
    checkpoint_every: int = 10,
    progress: bool = True,
    max_steps: int = 300,
    policy: str = "",
    images: bool = True,
) -> dict[str, Any]:
    """Collect until ``root`` holds the first ``episodes`` episodes of ``split`` (resuming if present).

    Args:
        root: LeRobotDataset root (created if absent).
        episodes: total episodes wanted in the root.
        split: ``"train"``, ``"heldout"`` or ``"stress"`` (:data:`SPLITS`).
        mix: behaviour weights, as text or dict.
        noise_levels: noise levels (pixels) of the ``noisy`` behaviour.
        workers: processes that run episodes.
        checkpoint_every: episodes between crash-safe checkpoints.
        progress: show a tqdm bar.
        max_steps: episode time limit (gym-pusht's is 300; shorter only for tests and smoke runs).
        policy: policies of the ``policy`` behaviour, as ``world-gym evaluate --policy`` takes them
            (``zoo:DIR[,only=a+b]``, ``cnn_bc:PATH``, ``lerobot:PATH``, ``random`` ...).
        images: store the frames; False: state, action and pose columns only (what the pose-state
            and pose-token dynamics train on), about 1/1000 of the disk; a root keeps one kind.

    Returns:
        Summary of this run: episodes and frames added, per-behaviour counts and success, wall time.
    """
    from world_gym.data.lerobot_io import EpisodeWriter, recover, stored_seeds
    from world_gym.envs.pusht.ground_truth import DATASET_REPO_ID, FPS, PUSHT_FEATURES, ROBOT_TYPE, TASK

    weights = parse_mix(mix) if isinstance(mix, str) else mix
    names = [p.name for p in _policy_specs(policy)] if policy else []
    plan = plan_episodes(split, episodes, weights, noise_levels, policy, len(names))
    root = Path(root)
    recover(root)
    start, stop = SPLITS[split]
    done = set(stored_seeds(root)) if root.exists() else set()
    foreign = sorted(s for s in done if not start <= s < stop)
    if foreign:
        raise ValueError(f"{root} holds seeds outside split {split!r} (e.g. {foreign[:3]}); use another root")
    todo = [spec for spec in plan if spec.seed not in done]
    log = _read_policy_log(root, policy) if names else None  # a root holds one --policy's rollouts
    stats: dict[str, list[int]] = {}
    by_seed = {spec.seed: spec for spec in plan}
    frames, t0 = 0, time.perf_counter()
    features = PUSHT_FEATURES if images else {k: v for k, v in PUSHT_FEATURES.items() if k != "observation.image"}
    with EpisodeWriter(root, checkpoint_every=checkpoint_every, repo_id=DATASET_REPO_ID, features=features,
                       fps=FPS, robot_type=ROBOT_TYPE, task=TASK) as writer:
        bar = tqdm(total=len(plan), initial=len(plan) - len(todo), desc=f"collect {split}", unit="ep",
                   disable=not progress, mininterval=5.0)
        for episode in _episodes(todo, workers, max_steps, images):
            writer.add_episode(episode)
            name = next(n for n, b in BEHAVIORS.items() if b.code == int(episode["behavior"][0, 0]))
            if name == "policy":
                name = f"policy:{names[by_seed[int(episode['episode_seed'][0, 0])].policy_index]}"
            stats.setdefault(name, []).append(int(episode["next.success"][-1, 0]))
            frames += len(episode["action"])
            bar.update(1)
            bar.set_postfix(frames=frames)
        bar.close()
        total = writer.num_episodes
    if log is not None:
        log["seeds"].update({str(spec.seed): names[spec.policy_index] for spec in plan
                             if spec.behavior == "policy"})
        _write_policy_log(root, log)
    wall = time.perf_counter() - t0
    return {
        "root": str(root),
        "split": split,
        "episodes_added": sum(len(v) for v in stats.values()),
        "episodes_total": total,
        "frames_added": frames,
        "per_behavior": {n: {"episodes": len(v), "success_rate": float(np.mean(v))} for n, v in stats.items()},
        "wall_s": round(wall, 1),
        "frames_per_s": round(frames / wall, 1) if wall > 0 else None,
    }


def _read_policy_log(root: Path, policy: str) -> dict[str, Any]:
    """``root``'s record of which policy played each ``policy`` seed (empty for a new root),
    after checking that its earlier rollouts came from the same ``--policy``."""
    from world_gym.data.lerobot_io import POLICY_LOG

    path = root / POLICY_LOG
    log = json.loads(path.read_text()) if path.exists() else {"policy": policy, "seeds": {}}
    if log["policy"] != policy:
        raise ValueError(f"{root} was collected with --policy {log['policy']!r}, not {policy!r}; "
                         "use another root")
    return log


def _write_policy_log(root: Path, log: dict[str, Any]) -> None:
    from world_gym.data.lerobot_io import POLICY_LOG

    (root / POLICY_LOG).parent.mkdir(parents=True, exist_ok=True)
    (root / POLICY_LOG).write_text(json.dumps(log, indent=1) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``collect`` to the ``world-gym`` CLI."""
    p = subparsers.add_parser("collect", help="record ground-truth episodes into a local LeRobotDataset")
    p.add_argument("env", choices=["pusht"], help="ground-truth simulator")
    p.add_argument("--root", required=True, help="dataset root, e.g. data/pusht/train")
    p.add_argument("--episodes", type=int, required=True, help="total episodes wanted in the root")
    p.add_argument("--split", choices=sorted(SPLITS), default="train", help="seed range (disjoint per split)")
    p.add_argument("--mix", default=None, help=f"behaviour weights or groups {sorted(MIX_GROUPS)} (default: "
                   f"'stress' in the stress split, else {DEFAULT_MIX}); known: {sorted(BEHAVIORS)}")
    p.add_argument("--noise-levels", default=",".join(str(x) for x in DEFAULT_NOISE_LEVELS),
                   help="noise levels (pixels) of the noisy expert, comma separated")
    p.add_argument("--workers", type=int, default=1, help="episode processes (1: in the writer process)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="episodes between crash-safe checkpoints")
    p.add_argument("--max-steps", type=int, default=300, help="episode time limit (gym-pusht: 300)")
    p.add_argument("--policy", default="", help="policies of the 'policy' behaviour, as `world-gym evaluate "
                   "--policy` takes them, e.g. zoo:runs/zoo,only=random+bc_steps1000")
    p.add_argument("--no-images", dest="images", action="store_false",
                   help="store the state, action and pose columns only, no frames (what pose dynamics train on)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``world-gym collect``; prints the run's summary as JSON."""
    levels = tuple(float(x) for x in args.noise_levels.split(",") if x.strip())
    mix = args.mix or ("stress" if args.split == "stress" else DEFAULT_MIX)
    from world_gym.data.lerobot_io import dataset_summary

    summary = collect(
        args.root, args.episodes, args.split, mix, levels, args.workers, args.checkpoint_every,
        max_steps=args.max_steps, policy=args.policy, images=args.images,
    )
    summary["dataset"] = dataset_summary(args.root)  # behaviour keys: "<behavior code>@<noise level>"
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``collect`` alone: ``python -m world_gym.data.collect pusht --root ... --episodes ...``."""
    parser = argparse.ArgumentParser(prog="world-gym")
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["collect", *(argv if argv is not None else __import__("sys").argv[1:])]))


if __name__ == "__main__":
    raise SystemExit(main())
