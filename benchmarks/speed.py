"""Frames per second of world-model envs (single and vectorized) beside gym-pusht's pixel env.

    python benchmarks/speed.py                       # bundled Push-T model, CPU or GPU
    python benchmarks/speed.py --envs 1,16,64 --steps 10 --chunk-size 8
    python benchmarks/speed.py --model runs/pusht/wm_frame_ada --threads 1

    python benchmarks/speed.py --reset --threads 1   # reset milliseconds instead of frames/s
    python benchmarks/speed.py --profile --threads 1 # where one env's step spends its time

Prints a markdown table and, last, one JSON line with every figure. Frames/s counts imagined
(or simulated) frames, i.e. primitive actions, per wall-clock second after one warm-up step.
``--reset`` times ``reset`` instead, for each id of ``--reset-ids`` beside gym-pusht's: the first
reset after ``gym.make`` from a start of the env's shipped bank (episode 0) and, in another fresh env,
from a new start (episode ``--reset-new-episode``, rendered by gym-pusht), then warm resets from bank
starts not reset from before, from new starts, and from those new starts again (the env caches
start-frame encodings; a model directory can ship the encodings of the bank's frames). ``--profile`` splits one env's step
(``--env``, ``--chunk-size``) into the backbone's forward passes, the sampler around them, the
decoder or renderer, the reward head's network and the rest of the reward head, and the env's own
Python (validation, bookkeeping, wrappers), then lists the functions with the most time of their own
under ``cProfile``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

import world_gym  # noqa: F401
from world_gym.backbones.state_space import StateSpaceBackbone
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


def _value(text: str) -> object:
    """``--set`` values: JSON where it parses (numbers, true, null), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def env_overrides(args: argparse.Namespace) -> dict:
    """``--reward-model`` and ``--set key=value`` as ``gym.make`` arguments."""
    out = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes key=value, got {item!r}")
        out[key] = _value(value)
    if args.reward_model:
        out["reward_model"] = args.reward_model
    return out


def world_model_case(args: argparse.Namespace, num_envs: int) -> dict:
    kwargs = {"chunk_size": args.chunk_size, "num_inference_steps": args.steps, "device": args.device,
              **env_overrides(args)}
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


def planning_case(args: argparse.Namespace, candidates: int = 64, horizon: int = 16) -> dict:
    """Imagined frames/s of one planning decision's batched imagination (the env's planning
    settings, latents only, the final step scored by the env's planning objective)."""
    from world_gym.planning import resolve_model
    from world_gym.planning.factory import resolve_objective

    settings = {key: value for key, value in env_overrides(args).items() if key in ("ensemble", "frames_per_pass")}
    imagination, family = resolve_model(args.env, **settings)
    if args.model:  # another model of the env's family: the family's planning settings and objective
        kwargs = {**family.extra.get("planning_imagination", {}), **settings}
        imagination = resolve_model(args.model, **kwargs)[0]
    objective = resolve_objective(None, imagination, family)
    frame = gym.make("gym_pusht/PushT-v0", obs_type="pixels").reset(seed=0)[0]
    start = imagination.start(frame)
    actions = np.random.default_rng(0).uniform(0, 512, (candidates, horizon, 2)).astype(np.float32)

    def step() -> None:
        latents = imagination.imagine(start, actions, decode="none").latents
        objective.score(latents[:, -1:], None, start, imagination)

    fps, n = measure(step, candidates * horizon, args.min_seconds, args.max_steps)
    return {"case": f"planning imagination, {candidates} x {horizon}, latents only", "num_envs": candidates,
            "frames_per_s": fps, "steps_timed": n}


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


def time_ms(call) -> float:
    """Milliseconds one ``call()`` takes."""
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def reset_case(env_id: str, repeats: int, model: str | None = None, new_episode: int = 5000) -> dict:
    """First and warm ``reset`` milliseconds of one env id (median over ``repeats`` resets each;
    ``model``: instead of the env's own). Bank starts are episodes ``0..repeats`` of the env's
    initial-state source; new starts are episodes ``new_episode + i``, beyond it."""
    kwargs = {"model": model} if model else {}
    env = gym.make(env_id, **kwargs)
    first_new_env = gym.make(env_id, **kwargs)
    first = time_ms(lambda: env.reset(seed=0, options={"episode": 0}))
    first_new = time_ms(lambda: first_new_env.reset(seed=0, options={"episode": new_episode}))
    first_new_env.close()
    bank = [time_ms(lambda i=i: env.reset(seed=i, options={"episode": i})) for i in range(1, repeats + 1)]
    new_episodes = range(new_episode + 1, new_episode + repeats + 1)
    new = [time_ms(lambda i=i: env.reset(seed=i, options={"episode": i})) for i in new_episodes]
    seen = [time_ms(lambda i=i: env.reset(seed=i, options={"episode": i})) for i in new_episodes]
    env.close()
    return {"case": env_id, "first_ms": first, "first_new_start_ms": first_new,
            "warm_bank_start_ms": float(np.median(bank)), "warm_new_start_ms": float(np.median(new)),
            "warm_seen_start_ms": float(np.median(seen)), "new_episode": new_episode, "resets_timed": 3 * repeats + 2}


