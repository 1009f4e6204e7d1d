"""Policy evaluation in a world model, checked against the ground-truth simulator (CleanRL style).

Each policy runs from the same start states (gym-pusht reset seeds) in the world model
(``IRASim-PushT-v0``, vectorized: one batched model call per chunk for all envs) and in gym-pusht.
Per policy: success rate (Clopper-Pearson 95%), mean max coverage (bootstrap 95%), episode length,
wall time. Across policies: Pearson, Spearman and MMRV of world model against ground truth. Writes
``summary.json``, ``report.md``, a scatter plot and side-by-side videos to ``--out``; re-running
resumes from the per-policy results cached there.

    python examples/policy_evaluation.py --zoo runs/zoo --episodes 50 --num-envs 10 \\
        --model runs/pusht_wm --reward-model resnet_iou

    # quick look with the bundled random-weight model (meaningless numbers, real plumbing):
    python examples/policy_evaluation.py --episodes 4 --num-envs 2 --max-frames 32 --steps 1 --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from world_gym.evaluation import EvaluationConfig, evaluate_policies
from world_gym.evaluation.report import write_report
from world_gym.policies import RandomPolicy
from world_gym.policies.base import PolicySpec
from world_gym.policies.zoo import load_zoo, parse_policy_spec


@dataclass
class Args:
    env: str = "IRASim-PushT-v0"
    """registered world-model env id"""
    model: str = ""
    """world-model directory ('' = the env's bundled model)"""
    reward_model: str = ""
    """reward head name ('' = the env's default; Push-T: zero, i.e. no success in the world model)"""
    reward_model_kwargs: str = "{}"
    """JSON arguments of the reward head"""
    zoo: str = ""
    """policy zoo folder with zoo.json ('' = only a random policy)"""
    lerobot_policy: str = ""
    """a saved LeRobot policy directory to add"""
    episodes: int = 50
    """episodes per policy and side"""
    seed_start: int = 0
    """first gym-pusht reset seed"""
    num_envs: int = 10
    """envs run at once on each side"""
    max_frames: int = 300
    """episode limit in primitive actions"""
    steps: int = 0
    """diffusion steps (0 = the model's)"""
    device: str = ""
    """cpu or cuda ('' = cuda when available)"""
    videos: int = 2
    """side-by-side videos per policy"""
    out: str = "outputs/policy_evaluation"
    """results folder"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    args = parse_args()

    # 1. the policies: a zoo, a LeRobot checkpoint, and a random baseline
    specs = load_zoo(args.zoo) if args.zoo else []
    if not any(s.name == "random" for s in specs):
        box = dict(low=0.0, high=512.0, shape=(8, 2), dtype=np.float32)
        specs.append(PolicySpec("random", lambda: RandomPolicy(spaces.Box(**box)), chunk_size=8,
                                description="uniform random targets"))
    if args.lerobot_policy:
        specs += parse_policy_spec(f"lerobot=lerobot:{args.lerobot_policy},chunk_size=8")

    # 2. the envs: same seeds on both sides, world-model settings passed to gym.make_vec
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    env_kwargs = {k: v for k, v in {"model": args.model, "num_inference_steps": args.steps,
                                    "device": args.device}.items() if v}
    config = EvaluationConfig(
        env_id=args.env, seeds=seeds, num_envs=min(args.num_envs, args.episodes), max_episode_frames=args.max_frames,
        env_kwargs=env_kwargs, reward_model=args.reward_model or None,
        reward_model_kwargs=json.loads(args.reward_model_kwargs), video_seeds=seeds[: args.videos], out_dir=args.out,
    )

    # 3. run (cached per policy and side), compare, report
    start = time.perf_counter()
    summary = evaluate_policies(specs, config)
    paths = write_report(summary, args.out)

    print(f"\nreward head in the world model: {summary['reward_head']}")
    print(f"{'policy':<22}{'WM success':>12}{'GT success':>12}{'WM cov':>9}{'GT cov':>9}")
    for name, sides in summary["policies"].items():
        wm, gt = sides["world_model"]["summary"], sides.get("ground_truth", {}).get("summary", {})

        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f}"

        print(f"{name:<22}{f(wm['success_rate']):>12}{f(gt.get('success_rate')):>12}"
              f"{f(wm['mean_max_coverage']):>9}{f(gt.get('mean_max_coverage')):>9}")
    for key, c in summary["comparison"].items():
        print(f"{key}: Pearson {c['pearson']:.3f}  Spearman {c['spearman']:.3f}  MMRV {c['mmrv']:.3f}  "
              f"({c['policies']} policies)")
    print(f"report: {paths['report']}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
