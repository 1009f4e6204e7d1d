"""Policy ranking on policies the world model never saw: a world model against gym-pusht.

    python benchmarks/policy_ranking.py --env PoseState-PushT-v0          # the default set, seeds 200-209
    python benchmarks/policy_ranking.py --env IRASim-PushT-v0 --seeds 200:206
    python benchmarks/policy_ranking.py --no-world-model                  # gym-pusht only (grade the set)
    python benchmarks/policy_ranking.py --env PoseState-PushT-v0 --set ensemble=4 --out outputs/ranking_ens4

The policies are :data:`~world_gym.policies.pusht_novel.NOVEL_SET` (``--policy SPEC`` replaces it,
``--policies a,b`` picks some of it by name): closed-loop policies that act on the 96 x 96 frame
alone and behave unlike the Push-T world models' training mix (idle, greedy centre pushing, the
expert with a wrong goal, one that quits, one that looks only every 32 steps, one that wobbles, and
the stress families of :mod:`world_gym.envs.pusht.behaviours` on frame-read state). Each runs one
episode per start seed in the world model ``--env`` and in gym-pusht from the same start, with the
evaluation harness (:func:`~world_gym.evaluation.harness.evaluate_policies`; at most 300 frames,
the world model's default reward head unless ``--reward-model``). The default starts, gym-pusht
seeds 200-209, lie in the collector's held-out range (0-9999) and outside the zoo's and the
fidelity benchmark's 0-49.

Results are cached per (policy, side) under ``--out`` (default ``outputs/policy_ranking/<env>``):
re-run the command to resume. gym-pusht's results do not depend on the world model, so cached ones
of the same settings in a sibling folder (another env's run) are reused.

Prints a markdown table (per policy: success and mean max coverage on both sides, the coverage
difference), Pearson, Spearman and MMRV of mean max coverage and of success rate across policies,
and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from world_gym.evaluation.harness import EvaluationConfig, _finite, evaluate_policies
from world_gym.policies.pusht_novel import NOVEL_SET
from world_gym.policies.zoo import _cast, parse_policy_spec

DEFAULT_SEEDS = "200:210"
logger = logging.getLogger("policy_ranking_benchmark")


def parse_seeds(text: str) -> list[int]:
    """``"200:210"`` (a range) or ``"200,205,7"`` (a list) to seeds."""
    if ":" in text:
        start, stop = (int(v) for v in text.split(":", 1))
        seeds = list(range(start, stop))
    else:
        seeds = [int(v) for v in text.split(",") if v]
    if not seeds:
        raise ValueError(f"no seeds in {text!r}; expected e.g. 200:210 or 200,201")
    return seeds


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The world model's ``gym.make_vec`` arguments: ``--env-kwargs`` JSON, then each ``--set K=V``."""
    kwargs = json.loads(args.env_kwargs)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        kwargs[key] = _cast(value)
    for key in ("dtype", "codec_dtype"):  # torch dtypes by name
        if isinstance(kwargs.get(key), str):
            kwargs[key] = getattr(torch, kwargs[key])
    return kwargs