def pusht_reset_case(repeats: int) -> dict:
    """gym-pusht's first and warm ``reset`` milliseconds (pixels; every seed is a new start)."""
    import gym_pusht  # noqa: F401

    env = gym.make("gym_pusht/PushT-v0", obs_type="pixels")
    first = time_ms(lambda: env.reset(seed=0))
    warm = [time_ms(lambda i=i: env.reset(seed=i)) for i in range(1, 2 * repeats + 1)]
    env.close()
    return {"case": "gym-pusht (pymunk, pixels)", "first_ms": first, "first_new_start_ms": None,
            "warm_bank_start_ms": None, "warm_new_start_ms": float(np.median(warm)), "warm_seen_start_ms": None,
            "resets_timed": 2 * repeats}


def reset_main(args: argparse.Namespace) -> None:
    """Print the reset table and its JSON line."""
    rows = [pusht_reset_case(args.reset_repeats)]
    rows += [reset_case(env_id, args.reset_repeats, args.model, args.reset_new_episode)
             for env_id in args.reset_ids.split(",")]
    device = f"CPU ({torch.get_num_threads()} threads)"
    print(f"reset, device {device}, torch {torch.__version__}, median of {args.reset_repeats} resets per warm column\n")
    print("| env | first reset, bank start ms | first reset, new start ms | warm reset, bank start ms "
          "| warm reset, new start ms | warm reset, seen start ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    columns = ("first_ms", "first_new_start_ms", "warm_bank_start_ms", "warm_new_start_ms", "warm_seen_start_ms")
    for row in rows:
        cells = ["-" if row[key] is None else f"{row[key]:.1f}" for key in columns]
        print(f"| {row['case']} | " + " | ".join(cells) + " |")
    print(json.dumps({"benchmark": "speed_reset", "device": device, "machine": platform.machine(), "rows": rows}))


class ForwardTimer:
    """Wall time and calls of a module's forward passes (through forward hooks)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds, self.calls, self._start = 0.0, 0, 0.0
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, *_: object) -> None:
        self._start = time.perf_counter()

    def _post(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class MethodTimer:
    """Wall time and calls of one object's method (wrapped on the instance until :meth:`remove`)."""

    def __init__(self, obj: object, name: str) -> None:
        self.seconds, self.calls, self._obj, self._name = 0.0, 0, obj, name
        setattr(obj, name, self.timed(getattr(obj, name)))

    def timed(self, fn: Callable[..., object]) -> Callable[..., object]:
        """``fn``, its calls' wall time and count added to this timer's."""
        def call(*a: object, **kw: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return call

    def remove(self) -> None:
        delattr(self._obj, self._name)


class StepperTimer(MethodTimer):
    """Wall time and calls of the step callables a state-space backbone's ``stepper`` returns (a
    rollout's steps; making them is not counted)."""

    def __init__(self, obj: object) -> None:
        self.seconds, self.calls, self._obj, self._name = 0.0, 0, obj, "stepper"
        make = obj.stepper
        obj.stepper = lambda *a, **kw: self.timed(make(*a, **kw))


def profile_main(args: argparse.Namespace) -> None:
    """Print where one env's step spends its time, and the JSON line."""
    import cProfile
    import pstats

    kwargs = {"chunk_size": args.chunk_size, "num_inference_steps": args.steps, "device": args.device,
              "max_episode_frames": (2 * args.profile_steps + 2) * args.chunk_size,  # no reset in the timed steps
              **env_overrides(args)}
    if args.model:
        kwargs["model"] = args.model
    env = gym.make(args.env, **kwargs)
    inner = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    space = env.action_space

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(rng.uniform(space.low, space.high).astype(np.float32))
        if terminated or truncated:
            env.reset()

    step()  # warm-up
    # a backbone that rolls itself out (the pose-state step) calls the steps its stepper() makes (a
    # trace of its step network, which forward hooks do not see), not its own forward
    rolls_out = isinstance(inner.model.backbone, StateSpaceBackbone)
    backbone = ForwardTimer(inner.model.backbone)
    backbone_parts = [StepperTimer(inner.model.backbone)] if rolls_out else [
        ForwardTimer(m) for m in inner.model.backbone.children()]
    head_nets = {name: ForwardTimer(m) for name, m in vars(inner.reward_head).items() if isinstance(m, torch.nn.Module)}
    parts = {"model_s": 0.0, "decode_s": 0.0, "reward_s": 0.0}
    start = time.perf_counter()
    for _ in range(args.profile_steps):
        step()
        for key in parts:
            parts[key] += inner.last_timing.get(key, 0.0)
    total = time.perf_counter() - start
    for timer in [backbone, *backbone_parts, *head_nets.values()]:
        timer.remove()
    if backbone.calls == 0:
        backbone.seconds = sum(t.seconds for t in backbone_parts)
        backbone.calls = max((t.calls for t in backbone_parts), default=0)
    head_net_s = sum(t.seconds for t in head_nets.values())
    n, frames = args.profile_steps, args.profile_steps * args.chunk_size
    rows = [
        ("backbone forward passes", backbone.seconds),
        ("sampler around them (noise, schedule, clip plan, context)", parts["model_s"] - backbone.seconds),
        ("decoder / renderer", parts["decode_s"]),
        (f"reward head network ({', '.join(head_nets) or 'none'})", head_net_s),
        ("reward head, the rest (checks, preprocessing)", parts["reward_s"] - head_net_s),
        ("env Python (validation, bookkeeping, wrappers)", total - sum(parts.values())),
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.profile_steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # (cc, nc, tottime, cumtime, callers)
    functions = [{"function": name if file == "~" else f"{Path(file).name}:{line}({name})", "calls_per_step": nc / n,
                  "own_ms_per_step": 1000 * tt / n, "cumulative_ms_per_step": 1000 * ct / n}
                 for (file, line, name), (cc, nc, tt, ct, _) in top]
    env.close()

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"env {args.env}, chunk {args.chunk_size}, {n} steps ({frames} frames) after one warm-up, device {device}, "
          f"torch {torch.__version__}; {backbone.calls / n:.1f} backbone passes per step\n")
    print("| part | ms per step | ms per frame | share |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {1000 * seconds / n:.2f} | {1000 * seconds / frames:.2f} | {seconds / total:.1%} |")
    print(f"| total | {1000 * total / n:.2f} | {1000 * total / frames:.2f} | 100% |")
    print(f"\nframes/s {frames / total:.1f}; under cProfile, the functions with the most time of their own:\n")
    print("| function | calls per step | own ms per step | cumulative ms per step |")
    print("| --- | ---: | ---: | ---: |")
    for f in functions:
        print(f"| {f['function']} | {f['calls_per_step']:.0f} | {f['own_ms_per_step']:.2f} | {f['cumulative_ms_per_step']:.2f} |")
    print(json.dumps({"benchmark": "speed_profile", "env": args.env, "chunk_size": args.chunk_size, "device": device,
                      "machine": platform.machine(), "steps": n, "frames_per_s": frames / total,
                      "backbone_passes_per_step": backbone.calls / n,
                      "parts_ms_per_step": {name: 1000 * seconds / n for name, seconds in rows},
                      "total_ms_per_step": 1000 * total / n, "top_functions": functions}))


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
    parser.add_argument("--reset", action="store_true", help="time reset instead of step (on CPU, the env's defaults)")
    parser.add_argument("--reset-ids", default="IRASim-PushT-v0,PoseState-PushT-v0",
                        help="comma-separated env ids whose reset --reset times")
    parser.add_argument("--reset-repeats", type=int, default=8, help="warm resets per column of --reset")
    parser.add_argument("--reset-new-episode", type=int, default=5000,
                        help="the first episode (gym-pusht seed) --reset uses as a new start, beyond the bank")
    parser.add_argument("--profile", action="store_true", help="split one env's step into its parts")
    parser.add_argument("--profile-steps", type=int, default=20, help="steps --profile times")
    parser.add_argument("--reward-model", default=None, help="reward head of the world-model env (default: the env's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another gym.make argument of the world-model env (repeatable), e.g. ensemble=1")
    parser.add_argument("--planning", action="store_true",
                        help="also time batched imagination for planning: 64 x 16 actions from one frame, "
                             "latents only, scored by the final step's coverage")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reset:
        reset_main(args)
        return
    if args.profile:
        profile_main(args)
        return

    rows = [pusht_case(args)]
    for n in (int(x) for x in args.envs.split(",")):
        rows.append(world_model_case(args, n))
    if args.planning:
        rows.append(planning_case(args))
    reference = rows[0]["frames_per_s"]
    for row in rows:
        row["ratio_to_pusht"] = row["frames_per_s"] / reference

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"env {args.env}, chunk {args.chunk_size}, device {device}, dtype {args.dtype or 'default'}, "
          f"decoder {args.decoder or 'default'}, overrides {env_overrides(args) or 'none'}, "
          f"torch {torch.__version__}\n")
    print("| case | frames/s | x gym-pusht | diffusion steps |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['case']} | {row['frames_per_s']:.1f} | {row['ratio_to_pusht']:.3f} | {row.get('diffusion_steps', '-')} |")
    print(json.dumps({"benchmark": "speed", "env": args.env, "device": device, "dtype": args.dtype,
                      "decoder": args.decoder, "overrides": env_overrides(args),
                      "chunk_size": args.chunk_size,
                      "machine": platform.machine(), "rows": rows}))


if __name__ == "__main__":
    main()
