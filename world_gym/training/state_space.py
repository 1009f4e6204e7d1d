"""What the trainers of deterministic state-space backbones share: pre-encoded latents, the
optimisation loop with progress, CSV log, checkpoints and a time budget, and the export of a
backbone with its codec as a world-model directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from world_gym.codecs.vae import LatentCodec
from world_gym.samplers import NoiseSchedule, SamplerConfig
from world_gym.training.common import CsvLog
from world_gym.training.train_codec import load_codec
from world_gym.training.train_dynamics import action_spec
from world_gym.world_model import WorldModel, WorldModelConfig


def load_latents(cfg: DictConfig) -> np.ndarray:
    path = Path(cfg.codec_dir) / "latents.npy"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run `world-gym train encode` first")
    return np.load(path, mmap_mode="r")


def object_weight(latents: torch.Tensor, mean: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-cell loss weights ``1 + strength * |z - mean|`` (channel mean, capped at 2): the agent and
    the block sit where a frame differs from the average frame, a few cells of a static board."""
    return 1.0 + strength * (latents - mean).abs().mean(dim=1, keepdim=True).clamp(max=2.0)


def train_loop(cfg: DictConfig, desc: str, step: int, total: int, opt: torch.optim.Optimizer,
               grad_clip: float, batch_loss: Callable[[], torch.Tensor], save: Callable[[int], None],
               log: CsvLog, learning_rate: Callable[[int], float] | None = None) -> int:
    """Optimizer steps from ``step`` to ``total`` (clipped gradients), with progress, CSV log,
    checkpoints (``save(step)``) every ``trainer.ckpt_every`` steps and at the end, and the
    ``trainer.max_minutes`` budget. Returns the step reached."""
    params = [p for group in opt.param_groups for p in group["params"]]
    budget = 60.0 * float(cfg.trainer.get("max_minutes", 0) or 0)
    start, running = time.perf_counter(), []
    bar = tqdm(total=total, initial=step, desc=desc, unit="step")
    while step < total:
        if budget and time.perf_counter() - start > budget:
            print(f"trainer.max_minutes reached at step {step}; checkpoint saved, run again to resume")
            break
        lr = learning_rate(step) if learning_rate else opt.param_groups[0]["lr"]
        for group in opt.param_groups:
            group["lr"] = lr
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        step += 1
        running.append(loss.item())
        bar.update(1)
        if step % int(cfg.trainer.log_every) == 0 or step == total:
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            log.write(step=step, loss=f"{np.mean(running):.5f}", lr=f"{lr:.2e}",
                      seconds=f"{time.perf_counter() - start:.0f}")
            running = []
        if step % int(cfg.trainer.ckpt_every) == 0 or step == total:
            save(step)
    save(step)
    bar.close()
    return step


def save_state_space_model(cfg: DictConfig, target: str | Path, name: str, backbone: nn.Module,
                           metadata: dict, codec: LatentCodec | None = None) -> Path:
    """A deterministic state-space ``backbone`` (registered as ``name``, with a ``config``) and ``codec``
    (default: the codec of ``cfg.codec_dir``) saved as a world-model directory at ``target``;
    ``metadata`` joins the family, ``trained`` and the training config."""
    codec = codec if codec is not None else load_codec(cfg.codec_dir)
    wm_config = WorldModelConfig(
        backbone=name,
        backbone_config=backbone.config.to_dict(),
        codec=codec.config_dict(),
        action=action_spec(cfg),
        frame_size=tuple(cfg.data.frame_size),
        fps=float(cfg.data.fps),
        chunk_size=int(cfg.chunk_size),
        history=backbone.config.history,
        schedule=NoiseSchedule(),
        sampler=SamplerConfig(name="ddim", num_inference_steps=1),  # unused: the backbone is deterministic
        metadata={"family": cfg.data.family, "trained": True, **metadata,
                  "train_config": OmegaConf.to_container(cfg, resolve=True)},
    )
    return WorldModel(wm_config, backbone=backbone, codec=codec).save_pretrained(target)
