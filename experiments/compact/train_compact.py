"""Train the compact-state world model (:mod:`world_gym.models.compact`) on pre-encoded latents.

    world-gym train compact-ae                 # autoencoder: codec latents <-> state vectors
    world-gym train compact-dynamics           # the step MLP, on multi-step rollouts of itself
    world-gym train compact-export export_to=runs/pusht/wm_compact

Both stages read the latents that ``world-gym train encode`` wrote into ``codec_dir`` (the same
ones the IRASim dynamics train on), checkpoint every ``trainer.ckpt_every`` steps, resume when run
again, log to ``log_ae.csv`` / ``log_dynamics.csv`` and stop after ``trainer.max_minutes``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from world_gym.diffusion import NoiseSchedule, SamplerConfig
from world_gym.models.codec import LatentCodec
from world_gym.models.compact import CompactAutoencoder, CompactConfig, CompactDynamics
from world_gym.training.common import CsvLog, compose, load_checkpoint, save_checkpoint, save_config
from world_gym.training.episodes import clip_starts, load_episodes
from world_gym.training.train_codec import load_codec
from world_gym.training.train_dynamics import action_spec, learning_rate
from world_gym.world_model import WorldModel, WorldModelConfig


def model_config(cfg: DictConfig, latent_shape: tuple[int, ...]) -> CompactConfig:
    """The model of ``cfg.model`` for latents of shape ``(N, C, h, w)``."""
    fields = OmegaConf.to_container(cfg.model, resolve=True)
    return CompactConfig(latent_channels=int(latent_shape[1]), latent_size=tuple(latent_shape[2:]),
                         action_dim=int(cfg.data.action.dim), **fields)  # type: ignore[arg-type]


def load_latents(cfg: DictConfig) -> np.ndarray:
    path = Path(cfg.codec_dir) / "latents.npy"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run `world-gym train encode` first")
    return np.load(path, mmap_mode="r")


POSE_COLUMNS = ("observation.state", "observation.block_pose")


def pose_rows(extras: dict[str, np.ndarray]) -> np.ndarray:
    """The ``POSE_COLUMNS`` of a dataset read by :func:`load_episodes` as ``(N, 6)`` float32: agent
    ``x, y`` and block ``x, y`` mapped from ``[0, 512]`` to ``[-1, 1]``, and the cosine and sine of
    the block's angle."""
    agent, block = extras[POSE_COLUMNS[0]], extras[POSE_COLUMNS[1]]
    return np.concatenate([(agent[:, :2] - 256.0) / 256.0, (block[:, :2] - 256.0) / 256.0,
                           np.cos(block[:, 2:3]), np.sin(block[:, 2:3])], axis=1).astype(np.float32)


def pose_targets(cfg: DictConfig, num_frames: int) -> np.ndarray:
    """The privileged pose of every latent frame, ``(N, 6)`` float32 (:func:`pose_rows`).

    Read from the dataset roots that ``latents.json`` names, in the order ``train encode`` read
    them; raises where they are gone, were replayed or disagree with the latents in length.
    """
    meta = json.loads((Path(cfg.codec_dir) / "latents.json").read_text())
    roots = [r for r in meta["roots"] if not r.startswith("replay:")]
    if len(roots) != len(meta["roots"]):
        raise ValueError("autoencoder.pose_weight needs the datasets themselves, not a replay manifest")
    poses = np.concatenate([
        pose_rows(load_episodes(root, extra_columns=POSE_COLUMNS, progress=False, images=False).extras)
        for root in roots])
    if len(poses) != num_frames:
        raise ValueError(f"the roots of latents.json hold {len(poses)} frames, latents.npy {num_frames}")
    return poses


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


def train_autoencoder(cfg: DictConfig) -> Path:
    """Train (or resume) the autoencoder; writes ``out_dir/autoencoder.pt`` and ``log_ae.csv``."""
    torch.set_num_threads(int(cfg.trainer.threads))
    torch.manual_seed(int(cfg.trainer.seed))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config_ae.yaml")
    latents = torch.from_numpy(np.array(load_latents(cfg), dtype=np.float16))  # in memory: random rows
    config = model_config(cfg, tuple(latents.shape))
    net = CompactAutoencoder(config)
    tc = cfg.autoencoder
    # privileged supervision (optional): a linear read-out of the state must give the frame's pose,
    # so the state holds the agent and the block however few cells they cover
    pose_weight = float(tc.get("pose_weight", 0.0))
    poses = torch.from_numpy(pose_targets(cfg, len(latents))) if pose_weight > 0 else None
    pose_head = nn.Linear(config.state_dim, 6)
    opt = torch.optim.AdamW([*net.parameters(), *pose_head.parameters()], lr=float(tc.lr))
    step = 0
    mean = latents[: int(tc.mean_frames)].float().mean(0)
    state = load_checkpoint(out / "autoencoder.pt")
    if state is not None:
        net.load_state_dict(state["model"])
        if "pose_head" in state:  # checkpoints before session 10 have none
            pose_head.load_state_dict(state["pose_head"])
        opt.load_state_dict(state["opt"])
        step, mean = int(state["step"]), state["latent_mean"]
    rng = np.random.default_rng(int(cfg.trainer.seed) + step)

    def batch_loss() -> torch.Tensor:
        rows = torch.from_numpy(rng.integers(0, len(latents), int(tc.batch_size)))
        x = latents[rows].float()
        states = net.encode(x)
        recon = net.decode(states + config.state_noise * torch.randn_like(states))
        loss = (object_weight(x, mean, float(tc.object_weight)) * (recon - x) ** 2).mean()
        if poses is not None:
            loss = loss + pose_weight * (pose_head(states) - poses[rows]).pow(2).mean()
        return loss + float(tc.state_l2) * states.pow(2).mean()

    def save(step: int) -> None:
        save_checkpoint(out / "autoencoder.pt", {
            "model": net.state_dict(), "pose_head": pose_head.state_dict(), "opt": opt.state_dict(),
            "step": step, "latent_mean": mean})

    train_loop(cfg, "compact autoencoder", step, int(tc.steps), opt, float(tc.grad_clip), batch_loss, save,
               CsvLog(out / "log_ae.csv", ["step", "loss", "seconds"]))
    return out


