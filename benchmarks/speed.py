"""Frames per second of world-model envs (single and vectorized) beside gym-pusht's pixel env.

    python benchmarks/speed.py                       # bundled Push-T model, CPU or GPU
    python benchmarks/speed.py --envs 1,16,64 --steps 10 --chunk-size 8
    python benchmarks/speed.py --model runs/pusht/wm_frame_ada --threads 1

Prints a markdown table and, last, one JSON line with every figure. Frames/s counts imagined
(or simulated) frames, i.e. primitive actions, per wall-clock second after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np
import torch

import world_gym  # noqa: F401
from world_gym.registration import default_device


def measure(step, frames_per_step: int, min_seconds: float, max_steps: int) -> tuple[float, int]:
    """Frames/s of ``step()`` after one warm-up call, over at least ``min_seconds`` or ``max_steps``."""
    step()
    n, start = 0, time.perf_counter()
    while n < max_steps and (n == 0 or time.perf_counter() - start < min_seconds):
        step()
        n += 1
    elapsed = time.perf_counter() - start
    return n * frames_per_step / elapsed, n


def world_model_case(args: argparse.Namespace, num_envs: int) -> dict:
    kwargs = {"chunk_size": args.chunk_size, "num_inference_steps": args.steps, "device": args.device}
    if args.model:
        kwargs["model"] = args.model
    if args.dtype:
        kwargs["dtype"] = kwargs["codec_dtype"] = getattr(torch, args.dtype)
    if args.decoder:
        kwargs["decoder"] = args.decoder
    if num_envs == 1:
        env = gym.make(args.env, **kwargs)
    else:
        env = gym.make_vec(args.env, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    space = env.action_space

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(rng.uniform(space.low, space.high).astype(np.float32))
        if num_envs == 1 and (terminated or truncated):  # the vector env resets itself (NEXT_STEP)
            env.reset()

    fps, n = measure(step, num_envs * args.chunk_size, args.min_seconds, args.max_steps)
    unwrapped = env.unwrapped
    steps = unwrapped.parts.num_inference_steps or unwrapped.model.config.sampler.num_inference_steps
    return {"case": f"world model, {num_envs} env{'s' if num_envs > 1 else ''}", "num_envs": num_envs,
            "frames_per_s": fps, "steps_timed": n, "diffusion_steps": steps}


def pusht_case(args: argparse.Namespace) -> dict:
    import gym_pusht  # noqa: F401

    env = gym.make("gym_pusht/PushT-v0", obs_type="pixels")
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(rng.uniform(0, 512, 2).astype(np.float32))
        if terminated or truncated:
            env.reset()

    fps, n = measure(step, 1, args.min_seconds, args.max_steps * 50)
    return {"case": "gym-pusht (pymunk, pixels)", "num_envs": 1, "frames_per_s": fps, "steps_timed": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="IRASim-PushT-v0")
    parser.add_argument("--model", default=None, help="world-model directory (default: the env's)")
    parser.add_argument("--envs", default="1,16,64", help="comma-separated numbers of envs")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="world-model precision, backbone and codec (default: the model's)")
    parser.add_argument("--decoder", default=None, choices=["fast", "vae", "render"],
                        help="decoder (default: a pose codec's sprite renderer if it has one, else the fast "
                        "decoder if there is one, else the VAE)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = [pusht_case(args)]
    for n in (int(x) for x in args.envs.split(",")):
        rows.append(world_model_case(args, n))
    reference = rows[0]["frames_per_s"]
    for row in rows:
        row["ratio_to_pusht"] = row["frames_per_s"] / reference

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"env {args.env}, chunk {args.chunk_size}, device {device}, dtype {args.dtype or 'default'}, "
          f"decoder {args.decoder or 'default'}, "
          f"torch {torch.__version__}\n")
    print("| case | frames/s | x gym-pusht | diffusion steps |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['case']} | {row['frames_per_s']:.1f} | {row['ratio_to_pusht']:.3f} | {row.get('diffusion_steps', '-')} |")
    print(json.dumps({"benchmark": "speed", "env": args.env, "device": device, "dtype": args.dtype,
                      "decoder": args.decoder,
                      "chunk_size": args.chunk_size,
                      "machine": platform.machine(), "rows": rows}))


if __name__ == "__main__":
    main()
