"""Fidelity of Push-T world models against gym-pusht ground truth on held-out episodes.

    python benchmarks/fidelity.py                                        # copy-first-frame baseline only
    python benchmarks/fidelity.py --model world_gym/assets/tiny-pusht --episodes 10 --windows 2
    python benchmarks/fidelity.py --model runs/frame-ada --model runs/video-ada --video runs/fidelity.mp4

Two protocols, as IRASim's evaluation:

- short: the model's history of true frames (one for IRASim) and 15 recorded actions -> 15 frames,
  at ``--windows`` evenly spaced starts in each of the first ``--episodes`` held-out episodes;
- long: every selected episode with at least ``--long-min-steps`` actions, rolled out
  autoregressively from its first frame with all its recorded actions;
- random (``--protocols short,long,random``): ``--random-horizon`` uniformly random targets from the
  start states of the first ``--random-episodes`` held-out episodes, the truth played by gym-pusht
  itself. Policies under evaluation leave the training behaviours; this shows whether the board stays
  put when the agent flails (a zoo's random and noisy policies) before a long policy evaluation.

Metrics (``world_gym.envs.pusht.metrics``): PSNR, SSIM, latent L2 (in each model's codec; the baselines in the
first model's), block IoU, agent centre error, and, in the short protocol, Δ-PSNR of the last frame
against uniformly random actions drawn with the same sampler noise. ``--shape`` adds the T shape
error of every predicted frame (:class:`world_gym.envs.pusht.pixels.PushTFrameState`: the pixels
where the best-fitting rigid T and the block's pixels disagree, per pixel of the T; 1 for a frame
with no block): whether the block is still a rigid T, wherever it went, which block IoU cannot say
once a long rollout has parted from the truth. About 50 ms per frame. Frames/s is the rollout speed
(diffusion and decoding) of the same run. Baselines: copy-the-first-frame and the first model's
codec reconstruction (an upper bound for any dynamics on that codec); with ``--simulator-reading``,
gym-pusht itself started from the poses the first model's codec reads off each start frame (the agent
at rest, as at a reset: long and random protocols only), what a perfect dynamics model that starts from
that reading would score, so how much of a long horizon's loss the reading alone already seeds in
gym-pusht's own physics. Per-frame values are averaged per sequence, then over sequences. Prints a
markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from world_gym.envs.pusht import metrics
from world_gym.registration import default_device
from world_gym.data.episodes import EpisodeArrays, load_episodes
from world_gym.video import side_by_side, write_video
from world_gym.world_model import WorldModel

FRAME_METRICS = ("psnr", "ssim", "block_iou", "agent_error")
OPTIONAL_METRICS = ("t_shape",)
# a pose codec's gate switches that --block-gate / --block-gate-walls set (attribute names)
GATE_OPTIONS = ("block_gate", "block_gate_walls")
#: an untouched-block episode counts where gym-pusht's block centre moves at most this far (px of 512)
STILL_PX = 0.5


class CopyFirstFrame:
    """Baseline that predicts the last conditioning frame for every step (no dynamics at all)."""

    name = "copy first frame"
    history = 1

    def __init__(self, codec: WorldModel | None = None) -> None:
        self.codec = codec  # only to express its frames in a codec's latents, for latent L2

    def predict(self, context: np.ndarray, actions: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, None]:
        return np.repeat(context[:, -1:], actions.shape[1], axis=1), None


class CodecReconstruction:
    """Ground truth through a model's codec (encode, decode): the best any dynamics on it can score."""

    def __init__(self, model: WorldModel, name: str) -> None:
        self.codec, self.name, self.history = model, f"codec reconstruction ({name})", 1
        self.truth: np.ndarray | None = None

    def predict(self, context: np.ndarray, actions: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        assert self.truth is not None, "set .truth to the frames to reconstruct"
        b, n = self.truth.shape[:2]
        latents = self.codec.encode(self.truth.reshape(b * n, *self.truth.shape[2:]))
        frames = self.codec.decode(latents).reshape(self.truth.shape)
        return frames, latents.reshape(b, n, *latents.shape[1:])


class SimulatorFromReading:
    """gym-pusht's own physics and renderer from the agent's and block's poses a model's codec reads off
    the conditioning frame, the agent at rest (episodes and random rollouts start at a reset, where it
    is): the score of a perfect dynamics model that starts from that reading. Long and random protocols
    only (a short window starts mid-episode, with the agent moving)."""

    history = 1
    long_only = True

    def __init__(self, model: WorldModel, name: str) -> None:
        from world_gym.envs.pusht.simulator_model import PushTSimulator

        if not hasattr(model.codec, "token_scale"):
            raise SystemExit(f"--simulator-reading needs a pose codec; {name} has a {type(model.codec).__name__}")
        self.reader, self.name, self.codec = model, f"gym-pusht from {name}'s reading", None
        self.sim = PushTSimulator(token_scale=model.codec.token_scale)

    def predict(self, context: np.ndarray, actions: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, None]:
        from world_gym.envs.pusht.contact import tokens_to_pixels
        from world_gym.planning.imagination import Start

        agent, block = tokens_to_pixels(self.reader.encode(context[:, -1]).cpu(), self.sim.token_scale)
        frames = []
        for i in range(len(context)):
            state = (agent[i].double().numpy(), np.zeros(2), block[i].double().numpy())
            start = Start(frame=context[i, -1], latent=None, payload=state, info={})
            frames.append(self.sim.imagine(start, actions[i : i + 1].astype(np.float32), decode="all").frames[0])
        return np.stack(frames), None


class ModelRollout:
    """A world model under test: batched rollouts, one seeded noise generator per sequence, timed."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        dtype = getattr(torch, args.dtype) if args.dtype else None
        self.model = self.codec = WorldModel.from_pretrained(path, device=args.device, dtype=dtype)
        if args.ensemble:
            self.model.config.sampler.ensemble = args.ensemble
        self.model.set_passes(args.frames_per_pass, args.clip_padding)
        if dtype is not None:
            self.model.codec.to(dtype)
        if args.decoder is not None:
            self.model.codec.decoder = args.decoder
        for name in GATE_OPTIONS:  # a pose codec's gate switches, "on" / "off" / None (the model's setting)
            if getattr(args, name) is None:
                continue
            if not hasattr(self.model.codec, name):
                flag = "--" + name.replace("_", "-")
                raise SystemExit(f"{flag} needs a pose codec; {path} has a {type(self.model.codec).__name__}")
            setattr(self.model.codec, name, getattr(args, name) == "on")
        self.name = Path(path).name or str(path)
        self.history = self.model.history
        self.batch_size, self.steps, self.sampler = args.batch_size, args.steps, args.sampler
        self.chunk_size = args.chunk_size
        self.seconds, self.frames = 0.0, 0
        self.predict(np.zeros((1, 1, *self.model.config.frame_size, 3), np.uint8), np.zeros((1, 1, 2)), np.zeros(1))
        self.seconds, self.frames = 0.0, 0  # the call above was a warm-up

    def predict(self, context: np.ndarray, actions: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        frames, latents = [], []
        for s in range(0, len(context), self.batch_size):
            sl = slice(s, s + self.batch_size)
            generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds[sl]]
            start = time.perf_counter()
            if self.chunk_size:
                out_frames, out_latents = self.rollout_in_chunks(context[sl], actions[sl], generators)
            else:
                out = self.model.rollout(
                    context[sl], actions[sl], generator=generators, num_inference_steps=self.steps, sampler=self.sampler
                )
                out_frames, out_latents = out.frames, out.latents
            self.seconds += time.perf_counter() - start
            self.frames += out_frames.shape[0] * out_frames.shape[1]
            frames.append(out_frames)
            latents.append(out_latents.cpu())
        return np.concatenate(frames), torch.cat(latents)

    @torch.no_grad()
    def rollout_in_chunks(self, context: np.ndarray, actions: np.ndarray,
                          generators: list[torch.Generator]) -> tuple[np.ndarray, torch.Tensor]:
        """As an env with ``chunk_size`` steps it: one call per chunk, the last ``history`` latents
        and their actions carried from call to call."""
        model = self.model
        state = model.initial_context(context)
        new = []
        for start in range(0, actions.shape[1], self.chunk_size):
            acts = model.normalize_actions(actions[:, start : start + self.chunk_size])
            latents = model.rollout_latents(*state, acts, generators, self.steps, self.sampler)
            new.append(latents)
            state = model.advance_context(*state, latents, acts)
        latents = torch.cat(new, dim=1)
        return model.decode(latents), latents

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


@functools.lru_cache(maxsize=None)
def _frame_reader(size: int) -> Any:
    from world_gym.envs.pusht.pixels import PushTFrameState

    return PushTFrameState(size)


def t_shape_error(frames: np.ndarray) -> np.ndarray:
    """Per-frame T shape error of square ``(..., H, W, 3)`` frames (1 where no block is seen)."""
    reader = _frame_reader(frames.shape[-2])
    flat = frames.reshape(-1, *frames.shape[-3:])
    errors = [reader.estimate(f).shape_error for f in flat]
    return np.array([1.0 if np.isnan(e) else e for e in errors]).reshape(frames.shape[:-3])


def frame_metrics(pred: np.ndarray, true: np.ndarray, device: str, shape: bool = False
                  ) -> dict[str, np.ndarray]:
    """Per-frame metrics of ``(B, L, H, W, 3)`` videos; identical frames' PSNR is the 8-bit floor.
    ``shape``: also the predictions' T shape error."""
    h, w = true.shape[-3:-1]
    psnr = metrics.psnr(pred, true)
    # A lossless frame would average in as inf; count it as one channel of one pixel off by one.
    psnr_floor = 10 * math.log10(255.0**2 * h * w * 3)
    labels_pred, labels_true = metrics.pusht_segment(pred), metrics.pusht_segment(true)
    agent_pred = metrics.mask_centroid(labels_pred == metrics.AGENT)
    agent_true = metrics.mask_centroid(labels_true == metrics.AGENT)
    out = {"t_shape": t_shape_error(pred)} if shape else {}
    return out | {
        "psnr": np.minimum(psnr, psnr_floor),
        "identical": np.isinf(psnr),
        "ssim": metrics.ssim(pred, true, device=device),
        "block_iou": metrics.mask_iou(labels_pred == metrics.BLOCK, labels_true == metrics.BLOCK),
        "agent_error": np.linalg.norm(agent_pred - agent_true, axis=-1) * (metrics.PUSHT_WORKSPACE / w),
        "agent_found": ~np.isnan(agent_pred[..., 0]),
    }


class Tally:
    """Per-sequence means of per-frame metrics, kept per method; also a per-step curve for long rollouts."""

    def __init__(self) -> None:
        self.seq: dict[str, list[float]] = defaultdict(list)
        self.curve_sum: dict[str, np.ndarray] = {}
        self.curve_n: dict[str, np.ndarray] = {}
        self.identical = 0

    def add(self, values: dict[str, np.ndarray], lengths: np.ndarray, latent_l2: np.ndarray | None = None,
            delta: np.ndarray | None = None) -> None:
        for i, n in enumerate(lengths):
            for key in (*FRAME_METRICS, *(k for k in OPTIONAL_METRICS if k in values)):
                v = values[key][i, :n]
                if not np.isnan(v).all():
                    self.seq[key].append(float(np.nanmean(v)))
                curve = np.nan_to_num(v)
                if key not in self.curve_sum or len(self.curve_sum[key]) < n:
                    for store in (self.curve_sum, self.curve_n):
                        old = store.get(key, np.zeros(0))
                        store[key] = np.concatenate([old, np.zeros(n - len(old))])
                self.curve_sum[key][:n] += curve
                self.curve_n[key][:n] += ~np.isnan(v)
            self.seq["agent_found"].append(float(values["agent_found"][i, :n].mean()))
            self.identical += int(values["identical"][i, :n].sum())
        if latent_l2 is not None:
            self.seq["latent_l2"].extend(map(float, latent_l2))
        if delta is not None:
            self.seq["delta_psnr"].extend(map(float, delta))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: float(np.mean(v)) for k, v in self.seq.items() if v}
        out["sequences"] = len(self.seq["agent_found"])
        out["identical_frames"] = self.identical
        return out

    def curves(self) -> dict[str, list[float]]:
        return {k: (self.curve_sum[k] / np.maximum(self.curve_n[k], 1)).round(4).tolist() for k in self.curve_sum}


