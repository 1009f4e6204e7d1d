"""Train the IRASim dynamics on pre-encoded latent clips; export a world-model directory.

    world-gym train dynamics dynamics=pusht_frame_ada trainer=dynamics_cpu
    torchrun --nproc_per_node 2 -m world_gym.training.train_dynamics trainer.threads=1   # DDP (gloo on CPU)
    world-gym train dynamics trainer=dynamics_gpu dynamics.size=S                       # one GPU, bf16
    world-gym train export export_to=world_gym/assets/pusht        # codec + EMA backbone -> WorldModel

AdamW, EMA and gradient clipping as in IRASim. Clips are ``history`` clean frames followed by
generated ones; a share of batches uses shorter clips (so small action chunks work at inference)
and a share pads the history by repeating its first frame without actions (as an env does right
after ``reset``). Checkpoints every ``ckpt_every`` steps; re-running resumes.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from diffusers import DDPMScheduler
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from world_gym.action_spec import ActionSpec
from world_gym.samplers.diffusion import NoiseSchedule, SamplerConfig, diffusion_loss
from world_gym.backbones.irasim import IRASim, IRASimConfig
from world_gym.envs.pusht.pose_codec import POSE_CODEC_FILE
from world_gym.training.common import EMA, CsvLog, compose, export_dtype, export_main, load_checkpoint
from world_gym.training.common import save_checkpoint, save_config, set_export_passes
from world_gym.training.common import learning_rate, training_device  # noqa: F401  (re-exported)
from world_gym.training.train_codec import load_codec
from world_gym.world_model import WorldModel, WorldModelConfig


def action_spec(cfg: DictConfig) -> ActionSpec:
    return ActionSpec(**OmegaConf.to_container(cfg.data.action, resolve=True))  # type: ignore[arg-type]


def backbone_config(cfg: DictConfig, latent_channels: int, latent_size: tuple[int, int]) -> IRASimConfig:
    d = cfg.dynamics
    return IRASimConfig.preset(
        d.size,
        latent_channels=latent_channels,
        latent_size=latent_size,
        patch_size=int(d.patch_size),
        num_frames=int(d.num_frames),
        action_dim=int(cfg.data.action.dim),
        conditioning=d.conditioning,
        action_embedder=d.action_embedder,
        action_hidden_mult=int(d.action_hidden_mult),
        action_map=OmegaConf.to_container(d.action_map, resolve=True) if d.get("action_map") else None,
        action_channels=bool(d.get("action_channels", False)),
        reference_frame=None if d.get("reference_frame") is None else int(d.reference_frame),
        residual=bool(d.get("residual", False)),
        pose_frame=_token_scale(cfg) if d.get("pose_frame") else None,
        fourier_features=int(d.get("fourier_features", 0) or 0),
        board_pose=bool(d.get("board_pose", False)),
    )


def _token_scale(cfg: DictConfig) -> float:
    """The ``token_scale`` of ``codec_dir``'s pose tokens (``world-gym train pose-tokens``)."""
    meta = _latents_record(Path(cfg.codec_dir)) or {}
    if "token_scale" not in meta:
        raise ValueError(f"dynamics.pose_frame needs pose tokens; {cfg.codec_dir} holds other latents")
    return float(meta["token_scale"])


class ClipSampler:
    """Random latent clips with their normalised actions and action masks."""

    def __init__(self, latents: np.ndarray, actions: np.ndarray, episodes: np.ndarray, cfg: DictConfig, seed: int):
        self.latents, self.actions, self.episodes = latents, actions, episodes
        self.history = int(cfg.dynamics.history)
        self.num_frames = int(cfg.dynamics.num_frames)
        self.short_clip_prob = float(cfg.trainer.short_clip_prob)
        self.pad_history_prob = float(cfg.trainer.pad_history_prob)
        self.rng = np.random.default_rng(seed)
        same = episodes[: len(episodes) - self.num_frames + 1] == episodes[self.num_frames - 1 :]
        self.starts = np.flatnonzero(same)
        if len(self.starts) == 0:
            raise ValueError(f"no episode is {self.num_frames} frames long")

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        length = self.num_frames
        if self.rng.random() < self.short_clip_prob:
            length = int(self.rng.integers(self.history + 1, self.num_frames))
        starts = self.rng.choice(self.starts, size=batch)
        rows = starts[:, None] + np.arange(length)[None]
        x = torch.from_numpy(self.latents[rows].astype(np.float32))
        # the action of row t leads to frame t + 1: frame i of the clip gets the action of row i - 1
        a = np.zeros((batch, length, self.actions.shape[1]), np.float32)
        a[:, 1:] = self.actions[rows[:, :-1]]
        mask = np.ones((batch, length), bool)
        mask[:, 0] = False
        if self.history > 1 and self.rng.random() < self.pad_history_prob:
            pad = int(self.rng.integers(1, self.history))
            x[:, :pad] = x[:, pad : pad + 1]
            mask[:, : pad + 1] = False
        return x, torch.from_numpy(a), torch.from_numpy(mask)


