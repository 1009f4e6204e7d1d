"""Test helpers: state dicts in the official IRASim release's layout, written out from its code.

Deliberately independent of ``world_gym.backbones.irasim``: key names and shapes are listed here as
the released ``models/irasim.py`` creates them (timm ``Mlp``/``PatchEmbed``, ``nn.Parameter``
position tables), and :func:`reference_forward` recomputes the release's forward pass from the
bare tensors, so the converter and backbone are checked against the release, not against themselves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def release_pos_embed(dim: int, grid_hw: tuple[int, int]) -> torch.Tensor:
    """``get_2d_sincos_pos_embed_non_square``: meshgrid(w, h), first half from the w coordinate."""
    gh, gw = grid_hw
    grid = np.stack(np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32)), axis=0)
    emb = np.concatenate([_sincos_1d(dim // 2, grid[0]), _sincos_1d(dim // 2, grid[1])], axis=1)
    return torch.from_numpy(emb).float().unsqueeze(0)


def release_key_shapes(
    dataset: str, variant: str, depth: int, hidden: int, grid_hw: tuple[int, int], num_frames: int = 16, patch: int = 2
) -> dict[str, tuple[int, ...]]:
    """Every tensor of the released ``IRASim`` module (``learn_sigma=False``, 4 latent channels)."""
    c, h4, n_act = 4, 4 * hidden, num_frames - 1
    shapes: dict[str, tuple[int, ...]] = {
        "x_embedder.proj.weight": (hidden, c, patch, patch),
        "x_embedder.proj.bias": (hidden,),
        "t_embedder.mlp.0.weight": (hidden, 256),
        "t_embedder.mlp.0.bias": (hidden,),
        "t_embedder.mlp.2.weight": (hidden, hidden),
        "t_embedder.mlp.2.bias": (hidden,),
        "mask_emb_fn.weight": (1, hidden),
        "pos_embed": (1, grid_hw[0] * grid_hw[1], hidden),
        "temp_embed": (1, num_frames, hidden),
        "final_layer.linear.weight": (patch * patch * c, hidden),
        "final_layer.linear.bias": (patch * patch * c,),
        "final_layer.adaLN_modulation.1.weight": (2 * hidden, hidden),
        "final_layer.adaLN_modulation.1.bias": (2 * hidden,),
    }
    if dataset == "languagetable":
        shapes.update({
            "embed_arm_state.weight": (h4, 2), "embed_arm_state.bias": (h4,),
            "embed_state.weight": (hidden, h4), "embed_state.bias": (hidden,),
        })
        if variant == "video_ada":
            shapes.update({
                "mlp.fc1.weight": (n_act * hidden, n_act * hidden), "mlp.fc1.bias": (n_act * hidden,),
                "mlp.fc2.weight": (hidden, n_act * hidden), "mlp.fc2.bias": (hidden,),
            })
    else:
        width = 7 if variant == "frame_ada" else n_act * 7
        shapes.update({
            "embed_state.fc1.weight": (h4, width), "embed_state.fc1.bias": (h4,),
            "embed_state.fc2.weight": (hidden, h4), "embed_state.fc2.bias": (hidden,),
        })
    for i in range(depth):
        shapes.update({
            f"blocks.{i}.attn.qkv.weight": (3 * hidden, hidden), f"blocks.{i}.attn.qkv.bias": (3 * hidden,),
            f"blocks.{i}.attn.proj.weight": (hidden, hidden), f"blocks.{i}.attn.proj.bias": (hidden,),
            f"blocks.{i}.mlp.fc1.weight": (h4, hidden), f"blocks.{i}.mlp.fc1.bias": (h4,),
            f"blocks.{i}.mlp.fc2.weight": (hidden, h4), f"blocks.{i}.mlp.fc2.bias": (hidden,),
            f"blocks.{i}.adaLN_modulation.1.weight": (6 * hidden, hidden),
            f"blocks.{i}.adaLN_modulation.1.bias": (6 * hidden,),
        })
    return shapes


def release_state_dict(
    dataset: str, variant: str, depth: int, hidden: int, grid_hw: tuple[int, int], seed: int = 0, num_frames: int = 16
) -> dict[str, torch.Tensor]:
    """Random weights (non-zero adaLN, so every path matters) with the true sin-cos tables."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in release_key_shapes(dataset, variant, depth, hidden, grid_hw, num_frames).items():
        fan_in = shape[1] if len(shape) > 1 else shape[0]
        state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    state["pos_embed"] = release_pos_embed(hidden, grid_hw)
    state["temp_embed"] = torch.from_numpy(_sincos_1d(hidden, np.arange(num_frames))).float().unsqueeze(0)
    return state


