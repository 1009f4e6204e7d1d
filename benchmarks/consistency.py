"""Speed and fidelity of a consistency student beside its diffusion teacher and gym-pusht.

    python benchmarks/consistency.py --student runs/consistency/world_model --threads 1
    python benchmarks/consistency.py --student DIR --fidelity --episodes 20 --windows 2   # + short protocol
    python benchmarks/consistency.py --student DIR --device cuda --candidates 1024       # GPU rows

Cases: the teacher as shipped (its sampler, steps, ensemble, passes), the teacher sampled in one DDIM
step from one sample with passes of ``--frames-per-pass`` and no padding (what the student starts
from), and the student at 1 and 2 steps with the same passes, from one sample. For each: frames/s of
one ``IRASim-PushT-v0`` env (chunks of ``--chunk-size``, default reward head and decoder) and of
batched imagination (``--candidates`` action sequences of ``--horizon`` actions from the same start,
latents only: a planner's inner loop), beside gym-pusht's pixel env measured in the same run.
``--fidelity`` runs ``benchmarks/fidelity.py`` (``--protocols short`` or ``short,long``) on the held-out
episodes for every case (its metrics, not re-implemented). Prints a markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

import world_gym  # noqa: F401  (registers the envs)
from world_gym.world_model import WorldModel

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    """One way of sampling a model: None keeps the model's own setting."""

    label: str
    model: str
    sampler: str | None = None
    steps: int | None = None
    frames_per_pass: int | None = None
    clip_padding: str | None = None
    ensemble: int | None = None


def measure(step: Callable[[], None], frames_per_step: int, min_seconds: float, max_steps: int) -> tuple[float, int]:
    """Frames/s of ``step()`` after one warm-up call, over at least ``min_seconds`` or ``max_steps``."""
    step()
    n, start = 0, time.perf_counter()
    while n < max_steps and (n == 0 or time.perf_counter() - start < min_seconds):
        step()
        n += 1
    return n * frames_per_step / (time.perf_counter() - start), n


def pusht_fps(args: argparse.Namespace) -> float | None:
    """gym-pusht's pixel env, one env on this process's threads (None where it is not installed)."""
    try:
        import gym_pusht  # noqa: F401
    except ImportError:
        return None

    env = gym.make("gym_pusht/PushT-v0", obs_type="pixels")
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        *_, terminated, truncated, _ = env.step(rng.uniform(0, 512, 2).astype(np.float32))
        if terminated or truncated:
            env.reset()

    return measure(step, 1, args.min_seconds, 100_000)[0]


def apply(model: WorldModel, case: Case) -> None:
    """Put a case's passes and ensemble into a loaded model (sampler and steps go per call)."""
    model.set_passes(case.frames_per_pass, case.clip_padding)
    if case.ensemble is not None:
        model.config.sampler.ensemble = case.ensemble


def env_fps(case: Case, args: argparse.Namespace) -> float:
    kwargs = {"model": case.model, "chunk_size": args.chunk_size, "device": args.device,
              "num_inference_steps": case.steps, "sampler": case.sampler,
              "frames_per_pass": case.frames_per_pass, "clip_padding": case.clip_padding}
    env = gym.make("IRASim-PushT-v0", **{k: v for k, v in kwargs.items() if v is not None})
    apply(env.unwrapped.model, case)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    space = env.action_space

    def step() -> None:
        *_, terminated, truncated, _ = env.step(rng.uniform(space.low, space.high).astype(np.float32))
        if terminated or truncated:
            env.reset()

    return measure(step, args.chunk_size, args.min_seconds, args.max_steps)[0]


def imagination_fps(case: Case, args: argparse.Namespace) -> float:
    model = WorldModel.from_pretrained(case.model, device=args.device)
    apply(model, case)
    gen = torch.Generator().manual_seed(0)
    # the start's encoding is not what is timed (a pose codec refines its reading by gradient steps)
    if "pose" in model.config.codec:
        start = _pose_start(model)
    else:
        frame = np.random.default_rng(0).integers(0, 256, (1, *model.config.frame_size, 3), dtype=np.uint8)
        start = model.encode(frame)
    context, context_actions, context_mask = model.initial_context(start)
    n = args.candidates
    context, context_actions, context_mask = (t.expand(n, *t.shape[1:]).contiguous()
                                              for t in (context, context_actions, context_mask))
    actions = torch.rand(n, args.horizon, model.action_spec.dim, generator=gen, device="cpu") * 2 - 1
    actions = actions.to(model.device, model.dtype)

    def step() -> None:
        model.rollout_latents(context, context_actions, context_mask, actions, gen, case.steps, case.sampler)
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    return measure(step, n * args.horizon, args.min_seconds, args.max_steps)[0]


