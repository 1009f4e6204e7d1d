"""Training of the ``resnet_iou`` reward head: gym-pusht coverage regressed from 96x96 frames.

What it trains on and how to run it: ``world-gym train-reward-head --help``
(:data:`world_gym.commands.train_reward_head.DESCRIPTION`). The loop checkpoints to ``--out`` and
resumes from it; ``--export`` writes the fp16 safetensors that :class:`ResNetIoUReward` loads.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from world_gym.reward_models.pusht_coverage import (
    RenderedCoverage,
    balanced_weights,
    evaluate_coverage,
    evaluate_on_world_model,
    load_coverage_frames,
)
from world_gym.reward_models.resnet_iou import (
    PUSHT_SUCCESS_THRESHOLD,
    RefinedCoverageNet,
    build_coverage_net,
    build_refiner,
    crop_goal,
    frames_to_input,
    load_coverage_net,
    save_coverage_net,
)

#: The refiner learns frames with at least this coverage (its gate, 0.75, leaves room for the base's error).
REFINER_MIN_COVERAGE = 0.6


def augment(x: torch.Tensor, gen: torch.Generator, fraction: float = 0.5) -> torch.Tensor:
    """Blur and noise on a ``fraction`` of the batch, so the head tolerates a world model's softer frames.

    Args:
        x: network input ``(N, 3, H, W)`` in [-1, 1].
        gen: random source.
        fraction: chance of each frame to be blurred.

    Returns:
        The augmented batch (same shape).
    """
    n = x.shape[0]
    pick = torch.rand(n, generator=gen) < fraction
    if pick.any():
        sigma = 0.3 + 0.9 * torch.rand(1, generator=gen).item()
        k = torch.exp(-torch.arange(-2, 3, dtype=x.dtype) ** 2 / (2 * sigma**2))
        k = k / k.sum()
        xs = x[pick]
        xs = F.conv2d(F.pad(xs, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
        xs = F.conv2d(F.pad(xs, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
        xs = xs + 0.04 * torch.randn(xs.shape, generator=gen)
        x = x.clone()
        x[pick] = xs.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def recalibrate_batch_norm(net: torch.nn.Module, batches: Any) -> None:
    """Replace every batch norm's running statistics by their plain average over ``batches``.

    Training normalises each batch by its own statistics; evaluation uses running averages that,
    with momentum 0.1, remember the last ten or so batches. When batches differ (rendered or
    recorded frames, blurred or not), that memory moves the eval-mode output by more than the
    0.005 of coverage that decides success. Averaging over many batches removes the wobble.

    Args:
        net: network with batch norms (put back in train mode afterwards).
        batches: iterable of inputs drawn as in training.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for x in batches:
        net(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def boundary_weighted_loss(pred: torch.Tensor, target: torch.Tensor, boundary_weight: float,
                           threshold: float = PUSHT_SUCCESS_THRESHOLD, width: float = 0.02,
                           scale: float = 1.0, beta: float = 0.01) -> torch.Tensor:
    """Smooth L1 on ``scale * coverage``, each frame weighted ``1 + boundary_weight * g``.

    ``g`` is a Gaussian bump of ``width`` around the success threshold: an error there flips the
    success flag, the same error at coverage 0.3 changes a reward by a little.
    """
    per_frame = F.smooth_l1_loss(pred * scale, target * scale, beta=beta, reduction="none")
    if boundary_weight <= 0:
        return per_frame.mean()
    w = 1.0 + boundary_weight * torch.exp(-0.5 * ((target - threshold) / width) ** 2)
    return (w * per_frame).sum() / w.sum()


@dataclass
class TrainConfig:
    """Arguments of :func:`train` (the CLI flags of ``world-gym train-reward-head``)."""

    out: str = "runs/resnet_iou"
    train_root: list[str] = field(default_factory=list)
    heldout_root: str | None = None
    rendered_fraction: float = 0.5
    boundary_fraction: float = 0.0
    boundary_weight: float = 0.0
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    augment: bool = True
    augment_fraction: float = 0.5
    eval_every: int = 250
    eval_frames: int = 2000
    checkpoint_every: int = 25
    threads: int = 1
    bf16: bool = True
    seed: int = 0
    export: str | None = None
    refine_from: str | None = None
    bn_recalibrate: int = 0


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))))


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``checkpoint.pt`` written by :func:`train` without running code from it.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers load,
    any other Python object is refused before it is built. Checkpoints of earlier versions hold
    only those, so they resume as they are.

    Args:
        path: the checkpoint.

    Returns:
        ``{"net": state dict, "opt": optimizer state, "state": progress counters}``.

    Raises:
        ValueError: the file holds other objects (possibly planted code), is not a readable
            checkpoint, or lacks an entry.
    """
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "global" in str(err).lower():
            raise ValueError(
                f"{path} holds Python objects other than tensors and plain containers, so it was not loaded "
                "(training checkpoints are never unpickled: a crafted file could run code). A checkpoint "
                "written by train-reward-head never does; delete it to train from scratch."
            ) from err
        raise ValueError(f"{path} is not a readable training checkpoint: {err}") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable training checkpoint (truncated or corrupt?): {err}") from err
    missing = [k for k in ("net", "opt", "state") if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise ValueError(f"{path} is not a train-reward-head checkpoint: it lacks {missing}")
    return saved


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the coverage regressor; checkpoint, log and optionally export.

    Args:
        cfg: what to train on and for how long. ``out`` holds ``checkpoint.pt`` (resumed when
            present; also written on Ctrl-C or SIGTERM), ``log.jsonl`` and ``last.safetensors``
            (the weights at the last evaluation).

    Returns:
        The last evaluation (held-out metrics) and the training facts.
    """
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    refine = cfg.refine_from is not None
    if refine:  # second stage: the base stays as trained, only the goal-crop refiner learns
        base, _ = load_coverage_net(cfg.refine_from)
        if isinstance(base, RefinedCoverageNet):
            raise ValueError(f"{cfg.refine_from} already has a refiner; give the whole-frame weights")
        net = RefinedCoverageNet(base, build_refiner(base)).to(memory_format=torch.channels_last)
        net.base.requires_grad_(False).eval()
        trained = net.refiner
    else:
        net = trained = build_coverage_net().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"step": 0, "wall_s": 0.0, "cpu_s": 0.0, "frames_seen": 0}
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        saved = load_training_checkpoint(ckpt)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        state.update(saved["state"])
    rng = np.random.default_rng(cfg.seed + state["step"])
    gen = torch.Generator().manual_seed(cfg.seed + state["step"])

    real = [load_coverage_frames(r) for r in cfg.train_root]
    real_frames = np.concatenate([f for f, _ in real]) if real else None
    real_cov = np.concatenate([c for _, c in real]) if real else None
    if real and refine:
        keep = real_cov >= REFINER_MIN_COVERAGE
        real_frames, real_cov = real_frames[keep], real_cov[keep]
        real = real if len(real_cov) else []
    real_p = balanced_weights(real_cov) if real else None
    rendered_fraction = cfg.rendered_fraction if real else 1.0
    if refine:
        # half of the rendered frames in the success band, half anywhere the refiner decides
        renderer = _MixedRenderer([
            RenderedCoverage(boundary=1.0, agent_near=0.5),
            RenderedCoverage(boundary=1.0, band=(REFINER_MIN_COVERAGE, 1.0), max_offset=(25.0, 0.25),
                             agent_near=0.5)])
    else:
        renderer = RenderedCoverage(boundary=cfg.boundary_fraction) if rendered_fraction > 0 else None
    eval_sets = {"rendered": RenderedCoverage().sample(min(cfg.eval_frames, 1000), np.random.default_rng(10_000 + cfg.seed))}
    if refine:
        boundary_rng = np.random.default_rng(20_000 + cfg.seed)
        eval_sets["boundary"] = RenderedCoverage(boundary=1.0, agent_near=0.5).sample(
            min(cfg.eval_frames, 500), boundary_rng)
    elif cfg.boundary_fraction > 0:
        # Frames within 0.02 of the success threshold: where the flag's precision and recall are decided.
        boundary_rng = np.random.default_rng(20_000 + cfg.seed)
        eval_sets["boundary"] = RenderedCoverage(boundary=1.0).sample(min(cfg.eval_frames, 500), boundary_rng)
    if cfg.heldout_root:
        eval_sets["heldout"] = load_coverage_frames(cfg.heldout_root, cfg.eval_frames, cfg.seed)
        if refine:  # every held-out frame the refiner may decide
            frames, cov = load_coverage_frames(cfg.heldout_root)
            eval_sets["heldout_near"] = frames[cov >= 0.5], cov[cov >= 0.5]

    def draw_batch(rng: np.random.Generator, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n_rendered = int(round(cfg.batch_size * rendered_fraction))
        parts_f, parts_c = [], []
        if n_rendered:
            f, c = renderer.sample(n_rendered, rng)
            parts_f.append(f), parts_c.append(c)
        if cfg.batch_size - n_rendered:
            idx = rng.choice(len(real_cov), cfg.batch_size - n_rendered, p=real_p)
            parts_f.append(real_frames[idx]), parts_c.append(real_cov[idx])
        x = frames_to_input(np.concatenate(parts_f))
        y = torch.from_numpy(np.concatenate(parts_c))
        return (augment(x, gen, cfg.augment_fraction) if cfg.augment else x), y

    def evaluate() -> dict[str, Any]:
        if cfg.bn_recalibrate:  # its own random stream: the training batches do not depend on it
            seed = 7_777_777 + cfg.seed + state["step"]
            batches = (draw_batch(np.random.default_rng(seed), torch.Generator().manual_seed(seed))[0]
                       for _ in range(cfg.bn_recalibrate))
            recalibrate_batch_norm(trained, (crop_goal(x) for x in batches) if refine else batches)
        result = {name: evaluate_coverage(net, f, c) for name, (f, c) in eval_sets.items()}
        trained.train()  # evaluation leaves the whole net as it found it; only `trained` learns
        return result

    def save_checkpoint() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt)  # atomic: an interrupted save never corrupts the checkpoint

    # SIGTERM (kill, a scheduler) stops like Ctrl-C: checkpoint, then leave.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = open(out / "log.jsonl", "a")
    last: dict[str, Any] = {}
    bar = tqdm(total=cfg.steps, initial=state["step"], desc="resnet_iou")
    t0, c0 = time.time() - state["wall_s"], time.process_time() - state.get("cpu_s", 0.0)
    trained.train()
    try:
        while state["step"] < cfg.steps:
            x, y = draw_batch(rng, gen)
            for g in opt.param_groups:
                g["lr"] = _lr_at(state["step"], cfg)
            # bf16 autocast: about 2x faster on CPUs with avx512_bf16; weights and optimizer stay fp32.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                pred = net.refine(x) if refine else net(x).squeeze(1)
            if refine:  # in the refiner's own units (coverage x 20): beta 0.02 is 0.001 of coverage
                loss = boundary_weighted_loss(pred.float(), y, cfg.boundary_weight, scale=net.scale,
                                              beta=0.02)
            else:
                loss = boundary_weighted_loss(pred.float(), y, cfg.boundary_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            state["frames_seen"] += cfg.batch_size
            state["wall_s"], state["cpu_s"] = time.time() - t0, time.process_time() - c0
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
                last = evaluate()
                record = {"step": state["step"], "loss": loss.item(), "lr": _lr_at(state["step"], cfg),
                          "wall_s": round(state["wall_s"], 1), "cpu_s": round(state["cpu_s"], 1),
                          "frames_seen": state["frames_seen"], **last}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.write(json.dumps(record))
                save_coverage_net(net, out / "last.safetensors", {"train": asdict(cfg), "state": dict(state), "eval": last})
            if state["step"] % cfg.checkpoint_every == 0 or state["step"] == cfg.steps:
                save_checkpoint()
    except KeyboardInterrupt:
        save_checkpoint()
        bar.write(f"interrupted at step {state['step']}; checkpoint saved to {ckpt}, run again to resume")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        log.close()
    if cfg.export:
        # The final weights, not the best on held-out data: the held-out figures stay unbiased.
        save_coverage_net(net, cfg.export, {"train": asdict(cfg), "state": dict(state), "eval": last})
    return {"eval": last, "state": state}


class _MixedRenderer:
    """Draws each rendered frame from one of several :class:`RenderedCoverage`, picked uniformly."""

    def __init__(self, renderers: list[RenderedCoverage]) -> None:
        self.renderers = renderers

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(rng.integers(len(self.renderers), size=n), minlength=len(self.renderers))
        parts = [r.sample(int(k), rng) for r, k in zip(self.renderers, counts) if k]
        return np.concatenate([f for f, _ in parts]), np.concatenate([c for _, c in parts])


def _run(args: argparse.Namespace) -> int:
    if args.eval_only:
        if not args.heldout_root:
            raise SystemExit("--eval-only needs --heldout-root")
        torch.set_num_threads(args.threads)
        net, _ = load_coverage_net(args.eval_only)
        frames, coverage = load_coverage_frames(args.heldout_root)
        fitter = None
        if args.render_fit:
            from world_gym.reward_models.render_fit import RenderFit

            fitter = RenderFit()
        heldout = evaluate_coverage(net, frames, coverage, sweep=tuple(args.sweep), render_fit=fitter)
        result: dict[str, Any] = {"heldout_gt": heldout}
        if args.world_model:
            result.update(evaluate_on_world_model(net, args.world_model, args.heldout_root, args.wm_episodes,
                                                  render_fit=fitter))
        print(json.dumps(result))
        return 0
    fields = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    print(json.dumps(train(cfg)["eval"]))
    return 0
