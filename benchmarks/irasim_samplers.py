"""Fidelity and speed of fast samplers against the authors' PNDM-50, for one IRASim chunk.

Every sampler starts from the same initial noise, start latent and 15 actions as the reference
(diffusers PNDM with PRK warm-up, 50 steps: what the release samples with). Deterministic samplers
then approximate the same probability-flow ODE, so the distance of their latents to the reference
measures their discretisation error; the table also gives backbone calls (NFE) and time per chunk
(wall time on GPU; process CPU time on CPU, summed over threads).

Without ``--checkpoint`` it runs on CPU with a small random-weight IRASim at the Language-Table
latent size (36x64): the timings show the relative cost, the fidelity columns show the mechanism
only (a random network is no denoiser). With a converted official model (``--checkpoint DIR
--device cuda --decode``) it gives the real figures, including frame PSNR against the reference.

    python benchmarks/irasim_samplers.py                       # CPU, small random model
    python benchmarks/irasim_samplers.py --checkpoint ~/.cache/world_gym/models/irasim-languagetable-frame_ada \\
        --device cuda --dtype float16 --decode --seeds 4
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from world_gym.convert_irasim import OFFICIAL_SAMPLER, RELEASES
from world_gym.samplers.diffusion import SamplerConfig
from world_gym.codecs.vae import tiny_vae_config
from world_gym.backbones.irasim import IRASimConfig
from world_gym.world_model import WorldModel, WorldModelConfig

DEFAULT_SAMPLERS = "pndm:50,ddim:10,ddim:25,dpm_solver:10,dpm_solver:20,unipc:10"


@dataclass
class Row:
    sampler: str
    steps: int
    nfe: int
    seconds: float
    latent_rmse: float
    latent_rel: float
    psnr: float | None


def small_random_model(size: str, seed: int = 0) -> WorldModel:
    """An IRASim of the release's Language-Table layout at a CPU-friendly width, random weights."""
    release = RELEASES["languagetable"]
    backbone = IRASimConfig.preset(size, latent_size=(36, 64), num_frames=16, action_dim=2)
    config = WorldModelConfig(
        backbone_config=backbone.to_dict(),
        codec={"vae": tiny_vae_config(4, (8, 8, 8, 8)), "scaling_factor": 1.0},
        action=release.action_spec,
        frame_size=release.frame_size,
        chunk_size=15,
        sampler=OFFICIAL_SAMPLER,
        metadata={"description": "random weights, for sampler timing"},
    )
    torch.manual_seed(seed)
    model = WorldModel(config)
    # adaLN-Zero makes an untrained DiT predict exactly zero noise; give it something to integrate.
    for name, param in model.backbone.named_parameters():
        if "adaLN_modulation" in name or "final_layer.linear" in name:
            torch.nn.init.normal_(param, std=0.02)
    return model.eval()