def _pose_start(model: WorldModel) -> torch.Tensor:
    """One Push-T pose token (agent and block near the centre), as the pose codec writes them."""
    scale = float(model.config.codec["pose"]["token_scale"])
    pose = torch.tensor([0.3, -0.2, 0.0, 0.1, 1.0, 0.0]) * scale
    return pose.view(1, 6, 1, 1).to(model.device, model.dtype)


def fidelity(case: Case, args: argparse.Namespace) -> dict[str, dict]:
    """``benchmarks/fidelity.py`` on one case: protocol -> the model's metrics."""
    cmd = [sys.executable, str(HERE / "fidelity.py"), "--model", case.model, "--data", args.data,
           "--episodes", str(args.episodes), "--windows", str(args.windows), "--protocols", args.protocols,
           "--long-episodes", str(args.long_episodes), "--long-horizon", str(args.long_horizon),
           "--no-reconstruction", "--no-latent", "--threads", str(args.threads), "--device", args.device]
    for flag, value in (("--sampler", case.sampler), ("--steps", case.steps), ("--ensemble", case.ensemble),
                        ("--frames-per-pass", case.frames_per_pass), ("--clip-padding", case.clip_padding)):
        if value is not None:
            cmd += [flag, str(value)]
    print("$", " ".join(cmd[1:]), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    keys = ("psnr", "ssim", "block_iou", "agent_error", "delta_psnr", "frames_per_s")
    results = {}
    for protocol in ("short", "long"):
        if protocol in report:
            methods = {k: v for k, v in report[protocol]["methods"].items() if k != "copy first frame"}
            results[protocol] = {k: next(iter(methods.values())).get(k) for k in keys}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="pusht-irasim-pose", help="the diffusion model (shipped name or dir)")
    parser.add_argument("--student", action="append", default=[], help="consistency world-model directory")
    parser.add_argument("--frames-per-pass", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--no-env", action="store_true", help="skip the one-env rows")
    parser.add_argument("--fidelity", action="store_true", help="also the short protocol of benchmarks/fidelity.py")
    parser.add_argument("--data", default="data/pusht/heldout")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--protocols", default="short", help="fidelity.py protocols: short, or short,long")
    parser.add_argument("--long-episodes", type=int, default=10)
    parser.add_argument("--long-horizon", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fpp = args.frames_per_pass
    cases = [Case("teacher as shipped", args.teacher),
             Case("teacher, DDIM 1 step, 1 sample", args.teacher, "ddim", 1, fpp, "none", 1)]
    for student in args.student:
        cases += [Case(f"student {Path(student).name}, {k} step{'s' if k > 1 else ''}", student, "consistency", k,
                       fpp, "none", 1) for k in (1, 2)]
    reference = pusht_fps(args)
    rows = []
    for case in cases:
        row = {"case": case.label, "model": case.model, "sampler": case.sampler, "steps": case.steps,
               "frames_per_pass": case.frames_per_pass, "clip_padding": case.clip_padding, "ensemble": case.ensemble}
        row["env_fps"] = None if args.no_env else env_fps(case, args)
        row["imagination_fps"] = imagination_fps(case, args)
        if args.fidelity:
            row["fidelity"] = fidelity(case, args)
        rows.append(row)
        print(json.dumps(row), flush=True)

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({args.threads} thread(s))"
    print(f"\ndevice {device}, env chunk {args.chunk_size}, imagination {args.candidates} x {args.horizon} "
          f"(latents only), gym-pusht {'not installed' if reference is None else f'{reference:.1f} frames/s'}\n")
    ratio = (lambda fps: "-") if reference is None else (lambda fps: f"{fps / reference:.3f}")
    head = "| case | env frames/s | x gym-pusht | imagination frames/s | x gym-pusht |"
    sep = "| --- | ---: | ---: | ---: | ---: |"
    protocols = [p for p in ("short", "long") if args.fidelity and p in args.protocols.split(",")]
    for protocol in protocols:
        head += f" {protocol} PSNR | {protocol} block IoU | {protocol} agent err |"
        sep += " ---: | ---: | ---: |"
    print(head + "\n" + sep)
    for row in rows:
        env = "- | -" if row["env_fps"] is None else f"{row['env_fps']:.1f} | {ratio(row['env_fps'])}"
        line = f"| {row['case']} | {env} | {row['imagination_fps']:.0f} | {ratio(row['imagination_fps'])} |"
        for protocol in protocols:
            s = row["fidelity"].get(protocol, {})
            line += f" {s.get('psnr', float('nan')):.2f} | {s.get('block_iou', float('nan')):.3f} | " \
                    f"{s.get('agent_error', float('nan')):.1f} |"
        print(line)
    print(json.dumps({"benchmark": "consistency", "device": device, "threads": args.threads,
                      "machine": platform.machine(), "gym_pusht_fps": reference, "chunk_size": args.chunk_size,
                      "candidates": args.candidates, "horizon": args.horizon, "rows": rows}))


if __name__ == "__main__":
    main()
