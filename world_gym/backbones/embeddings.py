"""Embedding layers shared by the video backbones: fixed sin-cos positions, timesteps, actions."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def sincos_1d(embed_dim: int, positions: np.ndarray) -> np.ndarray:
    """Sin-cos embedding of 1-D positions, ``[sin | cos]`` halves (MAE convention).

    Args:
        embed_dim: output width, even.
        positions: positions of any shape; flattened.

    Returns:
        ``(len(positions), embed_dim)`` float64 array.
    """
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """2-D sin-cos embedding of an ``(h, w)`` token grid, row-major tokens.

    The grid is built width first (MAE and IRASim convention): the first half of the
    channels encodes the column index, the second half the row index.

    Returns:
        ``(h * w, embed_dim)`` float64 array.
    """
    h, w = grid_hw
    grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    emb_a = sincos_1d(embed_dim // 2, grid[0])
    emb_b = sincos_1d(embed_dim // 2, grid[1])
    return np.concatenate([emb_a, emb_b], axis=1)


class TimestepEmbedder(nn.Module):
    """Diffusion timestep -> vector: 256-d ``[cos | sin]`` frequencies then a 2-layer MLP (DiT)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    @staticmethod
    def frequencies(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        """Sinusoidal features of (possibly fractional) timesteps ``t`` of shape ``(N,)``."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freq = self.frequencies(t, self.frequency_embedding_size).to(self.mlp[0].weight.dtype)
        return self.mlp(freq)


class Mlp(nn.Module):
    """Two linear layers with a tanh-GELU between, named like ``timm.layers.Mlp`` (``fc1``, ``fc2``)."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """Latent frame -> patch tokens with a strided convolution (``proj``, as ``timm`` names it)."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)