def encode_states(cfg: DictConfig, net: CompactAutoencoder, ae_step: int) -> np.ndarray:
    """Raw states of every training frame, cached in ``out_dir/states.npy`` for this autoencoder step
    and this number of latents (``train encode`` with more roots makes the cache stale)."""
    out = Path(cfg.out_dir)
    path, stamp = out / "states.npy", out / "states.step"
    latents = load_latents(cfg)
    if path.is_file() and stamp.is_file() and int(stamp.read_text()) == ae_step:
        cached = np.load(path, mmap_mode="r")
        if len(cached) == len(latents):
            return np.asarray(cached)
    with torch.no_grad():
        states = np.concatenate([
            net.encode(torch.from_numpy(np.asarray(latents[i:i + 2048], np.float32))).numpy()
            for i in tqdm(range(0, len(latents), 2048), desc="encoding states", unit="batch")
        ])
    np.save(path, states)
    stamp.write_text(f"{ae_step}\n")
    return states


def rollout_loss(model: CompactDynamics, states: torch.Tensor, actions: torch.Tensor, context_noise: float,
                 pad_history_prob: float) -> torch.Tensor:
    """Mean squared error of a model's own ``L - 2``-step rollout from each clip's first two states.

    Args:
        states: ``(B, L, D)`` normalised states of consecutive frames.
        actions: ``(B, L, A)`` normalised; ``actions[:, t]`` leads from frame ``t`` to ``t + 1``.
        context_noise: the two context states get Gaussian noise of a std drawn per clip from
            ``U(0, context_noise)`` (the paper's small noise on the context).
        pad_history_prob: share of clips whose context is the second frame twice without an action,
            as a rollout starts right after ``reset``.
    """
    b = states.shape[0]
    sigma = context_noise * torch.rand(b, 1)
    prev = states[:, 0] + sigma * torch.randn_like(states[:, 0])
    state = states[:, 1] + sigma * torch.randn_like(states[:, 1])
    prev_action = actions[:, 0]
    pad = torch.rand(b, 1) < pad_history_prob
    prev = torch.where(pad, state, prev)
    prev_action = torch.where(pad, torch.zeros_like(prev_action), prev_action)
    pred = model.rollout_states(prev, state, prev_action, actions[:, 1:-1])
    return (pred - states[:, 2:]).pow(2).mean()


def moving_starts(poses: np.ndarray, starts: np.ndarray, length: int, threshold: float = 0.002) -> np.ndarray:
    """The clip starts among ``starts`` whose ``length`` frames see the block move: its position
    (``poses[:, 2:4]``, ``[-1, 1]`` units: 0.002 is half a workspace unit) or its angle's cosine and
    sine change by more than ``threshold`` between two of them. Contact is what the step must learn,
    and the block moves in only a fifth of Push-T's frames."""
    change = np.abs(np.diff(poses[:, 2:6], axis=0)).max(axis=1) > threshold  # frame t -> t + 1
    window = np.concatenate([[0], np.cumsum(change)])
    hits = window[starts + length - 1] - window[starts] > 0
    if not hits.any():
        raise ValueError("dynamics.moving_share > 0, but the block never moves in a training clip")
    return starts[hits]