def short_windows(
    data: EpisodeArrays, episodes: list[np.ndarray], windows: int, horizon: int, history: int
) -> np.ndarray:
    """Rows ``t`` of the last conditioning frame: ``windows`` evenly spaced per episode, with room for
    ``history - 1`` earlier frames and ``horizon`` later ones."""
    starts = []
    for rows in episodes:
        lo, hi = rows[0] + history - 1, rows[-1] - horizon
        if hi >= lo:
            starts.append(np.unique(np.linspace(lo, hi, windows).round().astype(np.int64)))
    return np.concatenate(starts) if starts else np.zeros(0, np.int64)


def run_short(data: EpisodeArrays, methods: list[Any], args: argparse.Namespace, episodes: list[np.ndarray]) -> dict:
    history = max(m.history for m in methods)
    t = short_windows(data, episodes, args.windows, args.horizon, history)
    if len(t) == 0:
        raise SystemExit(f"no episode has {history + args.horizon} frames for the short protocol")
    ctx_rows = t[:, None] + np.arange(-history + 1, 1)
    act_rows = t[:, None] + np.arange(args.horizon)
    true = data.frames[act_rows + 1]
    actions = data.actions[act_rows]
    seeds = args.seed * 1_000_003 + t
    random_actions = np.random.default_rng(args.seed).uniform(args.action_low, args.action_high, actions.shape)
    lengths = np.full(len(t), args.horizon)
    results, true_latents = {}, {}
    for m in methods:
        if getattr(m, "long_only", False):
            continue
        print(f"short: {m.name} on {len(t)} windows", flush=True)
        context = data.frames[ctx_rows[:, -m.history:]]
        if isinstance(m, CodecReconstruction):
            m.truth = true
        pred, latents = m.predict(context, actions, seeds)
        tally = Tally()
        l2 = None
        if m.codec is not None and not args.no_latent:
            key = id(m.codec)
            if key not in true_latents:
                flat = m.codec.encode(true.reshape(-1, *true.shape[2:])).cpu()
                true_latents[key] = flat.reshape(*true.shape[:2], -1)
            if latents is None:  # copy baseline: the conditioning frame's latent at every step
                latents = m.codec.encode(context[:, -1]).cpu().reshape(len(t), 1, -1).expand(-1, args.horizon, -1)
            l2 = metrics.latent_l2(latents.reshape(*true.shape[:2], -1), true_latents[key])
        delta = None
        if not isinstance(m, CodecReconstruction) and not args.no_delta:
            random_pred, _ = m.predict(context, random_actions, seeds)
            delta = metrics.delta_psnr(true[:, -1], pred[:, -1], random_pred[:, -1])
        tally.add(frame_metrics(pred, true, args.metric_device, args.shape), lengths, l2, delta)
        results[m.name] = tally.summary()
    return results


