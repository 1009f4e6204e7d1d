"""Plan Push-T in a world model, act in gym-pusht: a base policy alone vs the ranking planner.

    python examples/plan_pusht.py --seed 3 --num-samples 16 --video outputs/plan_pusht.mp4

The base policy is the noisy scripted expert reading the frame (memoryless, so every call is a new
draw). The planner asks it for ``num_samples`` chunks from the current frame, imagines all of them in
the world model in one batched call, scores each imagined end state by Push-T's coverage (read off
the pose latent, no decoding), and executes the best chunk in gym-pusht; then plans again from the
frame gym-pusht returns. The video shows, per step, what really happened (left) beside what the
world model imagined for the chunk it chose (right).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from world_gym.envs.pusht.ground_truth import make_pusht_env
from world_gym.planning import make_planner
from world_gym.policies.pusht_expert_proposal import PushTExpertProposal
from world_gym.video import side_by_side, write_video


@dataclass
class Args:
    seed: int = 3  # gym-pusht reset seed (0..9999 are held out from the training data)
    env_id: str = "IRASim-PushT-v0"  # the world model the planner imagines in
    num_samples: int = 16  # candidates per decision
    horizon: int = 8  # actions per candidate
    execute: int = 8  # actions executed before planning again
    noise: float = 35.0  # the base policy's noise (pixels; noise / 100 is its chance of a random push)
    max_steps: int = 300
    video: str | None = "outputs/plan_pusht.mp4"


def run(policy, seed: int, max_steps: int, record: bool = False) -> tuple[float, bool, list[np.ndarray], list[np.ndarray]]:
    """One gym-pusht episode; returns max coverage, success, real frames and imagined frames."""
    env = make_pusht_env()
    frame, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    best, success, steps, real, imagined = 0.0, False, 0, [], []
    while steps < max_steps and not success:
        chunk = policy.act(frame)
        if record and policy.last_decision.best_latents is not None:
            dream = policy.model.decode(policy.last_decision.best_latents)  # the chosen candidate, imagined
        else:
            dream = np.full((len(chunk), *frame.shape), 255, np.uint8)
        for action, dreamt in zip(chunk, dream):
            frame, _, terminated, _, info = env.step(action)
            real.append(frame)
            imagined.append(dreamt)
            steps += 1
            best = max(best, float(info["coverage"]))
            success = bool(terminated)
            if success or steps >= max_steps:
                break
    return best, success, real, imagined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default) if default is not None else str,
                            default=default)
    args = Args(**vars(parser.parse_args()))
    torch.set_num_threads(1)

    base = PushTExpertProposal(noise=args.noise, chunk_size=args.horizon)
    cov, ok, _, _ = run(base, args.seed, args.max_steps)
    print(f"base policy alone: max coverage {cov:.3f}, success {ok}")

    planner = make_planner("ranking", args.env_id, proposal=PushTExpertProposal(noise=args.noise, chunk_size=args.horizon),
                           num_samples=args.num_samples, horizon=args.horizon, execute=args.execute, seed=args.seed)
    cov, ok, real, imagined = run(planner, args.seed, args.max_steps, record=args.video is not None)
    stats = planner.stats
    print(f"ranking planner (K={args.num_samples}, imagining in {args.env_id}): max coverage {cov:.3f}, success {ok}; "
          f"{stats.seconds / stats.decisions:.2f} s and {stats.imagined_frames / stats.decisions:.0f} imagined frames "
          "per decision")
    if args.video:
        path = write_video(args.video, side_by_side(np.stack(real), np.stack(imagined)))
        print(f"wrote {path} (left: gym-pusht, right: the imagined chosen candidate)")


if __name__ == "__main__":
    main()