def reuse_ground_truth(out: Path) -> int:
    """Copy gym-pusht results cached in sibling folders of ``out`` that ``out`` lacks; the harness
    reads a copied result only if its settings fingerprint matches, else runs again. Returns how many."""
    copied = 0
    target = out / "results" / "ground_truth"
    for path in sorted(out.parent.glob("*/results/ground_truth/*.json")):
        if path.parent == target or (target / path.name).exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)
        copied += 1
    return copied


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="IRASim-PushT-v0", help="world-model env id")
    parser.add_argument("--env-kwargs", default="{}", help="JSON arguments of the world-model env")
    parser.add_argument("--set", action="append", default=[], metavar="K=V",
                        help="a world-model env argument (model, ensemble, block_gate, device, dtype ...); repeatable")
    parser.add_argument("--reward-model", default=None, help="reward head name (default: the env's)")
    parser.add_argument("--reward-model-kwargs", default="{}", help="JSON arguments of the reward head")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="start seeds: START:STOP or a comma list")
    parser.add_argument("--policy", action="append", default=None, metavar="SPEC",
                        help="a policy spec string (repeatable; replaces the default set)")
    parser.add_argument("--policies", default=None, help="comma-separated names picked from the default set")
    parser.add_argument("--max-frames", type=int, default=300, help="episode limit in primitive actions")
    parser.add_argument("--num-envs", type=int, default=5, help="episodes run at once on each side")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-world-model", action="store_true", help="gym-pusht only")
    parser.add_argument("--out", default=None, help="cache folder (default outputs/policy_ranking/<env>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    seeds = parse_seeds(args.seeds)
    specs = [spec for text in (args.policy or NOVEL_SET) for spec in parse_policy_spec(text)]
    if args.policies:
        wanted = [n for n in args.policies.split(",") if n]
        unknown = sorted(set(wanted) - {s.name for s in specs})
        if unknown:
            parser.error(f"unknown policies {unknown}; known: {[s.name for s in specs]}")
        specs = [s for s in specs if s.name in wanted]
    out = Path(args.out or Path("outputs/policy_ranking") / args.env)
    reused = reuse_ground_truth(out)
    if reused:
        logger.info("reusing %d cached gym-pusht results from sibling folders of %s", reused, out)
    config = EvaluationConfig(
        env_id=args.env, seeds=seeds, num_envs=min(args.num_envs, len(seeds)), max_episode_frames=args.max_frames,
        env_kwargs=env_kwargs(args), reward_model=args.reward_model,
        reward_model_kwargs=json.loads(args.reward_model_kwargs), out_dir=out, world_model=not args.no_world_model)
    start = time.perf_counter()
    summary = evaluate_policies(specs, config, progress=not args.quiet)
    seconds = time.perf_counter() - start

    rows = {}
    for name, sides in summary["policies"].items():
        row = {}
        for side in ("ground_truth", "world_model"):
            if side in sides:
                s = sides[side]["summary"]
                row[side] = {"successes": s["successes"], "episodes": s["episodes"],
                             "success_rate": s["success_rate"], "mean_max_coverage": s["mean_max_coverage"],
                             "wall_s": sides[side]["timing"]["wall_s"]}
        rows[name] = row
    print(f"\nPolicies the world model never saw: {args.env} (reward head {summary['reward_head']}) against "
          f"gym-pusht, {len(seeds)} starts (seeds {seeds[0]}..{seeds[-1]}), {args.max_frames} frames at most, "
          f"torch threads {args.threads} ({os.cpu_count()} cores)\n")
    print("| policy | gym-pusht success | gym-pusht coverage | world model success | world model coverage "
          "| difference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        gt, wm = row.get("ground_truth"), row.get("world_model")
        cells = [f"{r['successes']}/{r['episodes']} | {r['mean_max_coverage']:.3f}" if r else "- | -" for r in (gt, wm)]
        diff = f"{wm['mean_max_coverage'] - gt['mean_max_coverage']:+.3f}" if gt and wm else "-"
        print(f"| {name} | {cells[0]} | {cells[1]} | {diff} |")
    comparison = summary["comparison"]
    for key in ("mean_max_coverage", "success_rate"):
        c = comparison.get(key)
        if c:
            print(f"\n{key}: Pearson {c['pearson']:.3f}, Spearman {c['spearman']:.3f}, MMRV {c['mmrv']:.3f} "
                  f"({c['policies']} policies)")
    report = {"benchmark": "policy_ranking", "env_id": args.env, "env_kwargs": {k: str(v) for k, v in
                                                                               config.env_kwargs.items()},
              "reward_head": summary["reward_head"], "seeds": seeds, "max_episode_frames": args.max_frames,
              "policies": rows, "comparison": comparison, "seconds": round(seconds, 1)}
    report = _finite(report)  # undefined figures (a constant side) as null
    print(json.dumps(report, default=str))
    return report


if __name__ == "__main__":
    main()
