"""Train the compact-state world model (``compact.py`` beside this file) on pre-encoded latents.

An experiment, not part of the package (``experiments/NOTES.md`` has what it measured)::

    python experiments/compact/train_compact.py ae          # autoencoder: codec latents <-> state vectors
    python experiments/compact/train_compact.py dynamics    # the step MLP, on multi-step rollouts of itself
    python experiments/compact/train_compact.py export export_to=runs/pusht/wm_compact

Importing this module registers the ``Compact`` backbone, so its exported models load by name.

Both stages read the latents that ``world-gym train encode`` wrote into ``codec_dir`` (the same
ones the IRASim dynamics train on), checkpoint every ``trainer.ckpt_every`` steps, resume when run
again, log to ``log_ae.csv`` / ``log_dynamics.csv`` and stop after ``trainer.max_minutes``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from world_gym.backbones import register_backbone
from world_gym.training.common import CsvLog, export_main, load_checkpoint, save_checkpoint, save_config
from world_gym.data.episodes import clip_starts
from world_gym.training.state_space import (
    load_latents,
    object_weight,
    save_state_space_model,
    train_loop,
)
from world_gym.training.train_dynamics import action_spec, learning_rate
from world_gym.envs.pusht.train_pose import POSE_COLUMNS, moving_starts, pose_rows, pose_targets  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compact import CompactAutoencoder, CompactConfig, CompactDynamics  # noqa: E402

HERE = Path(__file__).resolve().parent
register_backbone("Compact", lambda cfg: CompactDynamics(CompactConfig.from_dict(cfg)))


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose this folder's ``<config_name>.yaml``; its groups (data, codec, trainer) come from the
    package's configs (``hydra.searchpath`` in the YAML)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(HERE), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))

def model_config(cfg: DictConfig, latent_shape: tuple[int, ...]) -> CompactConfig:
    """The model of ``cfg.model`` for latents of shape ``(N, C, h, w)``."""
    fields = OmegaConf.to_container(cfg.model, resolve=True)
    return CompactConfig(latent_channels=int(latent_shape[1]), latent_size=tuple(latent_shape[2:]),
                         action_dim=int(cfg.data.action.dim), **fields)  # type: ignore[arg-type]


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
        if "pose_head" in state:  # older checkpoints have none
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


def main_autoencoder(overrides: list[str]) -> int:
    train_autoencoder(compose("train_compact", overrides))
    return 0


def main_dynamics(overrides: list[str]) -> int:
    train_dynamics(compose("train_compact", overrides))
    return 0


def main_export(overrides: list[str]) -> int:
    return export_main("train_compact", export_world_model, overrides, compose)


STAGES: dict[str, Callable[[list[str]], int]] = {"ae": main_autoencoder, "dynamics": main_dynamics,
                                                  "export": main_export}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(STAGES)}}} [hydra overrides]")
    sys.exit(STAGES[sys.argv[1]](sys.argv[2:]))