def run_sequences(label: str, methods: list[Any], args: argparse.Namespace, batches: list[dict], keep: int
                  ) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Roll every method out on ``batches`` (dicts of ``context`` (B, 1, H, W, 3), ``actions``
    (B, n, 2), ``true`` (B, n, H, W, 3), ``lengths`` (B,) scored steps, ``seeds`` (B,)) and score it;
    returns summaries and the first ``keep`` sequences' predictions per method."""
    results, kept, true_latents = {}, {}, {}
    total = sum(len(b["seeds"]) for b in batches)
    for m in methods:
        print(f"{label}: {m.name} on {total} sequences", flush=True)
        tally, kept[m.name], done = Tally(), [], 0
        for j, b in enumerate(batches):
            true, lengths, n = b["true"], b["lengths"], b["true"].shape[1]
            if isinstance(m, CodecReconstruction):
                m.truth = true
            pred, latents = m.predict(b["context"], b["actions"], b["seeds"])
            l2 = None
            if m.codec is not None and not args.no_latent:
                key = (j, id(m.codec))
                if key not in true_latents:
                    flat = m.codec.encode(true.reshape(-1, *true.shape[2:])).cpu()
                    true_latents[key] = flat.reshape(*true.shape[:2], -1)
                true_lat = true_latents[key]
                if latents is None:
                    latents = m.codec.encode(b["context"][:, 0]).cpu().reshape(len(true), 1, -1)
                    latents = latents.expand(-1, n, -1)
                latents = latents.reshape(*true.shape[:2], -1)
                l2 = np.array([metrics.latent_l2(latents[i : i + 1, :k], true_lat[i : i + 1, :k])[0]
                               for i, k in enumerate(lengths)])
            tally.add(frame_metrics(pred, true, args.metric_device, args.shape), lengths, l2)
            kept[m.name].extend(pred[i, : lengths[i]] for i in range(len(true)) if done + i < keep)
            done += len(true)
        results[m.name] = {**tally.summary(), "curves": tally.curves()}
    return results, kept


