"""Train the latent codec (a small ``AutoencoderKL``) on dataset frames, then pre-encode latents.

    world-gym train codec data=pusht codec=pusht_f8 trainer=codec_cpu
    world-gym train encode data=pusht            # latents of every training frame, for dynamics
    world-gym train decoder data=pusht           # optional: fine-tune the decoder alone on whole frames
    world-gym train fast-decoder data=pusht      # optional: a small decoder of the latents (~7x the VAE's speed)

Outputs under ``out_dir``: ``vae/`` (diffusers format, safetensors), ``codec.json`` (scaling
factor: 1 / std of the latents, as Stable Diffusion sets it), ``ckpt.pt`` (resume), ``log.csv``,
and after ``encode`` ``latents.npy`` with ``actions.npy`` / ``episode_index.npy`` beside it.

The ``decoder`` stage freezes the encoder, so latents already encoded (and dynamics trained on
them) stay valid, and trains the decoder on whole frames: a codec trained on crops normalises its
activations (GroupNorm) over a crop's statistics, and decoding whole frames then tints the white
board. It keeps ``decoder_ckpt.pt`` / ``decoder_log.csv`` and rewrites ``vae/`` when done.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from world_gym.codecs.vae import FastDecoder, LatentCodec
from world_gym.envs.pusht.pose_codec import POSE_CODEC_FILE, PoseCodec
from world_gym.training.common import CsvLog, learning_rate, load_checkpoint, save_checkpoint, save_config, training_device
from world_gym.data.episodes import load_episodes, load_training_episodes


def vae_config(cfg: DictConfig) -> dict:
    """``AutoencoderKL`` kwargs from a ``codec`` config group entry."""
    blocks = list(cfg.codec.block_out_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(blocks),
        "up_block_types": ["UpDecoderBlock2D"] * len(blocks),
        "block_out_channels": blocks,
        "layers_per_block": int(cfg.codec.layers_per_block),
        "latent_channels": int(cfg.codec.latent_channels),
        "norm_num_groups": int(cfg.codec.norm_num_groups),
        "mid_block_add_attention": bool(cfg.codec.mid_block_attention),
        "sample_size": int(cfg.data.frame_size[0]),
        "scaling_factor": 1.0,
    }


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def random_crops(frames: np.ndarray, idx: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` x ``size`` crops of ``frames[idx]`` at random positions (all of it when ``size`` is 0).

    The codec is fully convolutional, so training on crops costs a fraction of full frames and the
    result still runs on whole frames.
    """
    if size <= 0:
        return frames[idx]
    h, w = frames.shape[1:3]
    ys = rng.integers(0, h - size + 1, len(idx))
    xs = rng.integers(0, w - size + 1, len(idx))
    return np.stack([frames[i, y : y + size, x : x + size] for i, y, x in zip(idx, ys, xs)])


def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor, object_weight: float) -> torch.Tensor:
    """L1 + MSE, with pixels that are not near-white (the block, agent, goal) weighted up.

    Push-T frames are mostly white board; unweighted, the loss barely notices a blurred agent.
    """
    weight = 1.0 + object_weight * (x.min(dim=1, keepdim=True).values < 0.9).float()
    err = recon - x
    return (weight * (err.abs() + err.pow(2))).mean()


def psnr(x: torch.Tensor, recon: torch.Tensor) -> float:
    """PSNR in dB of images in ``[-1, 1]`` (data range 255 after quantisation)."""
    a = ((x.clamp(-1, 1) + 1) * 127.5).round()
    b = ((recon.clamp(-1, 1) + 1) * 127.5).round()
    mse = (a - b).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _resume(path: Path, vae: AutoencoderKL, opt: torch.optim.Optimizer) -> int:
    """Load a checkpoint's VAE and optimiser state if it exists; returns its step (0 if none)."""
    state = load_checkpoint(path)
    if state is None:
        return 0
    vae.load_state_dict(state["vae"])
    opt.load_state_dict(state["opt"])
    return int(state["step"])


def _optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()


