"""A long imagined episode under a scripted policy: does the world stay on the board?

    python benchmarks/long_rollout.py                                   # 6,000 frames (10 min at 10 Hz)
    python benchmarks/long_rollout.py --env PoseState-PushT-v0 --frames 300 --every 100
    python benchmarks/long_rollout.py --model tiny-pusht --frames 64 --every 32 --log runs/long.jsonl

One episode of ``--frames`` frames in a Push-T world-model env, stepped in chunks of ``--chunk-size``
actions, no reset. The policy is :class:`~world_gym.policies.pusht_pixel_expert.PixelPushTExpert`
(it sees only the imagined frames) with ``--noise``, pushing the block towards a goal pose that moves
to a new random pose every ``--goal-every`` frames, so the block is pushed around for the whole
episode instead of resting at the goal. The reward head runs as in any episode, but its success
threshold is raised out of reach (``--keep-going``, the default) so that a success does not end the
episode; its predicted coverage is still reported.

Every ``--every`` frames a row reports, over the frames since the last row:

- finite: whether every latent of the model's state, every reward and every coverage was finite,
  and the largest latent magnitude (a blow-up shows there first);
- T shape error: of the frames the policy read (the last frame of every chunk), mean and max, as
  the fidelity benchmark's ``--shape`` defines it (:class:`~world_gym.envs.pusht.pixels.PushTFrameState`:
  pixels where the best-fitting rigid T and the block's pixels disagree, per pixel of the T; 1 for
  a frame with no block; 0.045 median, 0.10 max on gym-pusht's own frames);
- block seen / on board, agent seen: shares of those frames where a block (at least 20 pixels of
  its colour) and the agent show, and where the fitted block's centre is on the 512 x 512 board;
- block travel: how far the fitted block's centre moved between those frames, summed (units of
  the 512 board), which shows that the block was pushed around rather than left at rest;
- the process's resident memory (flat memory: the last row's equals the first's);
- frames/s: imagined frames per second of ``env.step`` alone, and of the whole loop with the policy.

Prints a progress bar, a markdown table and, last, one JSON line; ``--log`` also appends each row
to a JSON-lines file as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import world_gym  # noqa: F401
from world_gym.policies.pusht_pixel_expert import PixelPushTExpert

BOARD = 512.0
UNREACHABLE_THRESHOLD = 1.0  # success is coverage > threshold, and coverage never exceeds 1


def rss_mb() -> float:
    """The process's resident set size in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def random_goal(rng: np.random.Generator) -> np.ndarray:
    """A goal pose ``(x, y, angle)`` well inside the board, so the pushed T stays clear of the walls."""
    return np.array([*rng.uniform(160.0, 352.0, 2), rng.uniform(-np.pi, np.pi)])


class Window:
    """What the frames since the last report showed."""

    def __init__(self) -> None:
        self.shape: list[float] = []
        self.block_seen: list[bool] = []
        self.on_board: list[bool] = []
        self.agent_seen: list[bool] = []
        self.travel = 0.0
        self._last_block: np.ndarray | None = None
        self.coverage: list[float] = []
        self.finite = True
        self.max_latent = 0.0
        self.frames = 0
        self.step_s = 0.0
        self.start = time.perf_counter()

    def add_read(self, state: Any) -> None:
        """One frame as the policy's reader saw it (a :class:`~world_gym.envs.pusht.pixels.FrameState`)."""
        error = state.shape_error
        self.shape.append(1.0 if np.isnan(error) else float(error))
        self.block_seen.append(state.block_pose is not None)
        self.on_board.append(state.block_pose is not None and bool(np.all((state.block_pose[:2] >= 0)
                                                                          & (state.block_pose[:2] <= BOARD))))
        self.agent_seen.append(state.agent_pos is not None)
        if state.block_pose is not None:
            if self._last_block is not None:
                self.travel += float(np.linalg.norm(state.block_pose[:2] - self._last_block))
            self._last_block = np.asarray(state.block_pose[:2], np.float64)

    def row(self, frame: int) -> dict[str, Any]:
        wall = time.perf_counter() - self.start
        return {
            "frame": frame,
            "finite": self.finite,
            "max_abs_latent": self.max_latent,
            "t_shape_mean": float(np.mean(self.shape)) if self.shape else float("nan"),
            "t_shape_max": float(np.max(self.shape)) if self.shape else float("nan"),
            "block_seen": float(np.mean(self.block_seen)) if self.block_seen else float("nan"),
            "block_on_board": float(np.mean(self.on_board)) if self.on_board else float("nan"),
            "agent_seen": float(np.mean(self.agent_seen)) if self.agent_seen else float("nan"),
            "block_travel": self.travel,
            "coverage_mean": float(np.mean(self.coverage)) if self.coverage else float("nan"),
            "frames_read": len(self.shape),
            "rss_mb": rss_mb(),
            "env_frames_per_s": self.frames / self.step_s if self.step_s else float("nan"),
            "loop_frames_per_s": self.frames / wall if wall else float("nan"),
        }


def make_env(args: argparse.Namespace) -> gym.Env:
    kwargs: dict[str, Any] = {"chunk_size": args.chunk_size, "device": args.device,
                              "max_episode_frames": args.frames}
    if args.model:
        kwargs["model"] = args.model
    if args.keep_going:
        kwargs["reward_model_kwargs"] = {"success_threshold": UNREACHABLE_THRESHOLD}
    return gym.make(args.env, **kwargs)