def train_dynamics(cfg: DictConfig) -> Path:
    """Train (or resume) the step MLP on the autoencoder's states; writes ``out_dir/dynamics.pt``."""
    torch.set_num_threads(int(cfg.trainer.threads))
    torch.manual_seed(int(cfg.trainer.seed))
    out = Path(cfg.out_dir)
    ae_state = load_checkpoint(out / "autoencoder.pt")
    if ae_state is None:
        raise FileNotFoundError(f"no {out / 'autoencoder.pt'}: run `world-gym train compact-ae` first")
    save_config(cfg, out / "config_dynamics.yaml")
    model = CompactDynamics(model_config(cfg, load_latents(cfg).shape))
    model.autoencoder.load_state_dict(ae_state["model"])
    model.autoencoder.requires_grad_(False)
    raw = torch.from_numpy(encode_states(cfg, model.autoencoder, int(ae_state["step"])))
    model.state_mean.copy_(raw.mean(0))
    model.state_std.copy_(raw.std(0) + 1e-3)
    states = (raw - model.state_mean) / model.state_std
    actions = torch.from_numpy(action_spec(cfg).normalize(np.load(Path(cfg.codec_dir) / "actions.npy")))
    episodes = np.load(Path(cfg.codec_dir) / "episode_index.npy")
    tc = cfg.dynamics
    length = int(tc.unroll) + 2
    starts = clip_starts(episodes, length)
    if len(starts) == 0:
        raise ValueError(f"no episode is {length} frames long")
    moving_share = float(tc.get("moving_share", 0.0))
    moving = moving_starts(pose_targets(cfg, len(episodes)), starts, length) if moving_share > 0 else starts
    opt = torch.optim.AdamW(model.step_net.parameters(), lr=float(tc.lr))
    step = 0
    state = load_checkpoint(out / "dynamics.pt")
    if state is not None:
        if int(state["ae_step"]) != int(ae_state["step"]):
            raise ValueError(f"{out / 'dynamics.pt'} was trained on the autoencoder of step "
                             f"{state['ae_step']}, autoencoder.pt is at step {ae_state['step']}: move "
                             "dynamics.pt away to start afresh")
        model.step_net.load_state_dict(state["step_net"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
    rng = np.random.default_rng(int(cfg.trainer.seed) + step)
    torch.manual_seed(int(cfg.trainer.seed) + 7919 * step)
    total = int(tc.steps)

    # a cosine decay from lr to lr_min over the run, the IRASim trainer's schedule: the loss is a
    # mean over rollouts, so the late steps refine what the early ones found
    schedule = OmegaConf.create({"lr": float(tc.lr), "lr_min": float(tc.lr_min), "steps": total,
                                 "warmup_steps": 1, "lr_schedule": "cosine", "decay_from": 0})

    def batch_loss() -> torch.Tensor:
        first = rng.choice(starts, int(tc.batch_size))
        if moving_share > 0:
            n_moving = int(rng.binomial(len(first), moving_share))
            first[:n_moving] = rng.choice(moving, n_moving)
        rows = torch.from_numpy(first[:, None] + np.arange(length))
        return rollout_loss(model, states[rows], actions[rows], float(tc.context_noise),
                            float(tc.pad_history_prob))

    def save(step: int) -> None:
        save_checkpoint(out / "dynamics.pt", {
            "step_net": model.step_net.state_dict(), "opt": opt.state_dict(), "step": step,
            "ae_step": int(ae_state["step"]), "state_mean": model.state_mean, "state_std": model.state_std})

    train_loop(cfg, "compact dynamics", step, total, opt, float(tc.grad_clip), batch_loss, save,
               CsvLog(out / "log_dynamics.csv", ["step", "loss", "lr", "seconds"]),
               lambda step: learning_rate(schedule, step))
    return out


def export_world_model(cfg: DictConfig, target: str | Path) -> Path:
    """Codec + compact backbone of ``out_dir`` as a world-model directory at ``target``."""
    out = Path(cfg.out_dir)
    ae_state, dyn_state = load_checkpoint(out / "autoencoder.pt"), load_checkpoint(out / "dynamics.pt")
    if ae_state is None or dyn_state is None:
        raise FileNotFoundError(f"{out} needs autoencoder.pt and dynamics.pt: train both stages first")
    config = model_config(cfg, load_latents(cfg).shape)
    backbone = CompactDynamics(config)
    backbone.autoencoder.load_state_dict(ae_state["model"])
    backbone.step_net.load_state_dict(dyn_state["step_net"])
    backbone.state_mean.copy_(dyn_state["state_mean"])
    backbone.state_std.copy_(dyn_state["state_std"])
    return save_state_space_model(cfg, target, "Compact", backbone, {
        "backbone_kind": "compact", "autoencoder_steps": int(ae_state["step"]), "steps": int(dyn_state["step"])})


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


def export_main(config_name: str, export: Callable[[DictConfig, Path | str], Path], overrides: list[str]) -> int:
    """``world-gym train *-export [export_to=DIR] [overrides]``: ``export`` to DIR (default ``out_dir/world_model``)."""
    target = [o.split("=", 1)[1] for o in overrides if o.startswith("export_to=")]
    cfg = compose(config_name, [o for o in overrides if not o.startswith("export_to=")])
    print(f"wrote {export(cfg, target[0] if target else Path(cfg.out_dir) / 'world_model')}")
    return 0


def main_autoencoder(overrides: list[str]) -> int:
    train_autoencoder(compose("train_compact", overrides))
    return 0


def main_dynamics(overrides: list[str]) -> int:
    train_dynamics(compose("train_compact", overrides))
    return 0


def main_export(overrides: list[str]) -> int:
    return export_main("train_compact", export_world_model, overrides)


if __name__ == "__main__":
    sys.exit(main_dynamics(sys.argv[1:]))