@torch.no_grad()
def heldout_psnr(vae: AutoencoderKL, frames: torch.Tensor) -> float:
    """Reconstruction PSNR of ``frames`` (deterministic encoding: the posterior mode)."""
    return psnr(frames, vae.decode(vae.encode(frames).latent_dist.mode()).sample)


def train_codec(cfg: DictConfig) -> Path:
    """Train (or resume) the codec described by ``cfg``; returns the output directory."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    torch.manual_seed(int(cfg.trainer.seed))
    torch.set_num_threads(int(cfg.trainer.threads))
    train = load_episodes(cfg.data.train_root)
    heldout = load_episodes(cfg.data.heldout_root)
    eval_frames = to_tensor(heldout.frames[np.linspace(0, len(heldout) - 1, 64).astype(int)])

    vae = AutoencoderKL.from_config(vae_config(cfg))
    opt = torch.optim.AdamW(vae.parameters(), lr=float(cfg.trainer.lr), weight_decay=0.0)
    step = _resume(out / "ckpt.pt", vae, opt)
    log = CsvLog(out / "log.csv", ["step", "loss", "kl", "heldout_psnr", "seconds"])
    rng = np.random.default_rng(int(cfg.trainer.seed) + step)
    total = int(cfg.trainer.steps)
    bar = tqdm(total=total, initial=step, desc="codec", unit="step")
    start = time.perf_counter()
    while step < total:
        vae.train()
        idx = rng.integers(len(train), size=int(cfg.trainer.batch_size))
        x = to_tensor(random_crops(train.frames, idx, int(cfg.trainer.crop), rng))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = reconstruction_loss(x, recon, float(cfg.trainer.object_weight)) + float(cfg.trainer.kl_weight) * kl
        _optimizer_step(opt, loss, vae.parameters(), float(cfg.trainer.grad_clip))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        last = step == total
        if step % int(cfg.trainer.eval_every) == 0 or last:
            vae.eval()
            score = heldout_psnr(vae, eval_frames)
            log.write(step=step, loss=f"{loss.item():.5f}", kl=f"{kl.item():.5f}", heldout_psnr=f"{score:.2f}",
                      seconds=f"{time.perf_counter() - start:.0f}")
            bar.write(f"step {step}: held-out reconstruction PSNR {score:.2f} dB")
        if step % int(cfg.trainer.ckpt_every) == 0 or last:
            save_checkpoint(out / "ckpt.pt", {"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step})
    bar.close()
    vae.eval()
    vae.save_pretrained(out / "vae")
    scale = latent_scaling_factor(vae, train.frames, rng)
    (out / "codec.json").write_text(json.dumps({"scaling_factor": scale, "steps": step}, indent=2) + "\n")
    return out


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, frames: np.ndarray, rng: np.random.Generator, n: int = 512) -> float:
    """1 / std of the latents of ``n`` random frames, so scaled latents have unit variance."""
    idx = rng.choice(len(frames), size=min(n, len(frames)), replace=False)
    latents = torch.cat([vae.encode(to_tensor(frames[idx[i : i + 64]])).latent_dist.mode()
                         for i in range(0, len(idx), 64)])
    return float(1.0 / latents.std())


def load_codec(codec_dir: str | Path) -> LatentCodec:
    """The trained codec of a ``train codec`` output directory, with its fast decoder if
    ``train fast-decoder`` has written one there (world models exported from it then carry it);
    for a ``train pose-tokens`` directory, the :class:`PoseCodec` its ``pose_codec.json`` names."""
    codec_dir = Path(codec_dir)
    if (codec_dir / POSE_CODEC_FILE).is_file():
        return load_pose_codec(codec_dir)
    meta = json.loads((codec_dir / "codec.json").read_text())
    codec = LatentCodec(AutoencoderKL.from_pretrained(codec_dir / "vae").eval(), meta["scaling_factor"])
    if (codec_dir / FAST_DECODER_WEIGHTS).is_file():
        codec.attach_fast_decoder(load_fast_decoder(codec_dir))
    return codec


def load_pose_codec(tokens_dir: Path) -> PoseCodec:
    """The pose codec ``tokens_dir/pose_codec.json`` names: a world model's own (``{"world_model": NAME}``,
    as ``train consistency-tokens`` writes for a pose teacher), or a VAE codec with the pose encoder and
    decoder checkpoints of a ``train pose-*`` run (``vae_codec_dir``, ``pose_dir``, ``pose``)."""
    meta = json.loads((tokens_dir / POSE_CODEC_FILE).read_text())
    if "world_model" in meta:
        from world_gym.world_model import WorldModel

        codec = WorldModel.from_pretrained(meta["world_model"], start_encodings=False).codec
        if not isinstance(codec, PoseCodec):
            raise ValueError(f"{tokens_dir / POSE_CODEC_FILE} names {meta['world_model']}, whose codec is "
                             f"a {type(codec).__name__}, not a PoseCodec")
        return codec
    return build_pose_codec(meta["vae_codec_dir"], meta["pose_dir"], meta["pose"])


def build_pose_codec(vae_codec_dir: str | Path, pose_dir: str | Path, pose: dict) -> PoseCodec:
    """A :class:`PoseCodec` of the VAE codec in ``vae_codec_dir`` and the ``encoder.pt`` / ``decoder.pt``
    that ``train pose-encoder`` / ``pose-decoder`` wrote to ``pose_dir``; ``pose`` as ``PoseCodec`` takes it."""
    vae = load_codec(vae_codec_dir)
    codec = PoseCodec(vae.vae, vae.scaling_factor, fast_decoder=vae.fast_decoder, pose=pose)
    pose_dir = Path(pose_dir)
    for name, module in (("encoder", codec.pose_encoder), ("decoder", codec.sprite)):
        state = load_checkpoint(pose_dir / f"{name}.pt")
        if state is None:
            raise FileNotFoundError(f"no {pose_dir / (name + '.pt')} (train pose-{name})")
        module.load_state_dict(state["model"])
    return codec.eval()


FAST_DECODER_WEIGHTS = "fast_decoder.safetensors"
FAST_DECODER_META = "fast_decoder.json"


def load_fast_decoder(codec_dir: str | Path) -> FastDecoder:
    """The :class:`FastDecoder` that ``train fast-decoder`` wrote to ``codec_dir``."""
    codec_dir = Path(codec_dir)
    meta = json.loads((codec_dir / FAST_DECODER_META).read_text())
    dec = FastDecoder(int(meta["latent_channels"]), int(meta["downsample"]), meta["channels"])
    dec.load_state_dict(load_file(str(codec_dir / FAST_DECODER_WEIGHTS)))
    return dec.eval()


@torch.no_grad()
def encode_dataset(cfg: DictConfig) -> Path:
    """Write scaled latents of every training frame to ``<codec out_dir>/latents.npy`` (float16).

    The frames are those of ``data.train_root`` and of every root in ``data.extra_train_roots``
    (for example rollouts of learned policies), so the dynamics train on all of them; the codec
    itself is trained on ``data.train_root`` only. With ``data.replay_manifest`` (a
    :mod:`~world_gym.data.replay` manifest of those roots) the frames are replayed in gym-pusht
    instead (``data.replay_workers`` processes), where the datasets are not at hand; with
    ``trainer.device`` (``cuda``, ``auto``) the encoder runs there.
    """
    out = Path(cfg.out_dir)
    torch.set_num_threads(int(cfg.trainer.threads))
    codec = load_codec(out)
    device = str(cfg.trainer.get("device", "cpu"))
    if device != "cpu":
        codec = codec.to(training_device(device))
    manifest = cfg.data.get("replay_manifest")
    if manifest:
        from world_gym.data.replay import replay_manifest

        train = replay_manifest(manifest, int(cfg.data.get("replay_workers", 1)))
        roots = [f"replay:{manifest}", *map(str, np.load(manifest)["roots"])]
    else:
        roots = [str(cfg.data.train_root), *map(str, cfg.data.get("extra_train_roots", []))]
        train = load_training_episodes(roots)
    batch = 128
    latents = [
        codec.encode(train.frames[i : i + batch]).to(torch.float16).cpu().numpy()
        for i in tqdm(range(0, len(train), batch), desc="encoding", unit="batch")
    ]
    np.save(out / "latents.npy", np.concatenate(latents))
    np.save(out / "actions.npy", train.actions)
    np.save(out / "episode_index.npy", train.episode_index)
    # what the latents hold, for the model cards of dynamics trained on them (export copies it)
    (out / "latents.json").write_text(json.dumps({"roots": roots, "frames": len(train),
                                                  "episodes": train.num_episodes}, indent=1) + "\n")
    return out


def finetune_decoder(cfg: DictConfig) -> Path:
    """Fine-tune (or resume fine-tuning) the decoder of a trained codec on whole frames.

    The encoder (and ``quant_conv``) stay frozen and frames are encoded deterministically (the
    posterior mode, as ``encode`` writes latents), so the latent space does not move.
    """
    out = Path(cfg.out_dir)
    torch.manual_seed(int(cfg.trainer.seed))
    torch.set_num_threads(int(cfg.trainer.threads))
    train = load_episodes(cfg.data.train_root)
    heldout = load_episodes(cfg.data.heldout_root)
    eval_frames = to_tensor(heldout.frames[np.linspace(0, len(heldout) - 1, 64).astype(int)])
    vae = AutoencoderKL.from_pretrained(out / "vae")
    vae.requires_grad_(False)
    params = [*vae.post_quant_conv.parameters(), *vae.decoder.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=float(cfg.trainer.decoder_lr), weight_decay=0.0)
    step = _resume(out / "decoder_ckpt.pt", vae, opt)
    log = CsvLog(out / "decoder_log.csv", ["step", "loss", "heldout_psnr", "seconds"])
    rng = np.random.default_rng(int(cfg.trainer.seed) + 1 + step)
    total = int(cfg.trainer.decoder_steps)
    bar = tqdm(total=total, initial=step, desc="decoder", unit="step")
    start = time.perf_counter()
    vae.eval()  # no dropout or batch statistics in this VAE; eval keeps the frozen encoder deterministic
    if step == 0:
        log.write(step=0, loss="", heldout_psnr=f"{heldout_psnr(vae, eval_frames):.2f}", seconds="0")
    while step < total:
        idx = rng.integers(len(train), size=int(cfg.trainer.decoder_batch_size))
        x = to_tensor(train.frames[idx])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
        loss = reconstruction_loss(x, vae.decode(z).sample, float(cfg.trainer.object_weight))
        _optimizer_step(opt, loss, params, float(cfg.trainer.grad_clip))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        last = step == total
        if step % int(cfg.trainer.eval_every) == 0 or last:
            score = heldout_psnr(vae, eval_frames)
            log.write(step=step, loss=f"{loss.item():.5f}", heldout_psnr=f"{score:.2f}",
                      seconds=f"{time.perf_counter() - start:.0f}")
            bar.write(f"decoder step {step}: held-out reconstruction PSNR {score:.2f} dB")
        if step % int(cfg.trainer.ckpt_every) == 0 or last:
            save_checkpoint(out / "decoder_ckpt.pt",
                            {"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step})
    bar.close()
    vae.save_pretrained(out / "vae")
    meta = json.loads((out / "codec.json").read_text())
    (out / "codec.json").write_text(json.dumps({**meta, "decoder_steps": step}, indent=2) + "\n")
    return out


def train_fast_decoder(cfg: DictConfig) -> Path:
    """Train (or resume) a :class:`FastDecoder` on the latents ``train encode`` wrote to ``out_dir``.

    Inputs are the stored latents (the encoder's posterior mode, exactly what the dynamics learn
    to predict); targets are the frames they were encoded from, read again from the roots named in
    ``latents.json``. The loss is the codec's (L1 + MSE, object pixels weighted up); the learning
    rate decays on a cosine from ``fast_decoder_lr`` to ``fast_decoder_lr_min`` (the dynamics
    trainer's :func:`~world_gym.training.train_dynamics.learning_rate`). Writes
    ``fast_decoder.safetensors`` / ``fast_decoder.json`` (with the held-out PSNR of both decoders)
    to ``out_dir``, keeps ``fast_decoder_ckpt.pt`` / ``fast_decoder_log.csv``, and adds the decoder
    to every world-model directory in ``fast_decoder_attach`` whose codec is this one.
    """
    out = Path(cfg.out_dir)
    torch.manual_seed(int(cfg.trainer.seed))
    torch.set_num_threads(int(cfg.trainer.threads))
    codec = load_codec(out)
    codec.decoder = "vae"
    info = json.loads((out / "latents.json").read_text())
    if any(str(r).startswith("replay:") for r in info["roots"]):
        raise SystemExit("train fast-decoder needs the datasets the latents came from, not a replay manifest")
    latents = np.load(out / "latents.npy", mmap_mode="r")
    train = load_training_episodes(info["roots"])
    if len(train) != len(latents):
        raise SystemExit(f"{out}/latents.npy holds {len(latents)} frames but its roots hold {len(train)}: "
                         "run `train encode` again")
    heldout = load_episodes(cfg.data.heldout_root)
    eval_frames = to_tensor(heldout.frames[np.linspace(0, len(heldout) - 1, 64).astype(int)])
    with torch.no_grad():
        eval_latents = codec.encode_tensor(eval_frames)
        vae_score = psnr(eval_frames, codec.decode_tensor(eval_latents))

    dec = FastDecoder(codec.latent_channels, codec.downsample, list(cfg.codec.fast_decoder_channels))
    opt = torch.optim.AdamW(dec.parameters(), lr=float(cfg.trainer.fast_decoder_lr), weight_decay=0.0)
    total = int(cfg.trainer.fast_decoder_steps)
    schedule = OmegaConf.create({"lr": float(cfg.trainer.fast_decoder_lr), "steps": total, "warmup_steps": 1,
                                 "lr_schedule": "cosine", "decay_from": 0,
                                 "lr_min": float(cfg.trainer.fast_decoder_lr_min)})
    step = 0
    state = load_checkpoint(out / "fast_decoder_ckpt.pt")
    if state is not None:
        dec.load_state_dict(state["decoder"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
    log = CsvLog(out / "fast_decoder_log.csv", ["step", "loss", "heldout_psnr", "vae_heldout_psnr", "seconds"])
    rng = np.random.default_rng(int(cfg.trainer.seed) + 2 + step)
    bar = tqdm(total=total, initial=step, desc="fast decoder", unit="step")
    start = time.perf_counter()
    batch = int(cfg.trainer.fast_decoder_batch_size)
    while step < total:
        idx = np.sort(rng.integers(len(train), size=batch))
        x = to_tensor(train.frames[idx])
        z = torch.from_numpy(np.asarray(latents[idx], np.float32))
        for group in opt.param_groups:
            group["lr"] = learning_rate(schedule, step)
        loss = reconstruction_loss(x, dec(z), float(cfg.trainer.object_weight))
        _optimizer_step(opt, loss, dec.parameters(), float(cfg.trainer.grad_clip))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        last = step == total
        if step % int(cfg.trainer.eval_every) == 0 or last:
            with torch.no_grad():
                score = psnr(eval_frames, dec.eval()(eval_latents))
            dec.train()
            log.write(step=step, loss=f"{loss.item():.5f}", heldout_psnr=f"{score:.2f}",
                      vae_heldout_psnr=f"{vae_score:.2f}", seconds=f"{time.perf_counter() - start:.0f}")
            bar.write(f"fast decoder step {step}: held-out PSNR {score:.2f} dB (VAE decoder {vae_score:.2f})")
        if step % int(cfg.trainer.ckpt_every) == 0 or last:
            save_checkpoint(out / "fast_decoder_ckpt.pt",
                            {"decoder": dec.state_dict(), "opt": opt.state_dict(), "step": step})
    bar.close()
    dec.eval()
    save_file({k: v.contiguous() for k, v in dec.state_dict().items()}, str(out / FAST_DECODER_WEIGHTS))
    with torch.no_grad():
        score = psnr(eval_frames, dec(eval_latents))
    meta = {"latent_channels": dec.latent_channels, "downsample": dec.downsample, "channels": dec.channels,
            "steps": step, "frames": len(train), "roots": info["roots"],
            "heldout_psnr": round(score, 2), "vae_heldout_psnr": round(vae_score, 2)}
    (out / FAST_DECODER_META).write_text(json.dumps(meta, indent=2) + "\n")
    for model_dir in cfg.get("fast_decoder_attach", []) or []:
        attach_fast_decoder(out, model_dir)
    return out


def attach_fast_decoder(codec_dir: str | Path, model_dir: str | Path) -> Path:
    """Add the fast decoder of ``codec_dir`` to the world model in ``model_dir`` (rewritten in place).

    Refuses a model whose codec is not the one the decoder was trained on (its VAE weights or
    scaling factor differ), since the decoder reads that codec's latents."""
    from world_gym.world_model import WorldModel

    codec = load_codec(codec_dir)
    if codec.fast_decoder is None:
        raise SystemExit(f"{codec_dir} has no fast decoder: run `world-gym train fast-decoder` first")
    model = WorldModel.from_pretrained(model_dir)
    theirs, ours = model.codec.vae.state_dict(), codec.vae.state_dict()
    same = model.codec.scaling_factor == codec.scaling_factor and all(
        k in theirs and theirs[k].shape == v.shape and torch.equal(theirs[k], v) for k, v in ours.items()
    )
    if not same:
        raise SystemExit(f"{model_dir} was not made with the codec in {codec_dir}; its latents differ")
    model.attach_fast_decoder(codec.fast_decoder)
    model.save_pretrained(model_dir)
    return Path(model_dir)


def main_codec(overrides: list[str]) -> int:
    from world_gym.training.common import compose

    cfg = compose("train_codec", overrides)
    print(OmegaConf.to_yaml(cfg))
    train_codec(cfg)
    return 0


def main_encode(overrides: list[str]) -> int:
    from world_gym.training.common import compose

    encode_dataset(compose("train_codec", overrides))
    return 0


def main_fast_decoder(overrides: list[str]) -> int:
    from world_gym.training.common import compose

    train_fast_decoder(compose("train_codec", overrides))
    return 0


def main_decoder(overrides: list[str]) -> int:
    from world_gym.training.common import compose

    finetune_decoder(compose("train_codec", overrides))
    return 0


def codec_from_model(model: str | Path, out_dir: str | Path) -> Path:
    """Write the codec of a world model (a directory, or the name of one shipped in the package)
    as a ``train codec`` output directory, so that ``train encode`` and the dynamics stages run on
    it without training a codec: ``vae/`` and ``codec.json`` (its scaling factor)."""
    from world_gym.assets import bundled_model_path
    from world_gym.world_model import WorldModel

    path = Path(model) if Path(model).is_dir() else bundled_model_path(str(model))
    codec = WorldModel.from_pretrained(path).codec
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codec.vae.save_pretrained(out / "vae")
    meta = {"scaling_factor": codec.scaling_factor, "steps": None, "from_model": str(model)}
    (out / "codec.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def main_codec_from_model(overrides: list[str]) -> int:
    """``world-gym train codec-from-model [model=NAME_OR_DIR] [out_dir=DIR]`` (defaults: the pixel-latent
    Push-T model kept in a checkout, ``experiments/models/pusht-irasim-mini``, and ``runs/pusht/codec_f4``)."""
    options = dict(o.split("=", 1) for o in overrides)
    unknown = set(options) - {"model", "out_dir"}
    if unknown:
        raise SystemExit(f"codec-from-model takes model= and out_dir=, not {sorted(unknown)}")
    out = codec_from_model(options.get("model", "experiments/models/pusht-irasim-mini"),
                           options.get("out_dir", "runs/pusht/codec_f4"))
    print(f"wrote {out}")
    return 0