def rollout(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the episode; one row per ``args.every`` frames."""
    env = make_env(args)
    episodes = env.unwrapped._episodes  # the model's state: the latents the next chunk starts from
    rng = np.random.default_rng(args.seed)
    policy = PixelPushTExpert(noise=args.noise, chunk_size=args.chunk_size, goal_pose=random_goal(rng))
    policy.reset(seed=args.seed)
    obs, _ = env.reset(seed=args.seed)
    rows: list[dict[str, Any]] = []
    window, frame, next_goal = Window(), 0, args.goal_every
    log = Path(args.log).open("a") if args.log else None
    bar = tqdm(total=args.frames, unit="frame", desc=args.env)
    try:
        while frame < args.frames:
            if frame >= next_goal:
                policy.goal_pose = random_goal(rng)
                next_goal += args.goal_every
            action = policy.act(obs)
            window.add_read(policy.last_state)
            start = time.perf_counter()
            obs, reward, terminated, truncated, info = env.step(action)
            window.step_s += time.perf_counter() - start
            n = len(info["frames"])
            frame += n
            window.frames += n
            bar.update(n)
            context = episodes.context
            window.finite &= bool(torch.isfinite(context).all()) and bool(np.isfinite(info["rewards"]).all())
            window.max_latent = max(window.max_latent, float(context.abs().max()))
            if "coverage" in info:
                coverage = np.asarray(info["coverage"], np.float64)
                window.finite &= bool(np.isfinite(coverage).all())
                window.coverage.extend(coverage.tolist())
            if frame % args.every < n or terminated or truncated or frame >= args.frames:
                rows.append(window.row(frame))
                bar.set_postfix(shape=f"{rows[-1]['t_shape_mean']:.3f}", rss=f"{rows[-1]['rss_mb']:.0f}MB")
                if log:
                    log.write(json.dumps({"env": args.env, **rows[-1]}) + "\n")
                    log.flush()
                window = Window()
            if terminated or truncated:
                break
    finally:
        bar.close()
        if log:
            log.close()
        env.close()
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the whole episode."""
    steps = [(r["frame"] - p, r) for r, p in zip(rows, [0] + [r["frame"] for r in rows[:-1]])]
    env_seconds = sum(n / r["env_frames_per_s"] for n, r in steps if r["env_frames_per_s"] > 0)
    loop_seconds = sum(n / r["loop_frames_per_s"] for n, r in steps if r["loop_frames_per_s"] > 0)
    done = rows[-1]["frame"] if rows else 0
    return {
        "frames": done,
        "all_finite": all(r["finite"] for r in rows),
        "max_abs_latent": max(r["max_abs_latent"] for r in rows),
        "t_shape_mean": float(np.mean([r["t_shape_mean"] for r in rows])),
        "t_shape_worst_window_mean": max(r["t_shape_mean"] for r in rows),
        "t_shape_max": max(r["t_shape_max"] for r in rows),
        "block_seen_min": min(r["block_seen"] for r in rows),
        "block_on_board_min": min(r["block_on_board"] for r in rows),
        "agent_seen_min": min(r["agent_seen"] for r in rows),
        "block_travel": sum(r["block_travel"] for r in rows),
        "rss_first_mb": rows[0]["rss_mb"],
        "rss_last_mb": rows[-1]["rss_mb"],
        "rss_growth_mb": rows[-1]["rss_mb"] - rows[0]["rss_mb"],
        "env_frames_per_s": done / env_seconds if env_seconds else float("nan"),
        "loop_frames_per_s": done / loop_seconds if loop_seconds else float("nan"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="IRASim-PushT-v0")
    parser.add_argument("--model", default=None, help="world model (default: the env's)")
    parser.add_argument("--frames", type=int, default=6000, help="frames in the episode (6,000: 10 min at 10 Hz)")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--every", type=int, default=500, help="frames per report row")
    parser.add_argument("--goal-every", type=int, default=400, help="frames between the policy's goal moves")
    parser.add_argument("--noise", type=float, default=10.0, help="the expert's noise (pixels of target noise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=True,
                        help="raise the reward head's success threshold out of reach, so no success ends the episode")
    parser.add_argument("--log", default=None, help="append each row to this JSON-lines file")
    args = parser.parse_args(argv)
    for name in ("frames", "chunk_size", "every", "goal_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = rollout(args)
    total = summary(rows)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\nenv {args.env}, model {args.model or 'default'}, {total['frames']} frames in chunks of {args.chunk_size}, "
          f"policy PixelPushTExpert(noise={args.noise}), goal moved every {args.goal_every} frames, "
          f"device {device}, torch {torch.__version__}\n")
    print("| frames | finite | max abs latent | T shape error mean / max | block seen | block on board | "
          "agent seen | block travel | coverage | RSS MiB | env frames/s | loop frames/s |")
    print("| ---: | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['frame']} | {'yes' if r['finite'] else 'NO'} | {r['max_abs_latent']:.2f} | "
              f"{r['t_shape_mean']:.3f} / {r['t_shape_max']:.3f} | {r['block_seen']:.2f} | {r['block_on_board']:.2f} | "
              f"{r['agent_seen']:.2f} | {r['block_travel']:.0f} | {r['coverage_mean']:.2f} | {r['rss_mb']:.0f} | {r['env_frames_per_s']:.1f} | "
              f"{r['loop_frames_per_s']:.1f} |")
    result = {"benchmark": "long_rollout", "env": args.env, "model": args.model, "chunk_size": args.chunk_size,
              "noise": args.noise, "goal_every": args.goal_every, "seed": args.seed, "device": device,
              "machine": platform.machine(), "summary": total, "rows": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
