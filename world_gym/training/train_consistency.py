"""Consistency distillation of a world model's dynamics; export a world model that samples in 1-2 steps.

    world-gym train consistency-tokens token_roots=[data/pusht/train]   # the teacher's latents of datasets
    world-gym train consistency trainer.max_minutes=40                  # distil (resumes when re-run)
    world-gym train consistency-export export_to=runs/consistency/world_model

The teacher is a world-model directory (default: the shipped ``pusht-irasim-pose``); the student is
a copy of its backbone, trained as a latent consistency model (LCM): clips of the training latents
are noised to a timestep of a DDIM grid, the teacher takes one DDIM step down the grid, and the
student's ``f(x_t, t)`` is pulled towards its EMA target's ``f`` at the teacher's point
(:func:`~world_gym.samplers.consistency.consistency_distillation_loss`). The export is the teacher's
directory with the EMA target's weights and ``sampler: consistency``, so ``gym.make(...,
model=DIR)`` and ``WorldModel.from_pretrained(DIR)`` take it like any model.

Data: ``codec_dir`` holds latents as ``world-gym train encode`` writes them (``latents.npy``
``(N, C, h, w)``, ``actions.npy`` in env units, ``episode_index.npy``). ``consistency-tokens`` writes
them from LeRobotDatasets (``world-gym collect pusht``): for a pose codec the privileged poses the
teacher was trained on, otherwise the frames encoded by the teacher's codec.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from world_gym.samplers.base import SamplerConfig
from world_gym.samplers.consistency import (
    ConsistencyFunction,
    clean_regression_loss,
    consistency_distillation_loss,
)
from world_gym.training.common import EMA, CsvLog, compose, export_dtype, export_main, learning_rate
from world_gym.training.common import load_checkpoint, save_checkpoint, save_config, set_export_passes
from world_gym.training.common import training_device
from world_gym.training.train_dynamics import ClipSampler as ClipBatches
from world_gym.training.train_dynamics import motion_weight
from world_gym.world_model import WorldModel


def load_teacher(cfg: DictConfig, device: torch.device | str = "cpu") -> WorldModel:
    """The teacher world model of ``cfg.teacher`` (a shipped name or a directory), float32, frozen."""
    teacher = WorldModel.from_pretrained(str(cfg.teacher), device=device, dtype=torch.float32)
    return teacher.eval().requires_grad_(False)


def consistency_function(cfg: DictConfig, teacher: WorldModel) -> ConsistencyFunction:
    """The student's boundary condition over the teacher's schedule (``cfg.distill``)."""
    return ConsistencyFunction(teacher.config.schedule, float(cfg.distill.sigma_data),
                               float(cfg.distill.timestep_scaling))


def write_tokens(cfg: DictConfig) -> Path:
    """``codec_dir``: the teacher's latents of every frame of ``token_roots``, their actions (env
    units) and episode index, and ``latents.json`` saying where they came from.

    A pose codec's tokens are the privileged poses of the datasets' ``observation.state`` and
    ``observation.block_pose`` columns times its ``token_scale`` (what the shipped Push-T teacher
    trained on; frames not needed), and ``pose_codec.json`` names the teacher, so that ``world-gym
    train dynamics codec_dir=...`` (with ``trainer.init_from=<teacher>`` to fine-tune it) trains a
    diffusion model on them and ``train export`` gives it the teacher's codec; any other codec
    encodes the frames.
    """
    teacher = load_teacher(cfg)
    pose = teacher.config.codec.get("pose")
    latents, actions, episodes, offset = [], [], [], 0
    for root in cfg.token_roots:
        if pose is not None:
            from world_gym.data.episodes import load_episodes
            from world_gym.envs.pusht.train_pose import POSE_COLUMNS, pose_rows

            arrays = load_episodes(root, extra_columns=POSE_COLUMNS, images=False)
            z = pose_rows(arrays.extras) * float(pose["token_scale"])
            z = z[:, :, None, None]
        else:
            from world_gym.data.episodes import load_episodes

            arrays = load_episodes(root)
            with torch.no_grad():
                z = torch.cat([teacher.encode(np.asarray(arrays.frames[i : i + 256])).float()
                               for i in range(0, len(arrays.frames), 256)]).numpy()
        _, index = np.unique(np.asarray(arrays.episode_index), return_inverse=True)
        latents.append(np.asarray(z, np.float32))
        actions.append(np.asarray(arrays.actions, np.float32))
        episodes.append(index.astype(np.int64) + offset)
        offset += int(index.max()) + 1
    out = Path(cfg.codec_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "latents.npy", np.concatenate(latents))
    np.save(out / "actions.npy", np.concatenate(actions))
    np.save(out / "episode_index.npy", np.concatenate(episodes))
    record = {"roots": [str(r) for r in cfg.token_roots], "frames": int(sum(len(z) for z in latents)),
              "episodes": offset, "teacher": str(cfg.teacher)}
    if pose is not None:
        from world_gym.envs.pusht.pose_codec import POSE_CODEC_FILE

        record.update(pose_tokens="privileged poses", token_scale=float(pose["token_scale"]))
        # `train dynamics codec_dir=<this>` trains a diffusion model on these tokens, exported with the teacher's codec
        (out / POSE_CODEC_FILE).write_text(json.dumps({"world_model": str(cfg.teacher)}, indent=1) + "\n")
    (out / "latents.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {record['frames']} latents of {offset} episodes to {out}")
    return out


def _clip_batches(cfg: DictConfig, teacher: WorldModel, seed: int) -> ClipBatches:
    codec_dir = Path(cfg.codec_dir)
    if not (codec_dir / "latents.npy").is_file():
        raise FileNotFoundError(f"{codec_dir} has no latents.npy: run `world-gym train consistency-tokens` "
                                f"(or point codec_dir at a `world-gym train encode` output)")
    latents = np.load(codec_dir / "latents.npy")
    expected = (teacher.backbone.config.latent_channels, *teacher.backbone.config.latent_size)
    if latents.shape[1:] != expected:
        raise ValueError(f"{codec_dir}/latents.npy holds latents {latents.shape[1:]}, the teacher's are {expected}")
    actions = teacher.action_spec.normalize(np.load(codec_dir / "actions.npy")).astype(np.float32)
    episodes = np.load(codec_dir / "episode_index.npy")
    clip_cfg = OmegaConf.create({
        "dynamics": {"history": teacher.history, "num_frames": teacher.backbone.config.num_frames},
        "trainer": {"short_clip_prob": float(cfg.trainer.short_clip_prob),
                    "pad_history_prob": float(cfg.trainer.pad_history_prob)}})
    return ClipBatches(latents, actions, episodes, clip_cfg, seed)


def train_consistency(cfg: DictConfig) -> Path:
    """Distil (or resume distilling) ``cfg.teacher`` into a consistency student; writes ``ckpt.pt``
    (student, EMA target, optimizer, step), ``log.csv`` and ``config.yaml`` into ``out_dir``."""
    device = training_device(str(cfg.trainer.get("device", "cpu")))
    torch.set_num_threads(int(cfg.trainer.threads))
    torch.manual_seed(int(cfg.trainer.seed))
    out = Path(cfg.out_dir)
    teacher = load_teacher(cfg, device)
    student = copy.deepcopy(teacher.backbone).train().requires_grad_(True)
    target = EMA(student, float(cfg.trainer.ema_decay))
    opt = torch.optim.AdamW(student.parameters(), lr=float(cfg.trainer.lr),
                            weight_decay=float(cfg.trainer.weight_decay))
    step = 0
    state = load_checkpoint(out / "ckpt.pt")
    if state is not None:
        student.load_state_dict(state["student"])
        target.module.load_state_dict(state["target"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        torch.manual_seed(int(cfg.trainer.seed) + 7919 * step)  # fresh noise after a resume
    batches = _clip_batches(cfg, teacher, int(cfg.trainer.seed) * 1000 + step)
    function = consistency_function(cfg, teacher)
    history, total = teacher.history, int(cfg.trainer.steps)
    amp = bool(cfg.trainer.get("bf16", False))
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print(f"student {sum(p.numel() for p in student.parameters()) / 1e6:.2f}M parameters, "
          f"{len(batches.starts)} clip starts, batch {int(cfg.trainer.batch_size)}, {device}")
    log = CsvLog(out / "log.csv", ["step", "loss", "cd_loss", "clean_loss", "lr", "seconds"])
    bar = tqdm(total=total, initial=step, desc="consistency", unit="step")
    start, running = time.perf_counter(), {"loss": [], "cd": [], "clean": []}
    clean_weight = float(cfg.distill.clean_weight)

    def save() -> None:
        save_checkpoint(out / "ckpt.pt", {"student": student.state_dict(), "target": target.module.state_dict(),
                                          "opt": opt.state_dict(), "step": step})

    budget_s = 60.0 * float(cfg.trainer.get("max_minutes", 0) or 0)
    while step < total:
        if budget_s and time.perf_counter() - start > budget_s:
            save()
            print(f"trainer.max_minutes reached at step {step}; checkpoint saved, run again to resume")
            break
        lr = learning_rate(cfg.trainer, step)
        for group in opt.param_groups:
            group["lr"] = lr
        x, a, mask = (t.to(device) for t in batches.sample(int(cfg.trainer.batch_size)))
        x, a, _ = student.to_clip_frame(x, a)
        weight = motion_weight(x, history, float(cfg.trainer.motion_weight))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            cd = consistency_distillation_loss(
                student, target.module, teacher.backbone, function, None, x, a, mask, history,
                solver_steps=int(cfg.distill.solver_steps), skip=int(cfg.distill.skip), weight=weight,
                history_noise=float(cfg.trainer.history_noise), huber_c=float(cfg.distill.huber_c))
            clean = (clean_regression_loss(student, function, x, a, mask, history, weight)
                     if clean_weight > 0 else torch.zeros((), device=device))
            loss = cd + clean_weight * clean
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), float(cfg.trainer.grad_clip))
        opt.step()
        target.update(student, step)
        step += 1
        for key, value in (("loss", loss), ("cd", cd), ("clean", clean)):
            running[key].append(float(value.item()))
        bar.update(1)
        if step % int(cfg.trainer.log_every) == 0 or step == total:
            bar.set_postfix(loss=f"{np.mean(running['loss']):.5f}")
            log.write(step=step, loss=f"{np.mean(running['loss']):.6f}", cd_loss=f"{np.mean(running['cd']):.6f}",
                      clean_loss=f"{np.mean(running['clean']):.6f}", lr=f"{lr:.2e}",
                      seconds=f"{time.perf_counter() - start:.0f}")
            running = {k: [] for k in running}
        if step % int(cfg.trainer.ckpt_every) == 0 or step == total:
            save()
    bar.close()
    return out


def export_world_model(cfg: DictConfig, target: str | Path) -> Path:
    """The teacher's world-model directory with the EMA target's backbone weights and the
    ``"consistency"`` sampler (``cfg.export``: steps, frames per pass, clip padding, the dtype the
    backbone's weights are stored in) at ``target``."""
    dtype = export_dtype(cfg.export.get("backbone_dtype"))
    state = load_checkpoint(Path(cfg.out_dir) / "ckpt.pt")
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out_dir}: run `world-gym train consistency` first")
    model = load_teacher(cfg)
    model.backbone.load_state_dict(state["target"])
    options = {"sigma_data": float(cfg.distill.sigma_data), "timestep_scaling": float(cfg.distill.timestep_scaling)}
    if cfg.export.get("timesteps"):
        options["timesteps"] = [int(t) for t in cfg.export.timesteps]
    model.config.sampler = SamplerConfig(name="consistency", num_inference_steps=int(cfg.export.steps),
                                         options=options, ensemble=1)
    set_export_passes(model, cfg.export)
    saved = Path(cfg.out_dir) / "config.yaml"
    source = OmegaConf.load(saved) if saved.is_file() else cfg
    model.config.metadata = {
        **{k: v for k, v in model.config.metadata.items() if k != "train_config"},
        "teacher_train_config": model.config.metadata.get("train_config"),
        "consistency": {"teacher": str(cfg.teacher), "steps": int(state["step"]),
                        "train_config": OmegaConf.to_container(source, resolve=True)},
    }
    return model.save_pretrained(target, backbone_dtype=dtype)


def main(overrides: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if overrides is None else overrides)
    train_consistency(compose("train_consistency", overrides))
    return 0


def main_tokens(overrides: list[str]) -> int:
    write_tokens(compose("train_consistency", overrides))
    return 0


def main_export(overrides: list[str]) -> int:
    return export_main("train_consistency", export_world_model, overrides)


if __name__ == "__main__":
    sys.exit(main())