def parse_samplers(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in spec.split(","):
        name, _, steps = item.strip().partition(":")
        SamplerConfig(name=name, num_inference_steps=int(steps))  # validates the name
        out.append((name, int(steps)))
    return out


def run_sampler(
    model: WorldModel, name: str, steps: int, context: torch.Tensor, actions: torch.Tensor, seed: int
) -> tuple[torch.Tensor, int, float]:
    """One chunk: latents ``(B, 15, C, h, w)``, backbone calls, seconds."""
    calls = []
    hook = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    b, a = actions.shape[0], actions.shape[-1]
    ctx_actions = torch.zeros(b, 1, a, device=model.device, dtype=model.dtype)
    ctx_mask = torch.zeros(b, 1, dtype=torch.bool, device=model.device)
    cuda = model.device.type == "cuda"
    # GPU: wall time. CPU: process time, which a busy shared machine disturbs far less than wall time.
    clock = time.perf_counter if cuda else time.process_time
    if cuda:
        torch.cuda.synchronize()
    t0 = clock()
    latents = model.rollout_latents(
        context, ctx_actions, ctx_mask, actions, torch.Generator().manual_seed(seed), steps, name
    )
    if cuda:
        torch.cuda.synchronize()
    seconds = clock() - t0
    hook.remove()
    return latents.float(), len(calls), seconds


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def benchmark(model: WorldModel, samplers: list[tuple[str, int]], seeds: int, decode: bool) -> list[Row]:
    gen = torch.Generator().manual_seed(1234)
    h, w = model.backbone.config.latent_size
    c = model.backbone.config.latent_channels
    chunk = model.max_new_frames
    spec = model.action_spec
    reference: dict[int, tuple[torch.Tensor, np.ndarray | None]] = {}
    rows = []
    ref_name, ref_steps = OFFICIAL_SAMPLER.name, OFFICIAL_SAMPLER.num_inference_steps
    runs = [(ref_name, ref_steps)] + [s for s in samplers if s != (ref_name, ref_steps)]
    contexts = [torch.randn(1, 1, c, h, w, generator=gen) for _ in range(seeds)]
    raw_actions = [torch.randn(1, chunk, spec.dim, generator=gen) * 0.03 for _ in range(seeds)]
    for name, steps in tqdm(runs, desc="samplers"):
        times, nfes, rmses, rels, psnrs = [], [], [], [], []
        for seed in range(seeds):
            context = contexts[seed].to(model.device, model.dtype)
            actions = model.normalize_actions(raw_actions[seed].numpy())
            latents, nfe, seconds = run_sampler(model, name, steps, context, actions, seed)
            frames = model.decode(latents.flatten(0, 1).to(model.device)) if decode else None
            if seed not in reference:
                reference[seed] = (latents, frames)
            ref_latents, ref_frames = reference[seed]
            diff = (latents - ref_latents).pow(2).mean().sqrt().item()
            rmses.append(diff)
            rels.append(diff / max(ref_latents.pow(2).mean().sqrt().item(), 1e-12))
            if frames is not None:
                psnrs.append(psnr(frames, ref_frames))
            times.append(seconds)
            nfes.append(nfe)
        # The fastest repeat: on a shared machine the others measure the neighbours, not the sampler.
        rows.append(Row(name, steps, nfes[0], min(times), float(np.mean(rmses)), float(np.mean(rels)),
                        float(np.mean(psnrs)) if psnrs else None))
    return rows


def print_table(rows: list[Row], title: str, clock: str) -> None:
    ref = rows[0]
    print(f"\n{title}")
    print(f"| sampler | steps | NFE | {clock} s / chunk | s / NFE | speed-up "
          "| latent RMSE vs PNDM-50 | relative | frame PSNR vs PNDM-50 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        p = "ref" if r is ref else ("n/a" if r.psnr is None else f"{r.psnr:.1f} dB")
        print(f"| {r.sampler} | {r.steps} | {r.nfe} | {r.seconds:.2f} | {r.seconds / r.nfe:.3f} "
              f"| {ref.seconds / r.seconds:.1f}x | "
              f"{r.latent_rmse:.4f} | {r.latent_rel:.3f} | {p} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="converted official model directory (default: small random model)")
    parser.add_argument("--size", default="tiny", help="IRASim size of the random model (tiny, mini, small-cpu, ...)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=[None, "float16", "bfloat16", "float32"])
    parser.add_argument("--samplers", default=DEFAULT_SAMPLERS, help="name:steps,... (PNDM-50 is always the reference)")
    parser.add_argument("--seeds", type=int, default=1, help="chunks (start latent, actions, noise) averaged over")
    parser.add_argument("--decode", action="store_true", help="also decode and compare frames (PSNR)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    if args.checkpoint:
        model = WorldModel.from_pretrained(args.checkpoint, device=args.device, dtype=dtype)
        what = f"{args.checkpoint}"
    else:
        model = small_random_model(args.size).to(args.device)
        if dtype is not None:
            model.backbone.to(dtype)
        what = f"random-weight IRASim-{args.size} (Language-Table layout, 36x64 latents)"
    rows = benchmark(model, parse_samplers(args.samplers), args.seeds, args.decode)
    device = torch.cuda.get_device_name() if model.device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    clock = "wall" if model.device.type == "cuda" else "CPU"
    print_table(rows, f"one 15-frame chunk, batch 1, {what}, {device}, {args.seeds} seed(s)", clock)


if __name__ == "__main__":
    main()