def motion_weight(latents: torch.Tensor, history: int, strength: float) -> torch.Tensor | None:
    """Per-cell loss weights ``1 + strength * |z_t - z_{t-1}|`` (channel mean, capped at 2) on the
    generated frames, or None when ``strength`` is 0.

    The agent and a pushed block cover a few latent cells of a mostly static board; unweighted,
    their motion, which is what the actions control, is a sliver of the loss.
    """
    if strength <= 0:
        return None
    change = (latents[:, 1:] - latents[:, :-1]).abs().mean(dim=2, keepdim=True).clamp(max=2.0)
    return 1.0 + strength * change[:, history - 1 :]


def _setup_distributed(device: torch.device, timeout_minutes: float = 30.0) -> tuple[int, int]:
    """Rank and world size (torchrun's env). ``timeout_minutes`` bounds every collective: a process
    that waits longer for its peers fails with an error that names the collective instead of hanging."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return (dist.get_rank() if world > 1 else 0), world


def _out_of_time(mine: bool, world: int, device: torch.device) -> bool:
    """Whether any process is past ``trainer.max_minutes``: under DDP all stop at the same step (a
    process that left alone would leave the others waiting in the gradient all-reduce)."""
    if world == 1:
        return mine
    flag = torch.tensor([float(mine)], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def train_dynamics(cfg: DictConfig) -> Path:
    """Train (or resume) the dynamics backbone; rank 0 writes ``ckpt.pt``, ``log.csv``, ``ema.safetensors``."""
    device = training_device(str(cfg.trainer.get("device", "cpu")))
    # bf16 autocast: on a GPU about 2x the fp32 speed; the weights, EMA and optimizer stay fp32
    amp = bool(cfg.trainer.get("bf16", False))
    rank, world = _setup_distributed(device, float(cfg.trainer.get("dist_timeout_minutes", 30)))
    out = Path(cfg.out_dir)
    torch.manual_seed(int(cfg.trainer.seed) + rank)
    torch.set_num_threads(int(cfg.trainer.threads))
    codec_dir = Path(cfg.codec_dir)
    latents = np.load(codec_dir / "latents.npy", mmap_mode="r")
    spec = action_spec(cfg)
    actions = spec.normalize(np.load(codec_dir / "actions.npy"))
    episodes = np.load(codec_dir / "episode_index.npy")
    bb_cfg = backbone_config(cfg, latents.shape[1], tuple(latents.shape[2:]))
    model = IRASim(bb_cfg).to(device)
    ema = EMA(model, float(cfg.trainer.ema_decay))
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.trainer.lr), weight_decay=float(cfg.trainer.weight_decay))
    step = warm_from = 0
    state = load_checkpoint(out / "ckpt.pt")
    if state is not None:
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        torch.manual_seed(int(cfg.trainer.seed) + rank + 7919 * step)  # fresh noise after a resume
    elif cfg.trainer.get("init_from"):
        # weights another machine returned (save_shards): model and EMA start there, the optimizer
        # afresh with its own warm-up
        weights, step = load_shards(cfg.trainer.init_from)
        model.load_state_dict(weights)
        ema.module.load_state_dict(weights)
        warm_from = step
        torch.manual_seed(int(cfg.trainer.seed) + rank + 7919 * step)
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        net = model
    sampler = ClipSampler(np.asarray(latents), actions, episodes, cfg, int(cfg.trainer.seed) * 1000 + rank + step)
    schedule = NoiseSchedule(**OmegaConf.to_container(cfg.dynamics.schedule, resolve=True))  # type: ignore[arg-type]
    train_scheduler = DDPMScheduler(**schedule.to_dict())
    total = int(cfg.trainer.steps)
    per_rank_batch = int(cfg.trainer.batch_size) // world
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        print(f"backbone {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
              f"{len(sampler.starts)} clip starts, {world} process(es), batch {per_rank_batch} per process, "
              f"{device}{', bf16 autocast' if amp else ''}")
    log = CsvLog(out / "log.csv", ["step", "loss", "lr", "seconds"]) if rank == 0 else None
    bar = tqdm(total=total, initial=step, desc="dynamics", unit="step", disable=rank != 0)
    start, running = time.perf_counter(), []

    def save() -> None:
        save_checkpoint(out / "ckpt.pt", {"model": model.state_dict(), "ema": ema.module.state_dict(),
                                          "opt": opt.state_dict(), "step": step})

    # a wall-clock budget for this run (a lent GPU's session): stop with a checkpoint, resume later
    budget_s = 60.0 * float(cfg.trainer.get("max_minutes", 0) or 0)
    while step < total:
        if budget_s and _out_of_time(time.perf_counter() - start > budget_s, world, device):
            if rank == 0:
                save()
                print(f"trainer.max_minutes reached at step {step}; checkpoint saved, run again to resume")
            break
        lr = learning_rate(cfg.trainer, step, warm_from)
        for group in opt.param_groups:
            group["lr"] = lr
        x, a, mask = (t.to(device, non_blocking=True) for t in sampler.sample(per_rank_batch))
        x, a, _ = model.to_clip_frame(x, a)
        weight = motion_weight(x, int(cfg.dynamics.history), float(cfg.trainer.motion_weight))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = diffusion_loss(net, train_scheduler, x, a, mask, int(cfg.dynamics.history),
                                  float(cfg.trainer.action_dropout), weight,
                                  float(cfg.trainer.get("history_noise", 0.0)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.grad_clip))
        opt.step()
        ema.update(model, step)
        step += 1
        running.append(loss.item())
        bar.update(1)
        if rank == 0 and (step % int(cfg.trainer.log_every) == 0 or step == total):
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            log.write(step=step, loss=f"{np.mean(running):.5f}", lr=f"{lr:.2e}",  # type: ignore[union-attr]
                      seconds=f"{time.perf_counter() - start:.0f}")
            running = []
        if rank == 0 and (step % int(cfg.trainer.ckpt_every) == 0 or step == total):
            save()
    bar.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


def save_shards(ckpt: str | Path, directory: str | Path, max_bytes: int = 15 * 2**20) -> list[Path]:
    """The EMA weights of a ``ckpt.pt`` as bf16 safetensors files of at most ``max_bytes`` each, and
    ``shards.json`` (step, files): small enough to come back from a machine that returns files of
    16 MiB at most (the lent GPU's), and to be carried to the next one (``trainer.init_from``)."""
    from safetensors.torch import save_file

    state = load_checkpoint(ckpt)
    if state is None:
        raise FileNotFoundError(f"no checkpoint at {ckpt}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state["ema"].items():
        t = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
        nbytes = t.numel() * t.element_size()
        if groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = t.contiguous()
        size += nbytes
    files = []
    for i, group in enumerate(groups):
        files.append(directory / f"ema-{i:05d}.safetensors")
        save_file(group, str(files[-1]))
    (directory / "shards.json").write_text(json.dumps({"step": int(state["step"]),
                                                       "files": [f.name for f in files]}) + "\n")
    return files


def load_shards(directory: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """Weights (float32) and step written by :func:`save_shards`; for a world-model directory or shipped
    name instead, its backbone's weights and step 0 (a fine-tune from a trained model)."""
    from safetensors.torch import load_file

    if not (Path(directory) / "shards.json").is_file():
        from world_gym.model_files import read_model_weights

        return {k: v.float() if v.is_floating_point() else v
                for k, v in read_model_weights(directory, "backbone.").items()}, 0
    directory = Path(directory)
    meta = json.loads((directory / "shards.json").read_text())
    weights: dict[str, torch.Tensor] = {}
    for name in meta["files"]:
        for key, value in load_file(str(directory / name)).items():
            weights[key] = value.float() if value.is_floating_point() else value
    return weights, int(meta["step"])


def export_world_model(cfg: DictConfig, target: str | Path) -> Path:
    """Assemble codec + EMA backbone of a finished run into a world-model directory at ``target``
    (from ``out_dir/ckpt.pt``, or from ``trainer.init_from``'s shards when there is none; their bf16
    backbone weights are then stored in bf16). ``cfg.export`` sets the exported model's passes
    (``frames_per_pass``, ``clip_padding``) and the dtype its backbone's weights are stored in."""
    export = cfg.get("export") or {}
    dtype = export_dtype(export.get("backbone_dtype"))
    state = load_checkpoint(Path(cfg.out_dir) / "ckpt.pt")
    from_shards = state is None and bool(cfg.trainer.get("init_from"))
    if from_shards:
        weights, step = load_shards(cfg.trainer.init_from)
        state = {"ema": weights, "step": step}
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out_dir}: train first")
    codec = load_codec(cfg.codec_dir)
    latents = np.load(Path(cfg.codec_dir) / "latents.npy", mmap_mode="r")
    bb_cfg = backbone_config(cfg, latents.shape[1], tuple(latents.shape[2:]))
    backbone = IRASim(bb_cfg)
    backbone.load_state_dict(state["ema"])
    config = WorldModelConfig(
        backbone_config=bb_cfg.to_dict(),
        codec=codec.config_dict(),
        action=action_spec(cfg),
        frame_size=tuple(cfg.data.frame_size),
        fps=float(cfg.data.fps),
        chunk_size=int(cfg.dynamics.num_frames) - int(cfg.dynamics.history),
        history=int(cfg.dynamics.history),
        schedule=NoiseSchedule(**OmegaConf.to_container(cfg.dynamics.schedule, resolve=True)),  # type: ignore[arg-type]
        sampler=SamplerConfig(**OmegaConf.to_container(cfg.dynamics.sampler, resolve=True)),  # type: ignore[arg-type]
        metadata={"family": cfg.data.family, "trained": True, "steps": int(state["step"]),
                  "conditioning": bb_cfg.conditioning, "train_config": _training_config(cfg),
                  "latents": _latents_record(Path(cfg.codec_dir)), **_pose_codec_record(Path(cfg.codec_dir))},
    )
    model = WorldModel(config, backbone=backbone, codec=codec)
    set_export_passes(model, export)
    # shards hold bf16 weights: stored as they are, the backbone takes half the space, losslessly
    return model.save_pretrained(target, backbone_dtype=dtype or (torch.bfloat16 if from_shards else None))


def _training_config(cfg: DictConfig) -> dict:
    """The config the checkpoint's last training run used (``out_dir/config.yaml``), not the
    export command's: trainer overrides given at training time (lr, history_noise) stay on record."""
    saved = Path(cfg.out_dir) / "config.yaml"
    source = OmegaConf.load(saved) if saved.is_file() else cfg
    return OmegaConf.to_container(source, resolve=True)  # type: ignore[return-value]


def _latents_record(codec_dir: Path) -> dict | None:
    """What ``train encode`` wrote the latents from (``latents.json``), when it says."""
    path = codec_dir / "latents.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _pose_codec_record(codec_dir: Path) -> dict:
    """For pose tokens (``train pose-tokens``): where the pose encoder and decoder came from and how
    many steps each trained, under ``"pose_codec"``; nothing for a VAE codec."""
    path = codec_dir / POSE_CODEC_FILE
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    if "world_model" in meta:
        return {"pose_codec": {"world_model": meta["world_model"]}}
    steps = {}
    for name in ("encoder", "decoder"):
        state = load_checkpoint(Path(meta["pose_dir"]) / f"{name}.pt")
        steps[f"{name}_steps"] = None if state is None else int(state["step"])
    return {"pose_codec": {"vae_codec_dir": meta["vae_codec_dir"], "pose_dir": meta["pose_dir"], **steps}}


def main(overrides: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if overrides is None else overrides)
    train_dynamics(compose("train_dynamics", overrides))
    return 0


def main_export(overrides: list[str]) -> int:
    return export_main("train_dynamics", export_world_model, overrides)


def main_shards(overrides: list[str]) -> int:
    target = [o.split("=", 1)[1] for o in overrides if o.startswith("shards_to=")]
    cfg = compose("train_dynamics", [o for o in overrides if not o.startswith("shards_to=")])
    files = save_shards(Path(cfg.out_dir) / "ckpt.pt", target[0] if target else Path(cfg.out_dir) / "shards")
    print(f"wrote {len(files)} shard(s): {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
