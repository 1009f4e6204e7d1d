"""``world-gym rollout``: run a policy in a world-model env and write the imagined video."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from world_gym.policies import RandomPolicy
from world_gym.video import write_video


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rollout", help="roll a random policy out in a world-model env and write a video")
    p.add_argument("--env", default="IRASim-PushT-v0", help="registered env id")
    p.add_argument("--model", default=None, help="world-model directory or hub id (default: the env's)")
    p.add_argument("--frames", type=int, default=48, help="frames to imagine")
    p.add_argument("--chunk-size", type=int, default=8, help="actions per step")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="ddim, ddpm, pndm, dpm_solver, unipc, deis")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", default="outputs/rollout.mp4", help=".mp4 or .gif")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import world_gym  # noqa: F401  (registers the env ids)

    kwargs = {"chunk_size": args.chunk_size, "num_inference_steps": args.steps, "sampler": args.sampler}
    if args.model:
        kwargs["model"] = args.model
    if args.device:
        kwargs["device"] = args.device
    env = gym.make(args.env, **kwargs)
    policy = RandomPolicy(env.action_space)
    policy.reset(seed=args.seed)
    obs, info = env.reset(seed=args.seed)
    frames = [obs]
    start = time.perf_counter()
    with tqdm(total=args.frames, desc="imagining", unit="frame") as bar:
        while len(frames) - 1 < args.frames:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            frames.extend(info["frames"])
            bar.update(len(info["frames"]))
            if terminated or truncated:
                break
    elapsed = time.perf_counter() - start
    path = write_video(args.out, np.stack(frames), fps=env.metadata.get("render_fps", 10))
    print(json.dumps({"video": str(Path(path)), "frames": len(frames) - 1, "seconds": round(elapsed, 2),
                      "frames_per_s": round((len(frames) - 1) / elapsed, 2)}))
    return 0