def save_release_checkpoint(
    path: Path, dataset: str, variant: str, state: dict[str, torch.Tensor], prefix: str = "",
    model_name: str = "IRASim-XL/2",
) -> Path:
    """Write ``{"model", "ema", "opt", "args"}`` as ``train.py`` does (``args`` an OmegaConf DictConfig)."""
    from omegaconf import OmegaConf

    ema = {prefix + k: v for k, v in state.items()}
    # "model" differs from "ema" (except the fixed sin-cos tables), to see which one was taken.
    model = {prefix + k: v if k in ("pos_embed", "temp_embed") else v + 1.0 for k, v in state.items()}
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}},
           "param_groups": [{"lr": 1e-4, "params": [0]}]}
    video_size = [288, 512] if dataset == "languagetable" else [256, 320]
    args = OmegaConf.create({
        "dataset": dataset, "model": model_name, "num_frames": 16, "video_size": video_size, "learn_sigma": False,
        "extras": 3 if variant == "frame_ada" else 5, "final_frame_ada": False,
        "latent_size": [v // 8 for v in video_size],
        "max_train_steps": 300000, "learning_rate": 1e-4, "attention_mode": "math",
    })
    torch.save({"model": model, "ema": ema, "opt": opt, "args": args}, path)
    return path


def _timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _block(s: dict[str, torch.Tensor], i: int, x: torch.Tensor, c: torch.Tensor, heads: int) -> torch.Tensor:
    p = f"blocks.{i}."
    mod = F.linear(F.silu(c), s[p + "adaLN_modulation.1.weight"], s[p + "adaLN_modulation.1.bias"]).chunk(6, dim=1)
    n, length, dim = x.shape

    def modulate(v: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return v * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)

    h = modulate(F.layer_norm(x, (dim,), eps=1e-6), mod[0], mod[1])
    qkv = F.linear(h, s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"])
    q, k, v = qkv.reshape(n, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    h = F.linear((attn @ v).transpose(1, 2).reshape(n, length, dim), s[p + "attn.proj.weight"], s[p + "attn.proj.bias"])
    x = x + mod[2].unsqueeze(1) * h
    h = modulate(F.layer_norm(x, (dim,), eps=1e-6), mod[3], mod[4])
    h = F.gelu(F.linear(h, s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"]), approximate="tanh")
    return x + mod[5].unsqueeze(1) * F.linear(h, s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"])


@torch.no_grad()
def reference_forward(
    s: dict[str, torch.Tensor], dataset: str, x: torch.Tensor, t: torch.Tensor, actions: torch.Tensor, heads: int
) -> torch.Tensor:
    """The release's ``IRASim.forward`` (eval mode, frame-ada, ``final_frame_ada=False``).

    Args:
        x: ``(B, F, C, H, W)`` latents; ``t``: ``(B,)``; ``actions``: ``(B, F-1, A)`` scaled actions.
    """
    b, f, c, hh, ww = x.shape
    patch = s["x_embedder.proj.weight"].shape[-1]
    tokens = F.conv2d(x.reshape(b * f, c, hh, ww), s["x_embedder.proj.weight"], s["x_embedder.proj.bias"], stride=patch)
    tokens = tokens.flatten(2).transpose(1, 2) + s["pos_embed"]
    n_tok = tokens.shape[1]
    temb = F.linear(F.silu(F.linear(_timestep_embedding(t), s["t_embedder.mlp.0.weight"], s["t_embedder.mlp.0.bias"])),
                    s["t_embedder.mlp.2.weight"], s["t_embedder.mlp.2.bias"])
    if dataset == "languagetable":
        a = F.linear(actions, s["embed_arm_state.weight"], s["embed_arm_state.bias"])
        a = F.linear(a, s["embed_state.weight"], s["embed_state.bias"])
    else:
        a = F.gelu(F.linear(actions, s["embed_state.fc1.weight"], s["embed_state.fc1.bias"]), approximate="tanh")
        a = F.linear(a, s["embed_state.fc2.weight"], s["embed_state.fc2.bias"])
    a = torch.cat([s["mask_emb_fn.weight"][0].expand(b, 1, -1), a], dim=1).reshape(b * f, -1)
    t_spatial = temb.repeat_interleave(f, dim=0)
    t_temporal = temb.repeat_interleave(n_tok, dim=0)
    depth = 1 + max(int(k.split(".")[1]) for k in s if k.startswith("blocks."))
    for i in range(0, depth, 2):
        tokens = _block(s, i, tokens, t_spatial + a, heads)
        tokens = tokens.reshape(b, f, n_tok, -1).transpose(1, 2).reshape(b * n_tok, f, -1)
        if i == 0:
            tokens = tokens + s["temp_embed"][:, :f]
        tokens = _block(s, i + 1, tokens, t_temporal, heads)
        tokens = tokens.reshape(b, n_tok, f, -1).transpose(1, 2).reshape(b * f, n_tok, -1)
    shift, scale = F.linear(F.silu(t_spatial), s["final_layer.adaLN_modulation.1.weight"],
                            s["final_layer.adaLN_modulation.1.bias"]).chunk(2, dim=1)
    dim = tokens.shape[-1]
    tokens = F.layer_norm(tokens, (dim,), eps=1e-6) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    out = F.linear(tokens, s["final_layer.linear.weight"], s["final_layer.linear.bias"])
    gh, gw = hh // patch, ww // patch
    out = out.reshape(b * f, gh, gw, patch, patch, c)
    out = torch.einsum("nhwpqc->nchpwq", out).reshape(b, f, c, hh, ww)
    return out
