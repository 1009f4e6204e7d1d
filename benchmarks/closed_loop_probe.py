"""Closed-loop probe: the scripted expert reading the frames, in a world model and in gym-pusht.

    python benchmarks/closed_loop_probe.py --seed 0 --chunks 24 --png docs/media/pusht_closed_loop_probe.png

:class:`~world_gym.policies.pusht_pixel_expert.PixelPushTExpert` acts on the state it reads off each
frame, so from the same start it pushes the block gym-pusht draws in gym-pusht and the block the
world model draws in the world model. Per chunk of 8 actions the table gives, on each side, the T
shape error of the frame the expert read (:class:`~world_gym.envs.pusht.pixels.PushTFrameState`;
about 0.05 for gym-pusht's frames; "no block" where the frame shows none) and the coverage:
gym-pusht's own on its side, the world-model env's reward head on the other. ``--png`` writes a
filmstrip, every 8th frame, gym-pusht's row above the world model's. Prints a markdown table and,
last, one JSON line.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch

import world_gym  # noqa: F401  (registers the envs)
from world_gym.envs.pusht import ground_truth as gt
from world_gym.policies.pusht_pixel_expert import PixelPushTExpert


def run_side(env: gym.Env, seed: int, chunks: int, noise: float, world_model: bool) -> dict:
    """Frames (every step), per-chunk shape error of the frame read, per-chunk max coverage."""
    policy = PixelPushTExpert(noise=noise, chunk_size=8)
    # options["episode"]: the world model starts from gym-pusht's start of this seed (as the harness)
    obs, info = env.reset(seed=seed, options={"episode": seed} if world_model else None)
    policy.reset(seed=seed)
    frames, shape, coverage, success = [obs], [], [], False
    for _ in range(chunks):
        chunk = policy.act(obs)
        shape.append(float(policy.last_state.shape_error))
        if world_model:
            obs, _, terminated, truncated, info = env.step(chunk)
            frames.extend(info["frames"])
            coverage.append(float(np.max(info["coverage"])))
        else:
            covs = []
            for action in chunk:
                obs, _, terminated, truncated, info = env.step(action)
                frames.append(obs)
                covs.append(float(info["coverage"]))
                if terminated or truncated:
                    break
            coverage.append(max(covs))
        success |= bool(info.get("is_success", False))
        if terminated or truncated:
            break
    return {"frames": frames, "shape_error": shape, "coverage": coverage, "success": success}


def filmstrip(rows: list[list[np.ndarray]], every: int, count: int, scale: int) -> np.ndarray:
    """Every ``every``-th frame of each row (up to ``count``), side by side, rows stacked."""
    blank = np.full_like(rows[0][0], 255)
    lines = []
    for frames in rows:
        picked = frames[::every][:count]
        picked += [blank] * (count - len(picked))
        lines.append(np.concatenate(picked, 1))
    strip = np.concatenate(lines, 0)
    return strip.repeat(scale, 0).repeat(scale, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="IRASim-PushT-v0")
    parser.add_argument("--model", default=None, help="world-model directory (default: the env's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="gym-pusht reset seed (the same start on both sides)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks of 8 actions")
    parser.add_argument("--noise", type=float, default=0.0, help="the expert's noise level")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--png", default=None,
                        help="write the filmstrip (gym-pusht above, world model below)")
    parser.add_argument("--frames", type=int, default=12, help="filmstrip frames per row (every 8th)")
    args = parser.parse_args(argv)

    kwargs = {"model": args.model} if args.model else {}
    wm_env = gym.make(args.env, chunk_size=8, dtype=getattr(torch, args.dtype), **kwargs)
    truth = run_side(gt.make_pusht_env(), args.seed, args.chunks, args.noise, world_model=False)
    imagined = run_side(wm_env, args.seed, args.chunks, args.noise, world_model=True)
    print("| chunk | gym-pusht: T shape err | coverage | world model: T shape err | coverage (head) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for k in range(max(len(truth["shape_error"]), len(imagined["shape_error"]))):
        cells = []
        for side in (truth, imagined):
            if k >= len(side["shape_error"]):  # that side's episode ended
                cells += ["-", "-"]
                continue
            error = side["shape_error"][k]
            cells += ["no block" if np.isnan(error) else f"{error:.3f}", f"{side['coverage'][k]:.3f}"]
        print(f"| {k} | {' | '.join(cells)} |")
    if args.png:
        from PIL import Image

        Image.fromarray(filmstrip([truth["frames"], imagined["frames"]], 8, args.frames, 2)).save(args.png)
        print(f"wrote {args.png}")
    report = {"benchmark": "closed_loop_probe", "env": args.env, "model": args.model, "seed": args.seed,
              "noise": args.noise, **{side: {k: v for k, v in r.items() if k != "frames"}
                                      for side, r in (("ground_truth", truth), ("world_model", imagined))}}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