def run_long(data: EpisodeArrays, methods: list[Any], args: argparse.Namespace, episodes: list[np.ndarray],
             keep: int) -> tuple[dict, list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Whole-episode rollouts; returns summaries, the kept episodes' true frames and each method's
    predictions."""
    seeds = np.array([rows[0] for rows in episodes]) + args.seed * 1_000_003
    truth_kept = [data.frames[rows[: (args.long_horizon or len(rows)) + 1]] for rows in episodes[:keep]]
    batches = []
    for s in range(0, len(episodes), args.long_batch):
        batch = episodes[s : s + args.long_batch]
        lengths = np.array([min(len(rows) - 1, args.long_horizon or len(rows)) for rows in batch])
        # pad shorter episodes by repeating their last action; rollouts are causal, so the padding
        # changes none of the frames that are scored
        act_rows = np.stack([np.minimum(rows[0] + np.arange(lengths.max()), rows[-1] - 1) for rows in batch])
        batches.append({"context": data.frames[np.array([rows[0] for rows in batch])][:, None],
                        "actions": data.actions[act_rows], "true": data.frames[act_rows + 1],
                        "lengths": lengths, "seeds": seeds[s : s + len(batch)]})
    results, kept = run_sequences("long", methods, args, batches, keep)
    return results, truth_kept, kept


def random_action_episodes(data: EpisodeArrays, episodes: list[np.ndarray], args: argparse.Namespace
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth of the random protocol: each held-out episode's start state (gym-pusht reset with
    the episode's seed), then ``--random-horizon`` uniformly random targets played in gym-pusht.

    Returns:
        ``(frames, actions, seeds)``: uint8 ``(E, horizon + 1, H, W, 3)``, float32 ``(E, horizon, 2)``
        and the episode seeds.
    """
    from world_gym.envs.pusht.ground_truth import make_pusht_env  # needs gym-pusht

    env = make_pusht_env(max_episode_steps=None)
    episode_seeds = np.asarray(data.extras["episode_seed"]).reshape(-1)
    frames, actions, seeds = [], [], []
    for rows in episodes:
        seed = int(episode_seeds[rows[0]])
        obs, _ = env.reset(seed=seed)
        if not np.array_equal(obs, data.frames[rows[0]]):
            raise SystemExit(f"gym-pusht's reset with seed {seed} does not give the first frame "
                             f"of the episode at row {rows[0]}")
        rng = np.random.default_rng([args.seed, seed])
        acts = rng.uniform(args.action_low, args.action_high, (args.random_horizon, 2)).astype(np.float32)
        obs_list = [obs] + [env.step(a)[0] for a in acts]  # no early end: the scored length is fixed
        frames.append(np.stack(obs_list))
        actions.append(acts)
        seeds.append(seed)
    return np.stack(frames), np.stack(actions), np.asarray(seeds)


def run_random(data: EpisodeArrays, methods: list[Any], args: argparse.Namespace, episodes: list[np.ndarray],
               keep: int) -> tuple[dict, list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Random-action rollouts from held-out start states, scored against gym-pusht playing the same actions:
    off the training behaviours, where a policy under evaluation takes a world model."""
    frames, actions, seeds = random_action_episodes(data, episodes, args)
    batches = [{"context": frames[s : s + args.long_batch, :1], "actions": actions[s : s + args.long_batch],
                "true": frames[s : s + args.long_batch, 1:],
                "lengths": np.full(len(seeds[s : s + args.long_batch]), args.random_horizon),
                "seeds": seeds[s : s + args.long_batch] + args.seed * 1_000_003}
               for s in range(0, len(seeds), args.long_batch)]
    results, kept = run_sequences("random", methods, args, batches, keep)
    return results, list(frames[:keep]), kept


def timed(models: list[ModelRollout], run: Callable[[], Any]) -> Any:
    """Run one protocol (``run()`` returns its summaries, or a tuple that starts with them) with the
    models' rollout timers reset, and add each model's ``frames_per_s`` to its summary."""
    for m in models:
        m.seconds, m.frames = 0.0, 0
    out = run()
    results = out[0] if isinstance(out, tuple) else out
    for m in models:
        results[m.name]["frames_per_s"] = m.frames_per_s
    return out


def write_side_by_side(path: str, truth: list[np.ndarray], preds: dict[str, list[np.ndarray]], scale: int,
                       fps: float) -> None:
    """Ground truth | each model, episode after episode, frames upscaled ``scale`` times (nearest)."""
    clips = []
    for i, true in enumerate(truth):
        columns = [true[1:]] + [p[i] for p in preds.values()]
        clips.append(side_by_side(*columns))
    video = np.concatenate(clips)
    write_video(path, video.repeat(scale, axis=1).repeat(scale, axis=2), fps=fps)
    print(f"wrote {path}: ground truth | {' | '.join(preds)}", flush=True)


def format_table(rows: list[dict]) -> str:
    def f(value: Any, fmt: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

    lines = [
        "| protocol | method | n | PSNR ↑ | SSIM ↑ | latent L2 ↓ | block IoU ↑ | agent err (px/512) ↓ | agent found "
        "| Δ-PSNR ↑ | T shape err ↓ | frames/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['protocol']} | {r['method']} | {r['sequences']} | {f(r.get('psnr'), '.2f')} | "
            f"{f(r.get('ssim'), '.3f')} | "
            f"{f(r.get('latent_l2'), '.4f')} | {f(r.get('block_iou'), '.3f')} | {f(r.get('agent_error'), '.1f')} | "
            f"{f(r.get('agent_found'), '.2f')} | {f(r.get('delta_psnr'), '.2f')} | {f(r.get('t_shape'), '.3f')} | "
            f"{f(r.get('frames_per_s'), '.1f')} |"
        )
    return "\n".join(lines)


def family_episodes(data: EpisodeArrays, episodes: list[np.ndarray], names: str = "",
                    per_family: int | None = None) -> dict[str, list[np.ndarray]]:
    """``episodes`` grouped by behaviour family (the ``behavior`` column), in code order; only the
    families named in ``names`` (comma separated, all when empty), the first ``per_family`` of each."""
    from world_gym.envs.pusht.behaviours import family_name

    codes = np.asarray(data.extras["behavior"]).reshape(-1)
    groups: dict[str, list[np.ndarray]] = {}
    for rows in sorted(episodes, key=lambda r: int(codes[r[0]])):
        groups.setdefault(family_name(codes[rows[0]]), []).append(rows)
    wanted = [n for n in names.split(",") if n]
    if set(wanted) - set(groups):
        missing = sorted(set(wanted) - set(groups))
        raise SystemExit(f"no episodes of families {missing} in the data; present: {sorted(groups)}")
    return {n: eps[:per_family] for n, eps in groups.items() if not wanted or n in wanted}


def run_families(data: EpisodeArrays, methods: list[Any], args: argparse.Namespace, episodes: list[np.ndarray]
                 ) -> dict[str, Any]:
    """Short and long protocols per behaviour family, and the untouched-block drift of the
    ``--drift-family`` episodes: whole rollouts of up to ``--drift-steps`` steps, scored at the last
    frame (block centre error in workspace pixels, :func:`~world_gym.envs.pusht.metrics.block_centre_error`:
    pixels near the agent not counted; block IoU) and by the largest centre error on the way; a frame
    that shows no block has no centre (``nan``) and IoU 0."""
    groups = family_episodes(data, episodes, args.families, args.family_episodes)
    long_args = argparse.Namespace(**{**vars(args), "long_horizon": args.long_horizon or 150})
    out: dict[str, Any] = {"families": {}, "long_horizon": long_args.long_horizon}
    for name, eps in groups.items():
        long_eps = [rows for rows in eps if len(rows) - 1 >= long_args.long_horizon]
        out["families"][name] = {
            "episodes": len(eps), "long_episodes": len(long_eps),
            "short": run_short(data, methods, args, eps),
            "long": run_long(data, methods, long_args, long_eps, 0)[0] if long_eps else {},
        }
    fams = out["families"].values()
    out["mean_over_families"] = {  # each family weighs the same, whatever its episodes
        m.name: {p: {k: float(np.mean([f[p][m.name][k] for f in fams if m.name in f[p] and k in f[p][m.name]]))
                     for k in FRAME_METRICS if any(k in f[p].get(m.name, {}) for f in fams)}
                 for p in ("short", "long")} for m in methods}
    drift_eps = groups.get(args.drift_family, []) if args.drift_family else []
    if drift_eps:
        drift_args = argparse.Namespace(**{**vars(args), "long_horizon": args.drift_steps})
        _, truth, kept = run_long(data, methods, drift_args, drift_eps, len(drift_eps))
        scale = metrics.PUSHT_WORKSPACE / truth[0].shape[-2]
        # gym-pusht's own block may move in such an episode (the agent grazes it, a wall pushes it out):
        # drift is the imagined block's motion where the true one stays still (within STILL_PX)
        true_motion = [scale * float(metrics.block_centre_error(t[-1], t[0])) for t in truth]
        out["drift"] = {"family": args.drift_family, "episodes": len(drift_eps),
                        "steps": [len(t) - 1 for t in truth], "true_motion_last": true_motion,
                        "still": [bool(m <= STILL_PX) for m in true_motion], "methods": {}}
        for name, preds in kept.items():
            centre = [scale * metrics.block_centre_error(p, t[1:]) for p, t in zip(preds, truth)]
            last_iou = [float(metrics.block_iou(p[-1], t[-1])) for p, t in zip(preds, truth)]
            # the imagined block's own motion, first to last predicted frame: drift without the start's misreading
            moved = [scale * float(metrics.block_centre_error(p[-1], p[0])) for p in preds]
            out["drift"]["methods"][name] = {
                "centre_drift_last": [float(c[-1]) for c in centre],
                "own_motion_last": moved,
                "centre_drift_max": [float(np.nanmax(c)) if np.isfinite(c).any() else math.nan for c in centre],
                "block_iou_last": last_iou}
    return out


def format_family_tables(report: dict[str, Any]) -> str:
    """Markdown tables of :func:`run_families`: per family and method, then the drift."""
    def f(a: dict, b: dict, key: str, fmt: str) -> str:
        return " / ".join("-" if v is None or math.isnan(v) else format(v, fmt) for v in (a.get(key), b.get(key)))

    h = report["long_horizon"]
    lines = [f"| family | episodes | method | PSNR 15 / {h} | block IoU 15 / {h} | agent err 15 / {h} |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    rows = [(family, res["episodes"], method, res["short"].get(method, {}), res["long"].get(method, {}))
            for family, res in report["families"].items()
            for method in dict.fromkeys([*res["short"], *res["long"]])]  # a long-only method too
    rows += [("mean over families", sum(r["episodes"] for r in report["families"].values()), method, m["short"],
              m["long"]) for method, m in report["mean_over_families"].items()]
    for family, episodes, method, short, long in rows:
        lines.append(f"| {family} | {episodes} | {method} | {f(short, long, 'psnr', '.2f')} | "
                     f"{f(short, long, 'block_iou', '.3f')} | {f(short, long, 'agent_error', '.1f')} |")
    if "drift" in report:
        d = report["drift"]
        still = np.array(d.get("still", [True] * d["episodes"]), bool)
        lines += ["", f"untouched block ({d['family']}, {d['episodes']} episodes, "
                  f"{min(d['steps'])}-{max(d['steps'])} steps; block centre error in px of 512)", "",
                  "| method | centre drift at the last frame: mean / max | largest on the way "
                  f"| own motion, first to last imagined frame, where gym-pusht's block stays still "
                  f"({int(still.sum())} of {len(still)}): mean / max "
                  "| block IoU at the last frame: mean / min | block lost at the last frame |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for method, m in d["methods"].items():
            drift, iou = np.array(m["centre_drift_last"]), m["block_iou_last"]
            seen, largest = drift[~np.isnan(drift)], np.array(m["centre_drift_max"])
            mean, worst = (f"{seen.mean():.2f}", f"{seen.max():.2f}") if len(seen) else ("-", "-")
            largest = f"{np.nanmax(largest):.2f}" if np.isfinite(largest).any() else "-"
            own = np.array(m.get("own_motion_last", [np.nan] * len(still)), float)[still]
            own = f"{np.nanmean(own):.2f} / {np.nanmax(own):.2f}" if np.isfinite(own).any() else "-"
            lines.append(f"| {method} | {mean} / {worst} | {largest} | {own} | {np.mean(iou):.3f} / {np.min(iou):.3f} | "
                         f"{int(np.isnan(drift).sum())} of {len(drift)} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/pusht/heldout", help="held-out LeRobotDataset root")
    parser.add_argument("--model", action="append", default=[], help="world-model directory (repeatable)")
    parser.add_argument("--episodes", type=int, default=None, help="first N held-out episodes (default: all)")
    parser.add_argument("--windows", type=int, default=8, help="short windows per episode")
    parser.add_argument("--horizon", type=int, default=15, help="actions per short window")
    parser.add_argument("--long-min-steps", type=int, default=150,
                        help="long protocol: episodes with >= this many actions")
    parser.add_argument("--long-episodes", type=int, default=None, help="at most this many long episodes")
    parser.add_argument("--long-horizon", type=int, default=None,
                        help="score only the first N steps of each long episode (default: the whole episode)")
    parser.add_argument("--protocols", default="short,long",
                        help="comma-separated: short, long, random (uniformly random targets from "
                             "held-out starts, truth from gym-pusht)")
    parser.add_argument("--random-episodes", type=int, default=10,
                        help="random protocol: first N held-out starts")
    parser.add_argument("--random-horizon", type=int, default=100, help="random protocol: steps per rollout")
    parser.add_argument("--random-video", default=None,
                        help="write ground truth | models for the random protocol")
    parser.add_argument("--by-family", action="store_true",
                        help="short and long protocols per behaviour family (the dataset's behavior column) "
                             "instead of over all episodes, and the untouched-block drift of --drift-family")
    parser.add_argument("--families", default="", help="--by-family: only these families (comma separated)")
    parser.add_argument("--family-episodes", type=int, default=None,
                        help="--by-family: the first N episodes of each family")
    parser.add_argument("--drift-family", default="near_miss",
                        help="--by-family: family whose block never moves, for the drift ('' to skip)")
    parser.add_argument("--drift-steps", type=int, default=300,
                        help="--by-family: steps of the drift rollouts")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="roll out as an env with this chunk_size steps (default: all actions in one call)")
    parser.add_argument("--frames-per-pass", type=int, default=None,
                        help="frames kept from each diffusion pass (default: the model's config.frames_per_pass)")
    parser.add_argument("--clip-padding", choices=["none", "zeros", "repeat_last"], default=None,
                        help="pad each pass's actions to a whole clip (default: the model's config.clip_padding)")
    parser.add_argument("--sampler", default=None, help="sampler name (default: the model's)")
    parser.add_argument("--ensemble", type=int, default=None,
                        help="each clip the mean of this many samples (default: the model's sampler.ensemble)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per rollout call")
    parser.add_argument("--long-batch", type=int, default=16, help="episodes per long rollout call")
    parser.add_argument("--no-delta", action="store_true", help="skip the random-action rollouts of Δ-PSNR")
    parser.add_argument("--no-reconstruction", action="store_true", help="skip the codec-reconstruction row")
    parser.add_argument("--no-latent", action="store_true",
                        help="skip latent L2 (it encodes every true frame: minutes for a pose codec's refinement)")
    parser.add_argument("--shape", action="store_true",
                        help="also score the T shape error of every predicted frame (about 50 ms a frame)")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="world-model precision, backbone and codec (default: the model's)")
    parser.add_argument("--decoder", default=None, choices=["fast", "vae", "render"],
                        help="decoder (default: a pose codec's sprite renderer if it has one, else the fast "
                        "decoder if there is one, else the VAE)")
    parser.add_argument("--block-gate", choices=["on", "off"], default=None,
                        help="a pose codec's untouched-block gate (default: the model's setting)")
    parser.add_argument("--block-gate-walls", choices=["on", "off"], default=None,
                        help="the gate also holds imagined blocks out of the walls (default: the model's setting)")
    parser.add_argument("--simulator-reading", action="store_true",
                        help="also gym-pusht itself from the first model's reading of each start frame "
                             "(long and random protocols)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--video", default=None, help="write ground truth | models side by side (.mp4/.gif)")
    parser.add_argument("--video-episodes", type=int, default=1)
    parser.add_argument("--video-scale", type=int, default=4)
    args = parser.parse_args(argv)
    args.metric_device = args.device
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the dict printed as the final JSON line."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    protocols = args.protocols.split(",")
    columns = (("episode_seed",) if "random" in protocols else ()) + (("behavior",) if args.by_family else ())
    data = load_episodes(args.data, columns)
    episodes = data.episode_rows()[: args.episodes]
    models = [ModelRollout(p, args) for p in args.model]
    methods: list[Any] = [CopyFirstFrame(models[0].model if models else None)]
    spec = models[0].model.action_spec if models else None
    args.action_low = np.asarray(spec.low, np.float32) if spec else np.zeros(2, np.float32)
    args.action_high = np.asarray(spec.high, np.float32) if spec else np.full(2, 512.0, np.float32)
    if models:
        if not args.no_reconstruction:
            methods.append(CodecReconstruction(models[0].model, models[0].name))
    methods += models
    if args.simulator_reading:
        if not models:
            raise SystemExit("--simulator-reading reads with the first --model's codec: name one")
        methods.append(SimulatorFromReading(models[0].model, models[0].name))
    shown = [m.name for m in models] or [methods[0].name]  # the videos' columns beside the truth
    rows, report = [], {"benchmark": "fidelity", "data": str(args.data), "episodes": len(episodes),
                        "device": torch.cuda.get_device_name() if args.device.startswith("cuda")
                        else f"CPU ({torch.get_num_threads()} threads)", "seed": args.seed,
                        "decoders": {m.name: m.model.codec.decoder for m in models},
                        "passes": {m.name: {"frames_per_pass": m.model.frames_per_pass,
                                            "clip_padding": m.model.config.clip_padding} for m in models}}
    report.update({name: getattr(args, name) for name in GATE_OPTIONS if getattr(args, name) is not None})
    if args.by_family:
        report["by_family"] = run_families(data, methods, args, episodes)
        print()
        print(format_family_tables(report["by_family"]))
        print(json.dumps(report))
        return report
    if "short" in protocols:
        res = timed(models, lambda: run_short(data, methods, args, episodes))
        report["short"] = {"horizon": args.horizon, "windows_per_episode": args.windows, "methods": res}
        rows += [{"protocol": f"short ({args.horizon})", "method": k, **v} for k, v in res.items()]
    eligible = [rows_ for rows_ in episodes if len(rows_) - 1 >= args.long_min_steps]
    long_eps = eligible[: args.long_episodes]
    if ("long" in protocols or args.video) and long_eps:
        long_methods = methods if "long" in protocols or not models else models
        selected = long_eps if "long" in protocols else long_eps[: args.video_episodes]
        keep = args.video_episodes if args.video else 0
        res, truth, kept = timed(models, lambda: run_long(data, long_methods, args, selected, keep))
        if "long" in protocols:
            lengths = [min(len(r) - 1, args.long_horizon or len(r)) for r in long_eps]
            report["long"] = {"min_steps": args.long_min_steps, "horizon": args.long_horizon, "episodes": len(long_eps),
                              "eligible_episodes": len(eligible),
                              "mean_steps": float(np.mean(lengths)), "methods": res}
            label = f"long ({args.long_horizon})" if args.long_horizon else f"long (whole, >= {args.long_min_steps})"
            rows += [{"protocol": label, "method": k, **v} for k, v in res.items()]
        if args.video:
            write_side_by_side(args.video, truth, {n: kept[n] for n in shown}, args.video_scale, 10.0)
    elif "long" in protocols:
        print(f"long: no selected episode has >= {args.long_min_steps} actions", flush=True)
    if "random" in protocols:
        selected = episodes[: args.random_episodes]
        keep = args.video_episodes if args.random_video else 0
        res, truth, kept = timed(models, lambda: run_random(data, methods, args, selected, keep))
        report["random"] = {"horizon": args.random_horizon, "episodes": len(selected), "methods": res}
        rows += [{"protocol": f"random ({args.random_horizon})", "method": k, **v} for k, v in res.items()]
        if args.random_video:
            write_side_by_side(args.random_video, truth, {n: kept[n] for n in shown}, args.video_scale, 10.0)
    print()
    print(format_table(rows))
    if "long" in protocols:
        print(f"\nlong protocol: {len(eligible)} of {len(episodes)} episodes have "
              f">= {args.long_min_steps} actions ({len(long_eps)} used)")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
