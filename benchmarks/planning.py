"""Planning in gym-pusht: what ranking, CEM and MPPI buy over a base policy, in a world model and
with the real simulator as the model.

    python benchmarks/planning.py --starts 50 --out outputs/planning_bench
    python benchmarks/planning.py --starts 4 --max-steps 40 --arms base,rank16-wm,rank16-sim  # smoke run

Every arm acts in gym-pusht (``gym_pusht/PushT-v0``, 96 x 96 frames, 300 steps at most) from the same
held-out starts: gym-pusht reset seeds ``seed_start .. seed_start + starts - 1`` (the Push-T training
data uses seeds from 100000 up; ``world_gym.data.collect.SPLITS``). The base policy is
:class:`~world_gym.policies.pusht_expert_proposal.PushTExpertProposal` (the noisy scripted expert
reading the frame, memoryless, ``--noise``); the ranking planner draws its chunks as candidates.
``-wm`` arms imagine in ``--model`` (a world model env id), ``-sim`` arms in gym-pusht itself (the
true state copied into each candidate's simulator); both score candidates with Push-T's latent
coverage objective. ``rank1`` is the base policy by construction (one candidate is executed
without imagining it). CEM and MPPI plan with no policy prior.

Per arm: success rate (Clopper-Pearson 95% interval), mean max coverage (bootstrap 95% interval),
imagined frames and seconds per decision. Results are cached per (arm, start) in ``--out``, so an
interrupted run resumes, and several processes may run disjoint ``--arms`` into one ``--out``.
Prints a markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world_gym.envs.pusht.ground_truth import make_pusht_env
from world_gym.evaluation.metrics import bootstrap_ci, clopper_pearson
from world_gym.planning import Planner, make_planner, resolve_model
from world_gym.policies.base import RandomPolicy
from world_gym.policies.pusht_expert_proposal import PushTExpertProposal
from world_gym.reward_models.pusht_latent_coverage import PushTLatentCoverage

ARMS = ("random", "base", "rank4-wm", "rank16-wm", "rank64-wm", "rank4-sim", "rank16-sim", "rank64-sim",
        "cem-wm", "cem-sim", "mppi-wm", "mppi-sim")
logger = logging.getLogger("planning_benchmark")


def build_policy(arm: str, args: argparse.Namespace, models: dict[str, Any]) -> Any:
    """The policy of an arm (a planner, the base proposal alone, or random targets)."""
    from gymnasium import spaces

    if arm == "random":
        return RandomPolicy(spaces.Box(0.0, 512.0, (args.execute, 2), np.float32))
    proposal = PushTExpertProposal(noise=args.noise, chunk_size=args.horizon)
    if arm == "base":
        return proposal
    kind, side = arm.split("-")
    if side not in models:
        models[side] = resolve_model(args.model if side == "wm" else "gym-pusht",
                                     **({"ensemble": args.ensemble} if side == "wm" and args.ensemble else {}))[0]
    model = models[side]
    objective = PushTLatentCoverage(shaping=args.shaping)
    common = {"horizon": args.horizon, "execute": args.execute, "objective": objective, "reduce": args.reduce}
    if kind.startswith("rank"):
        return make_planner("ranking", model, proposal=proposal, num_samples=int(kind[4:]), **common)
    return make_planner(kind, model, num_samples=args.samples, iterations=args.iterations, **common)


def run_episode(policy: Any, env: Any, seed: int, max_steps: int, execute: int) -> dict[str, Any]:
    """One episode in gym-pusht: max coverage, success, decisions, imagined frames, planning time."""
    frame, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    best, steps, decisions, seconds, frames, success = 0.0, 0, 0, 0.0, 0, False
    while steps < max_steps and not success:
        t0 = time.perf_counter()
        chunk = np.asarray(policy.act(frame, info), np.float32).reshape(-1, 2)[:execute]
        seconds += time.perf_counter() - t0
        decisions += 1
        if isinstance(policy, Planner):
            frames += policy.last_decision.imagined_frames
        for action in chunk:
            frame, _, terminated, _, info = env.step(action)
            steps += 1
            best = max(best, float(info["coverage"]))
            success = success or bool(terminated)
            if success or steps >= max_steps:
                break
    return {"seed": seed, "max_coverage": best, "success": success, "steps": steps, "decisions": decisions,
            "seconds": seconds, "imagined_frames": frames}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cov = np.array([r["max_coverage"] for r in rows])
    wins = int(sum(r["success"] for r in rows))
    decisions = max(1, sum(r["decisions"] for r in rows))
    lo, hi = clopper_pearson(wins, len(rows))
    clo, chi = bootstrap_ci(cov, np.mean, seed=0) if len(rows) > 1 else (float(cov[0]), float(cov[0]))
    return {"starts": len(rows), "successes": wins, "success_rate": wins / len(rows), "success_ci": [lo, hi],
            "mean_max_coverage": float(cov.mean()), "coverage_ci": [float(clo), float(chi)],
            "imagined_frames_per_decision": sum(r["imagined_frames"] for r in rows) / decisions,
            "seconds_per_decision": sum(r["seconds"] for r in rows) / decisions}


SPEED_SETTINGS = (("model's sampler (ensemble 8, 4 frames per pass)", {"ensemble": 8}),
                  ("ensemble=1", {"ensemble": 1}),
                  ("ensemble=1, frames_per_pass=16 (planning default)", {"ensemble": 1, "frames_per_pass": 16}))


def speed(args: argparse.Namespace, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Seconds of one ranking decision with K = 64 candidates x 16 actions on one thread: the frame's
    encoding, the batched imagination, and the whole decision (with the proposal's 64 draws)."""
    from world_gym.planning import Imagination

    env = make_pusht_env()
    frame, info = env.reset(seed=args.seed_start)
    actions = np.stack([PushTExpertProposal(args.noise, chunk_size=16).act(frame) for _ in range(64)])
    wm = resolve_model(args.model)[0].model
    models = [(f"{args.model}, {name}", Imagination(wm, **kw)) for name, kw in SPEED_SETTINGS]
    models += [("PoseState-PushT-v0", resolve_model("PoseState-PushT-v0")[0]), ("gym-pusht", resolve_model("gym-pusht")[0])]
    out = {}
    for name, model in models:
        planner = make_planner("ranking", model, proposal=PushTExpertProposal(args.noise, chunk_size=16),
                               num_samples=64, horizon=16, objective=PushTLatentCoverage(shaping=args.shaping))
        planner.act(frame, info)  # warm-up
        times = {"encode": [], "imagine": [], "decision": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            start = model.start(frame, info)
            t1 = time.perf_counter()
            model.imagine(start, actions)
            t2 = time.perf_counter()
            planner.act(frame, info)
            times["encode"].append(t1 - t0)
            times["imagine"].append(t2 - t1)
            times["decision"].append(time.perf_counter() - t2)
        out[name] = {k: round(float(np.median(v)), 3) for k, v in times.items()}
        logger.info("K=64 x 16, %s: %s", name, out[name])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=50, help="held-out gym-pusht starts")
    parser.add_argument("--seed-start", type=int, default=0, help="first start seed (held-out: 0..9999)")
    parser.add_argument("--max-steps", type=int, default=300, help="episode limit (gym-pusht's is 300)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    parser.add_argument("--model", default="IRASim-PushT-v0", help="world model (env id or directory) of -wm arms")
    parser.add_argument("--ensemble", type=int, default=None, help="clips averaged per candidate (default: the env's planning setting)")
    parser.add_argument("--noise", type=float, default=35.0, help="the base policy's noise")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--execute", type=int, default=8)
    parser.add_argument("--samples", type=int, default=64, help="CEM/MPPI candidates per round")
    parser.add_argument("--iterations", type=int, default=3, help="CEM/MPPI rounds per decision")
    parser.add_argument("--shaping", type=float, default=5.0, help="the objective's corner-distance weight")
    parser.add_argument("--reduce", default="final", choices=["final", "sum", "max"])
    parser.add_argument("--speed", action="store_true", help="also time a K=64 x 16 ranking decision")
    parser.add_argument("--out", default="outputs/planning_bench", help="cache folder (one jsonl per arm)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: the table of the starts every arm has finished in the cache")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {list(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {k: getattr(args, k) for k in ("max_steps", "model", "ensemble", "noise", "horizon", "execute",
                                            "samples", "iterations", "shaping", "reduce")}
    seeds = list(range(args.seed_start, args.seed_start + args.starts))
    env, models, policies, done = make_pusht_env(), {}, {}, {}
    for arm in arms:
        path = out / f"{arm}.jsonl"
        cached = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        done[arm] = {r["seed"]: r for r in cached if r.get("config") == config and r["seed"] in seeds}
    # starts in the outer loop: an interrupted run has the same starts in every arm
    for seed in tqdm(seeds, desc="starts", disable=None if not args.report_only else True):
        for arm in arms:
            if seed in done[arm] or args.report_only:
                continue
            if arm not in policies:
                policies[arm] = build_policy(arm, args, models)
            row = {**run_episode(policies[arm], env, seed, args.max_steps, args.execute), "config": config}
            done[arm][seed] = row
            with (out / f"{arm}.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            logger.info("%s seed %d: max coverage %.3f, success %s, %.2f s/decision", arm, seed, row["max_coverage"],
                        row["success"], row["seconds"] / max(1, row["decisions"]))
    common = [s for s in seeds if all(s in done[arm] for arm in arms)]
    if not common:
        raise SystemExit("no start has finished in every arm yet")
    results = {arm: summarize([done[arm][s] for s in common]) for arm in arms}
    seeds = common
    base = results.get("base", {}).get("mean_max_coverage")
    print(f"\nPush-T planning, {len(seeds)} held-out starts (seeds {seeds[0]}..{seeds[-1]}), {args.max_steps} steps, "
          f"world model {args.model}, horizon {args.horizon}, execute {args.execute}, objective coverage "
          f"(shaping {args.shaping}, {args.reduce}), CPU threads 1 ({os.cpu_count()} cores)\n")
    print("| arm | success | mean max coverage | vs base | imagined frames / decision | s / decision |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for arm, r in results.items():
        gain = f"{r['mean_max_coverage'] - base:+.3f}" if base is not None else "-"
        print(f"| {arm} | {r['successes']}/{r['starts']} [{r['success_ci'][0]:.2f}, {r['success_ci'][1]:.2f}] | "
              f"{r['mean_max_coverage']:.3f} [{r['coverage_ci'][0]:.3f}, {r['coverage_ci'][1]:.3f}] | {gain} | "
              f"{r['imagined_frames_per_decision']:.0f} | {r['seconds_per_decision']:.2f} |")
    report: dict[str, Any] = {"benchmark": "planning", "starts": len(seeds), "seeds": seeds, **config,
                              "arms": results}
    if args.speed:
        report["seconds_k64_h16"] = speed(args)
        print("\n| one ranking decision, K=64 x 16 actions, one thread | encode s | imagine s | decision s |")
        print("| --- | ---: | ---: | ---: |")
        for name, t in report["seconds_k64_h16"].items():
            print(f"| {name} | {t['encode']:.3f} | {t['imagine']:.3f} | {t['decision']:.3f} |")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
