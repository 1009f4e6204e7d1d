"""Latent codec: a diffusers ``AutoencoderKL`` between uint8 frames and scaled latents."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from torch import nn

# The SDXL VAE (stabilityai/stable-diffusion-xl-base-1.0, subfolder "vae"), as IRASim uses it.
SDXL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}


def tiny_vae_config(latent_channels: int = 4, block_out_channels: tuple[int, ...] = (32, 32, 64)) -> dict[str, Any]:
    """A small ``AutoencoderKL`` config (downsampling ``2**(len(blocks)-1)``) for tests and CPU training."""
    n = len(block_out_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": list(block_out_channels),
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": min(32, min(block_out_channels)),
        "scaling_factor": 1.0,
    }


class LatentCodec(nn.Module):
    """Encodes uint8 RGB frames to scaled VAE latents and decodes them back.

    Latents are ``vae.encode(x).latent_dist.mode() * scaling_factor`` (deterministic: the posterior
    mean), with ``x`` in ``[-1, 1]``, the convention of diffusers' latent diffusion pipelines.

    Args:
        vae: any ``AutoencoderKL``.
        scaling_factor: multiplies latents after encoding; defaults to ``vae.config.scaling_factor``.
        micro_batch: frames per VAE call, which bounds peak memory for large batches.

    >>> codec = LatentCodec.from_config(tiny_vae_config())
    >>> frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    >>> codec.encode(frames).shape
    torch.Size([2, 4, 8, 8])
    >>> codec.decode(codec.encode(frames)).shape
    (2, 32, 32, 3)
    """

    def __init__(self, vae: AutoencoderKL, scaling_factor: float | None = None, micro_batch: int = 64) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor if scaling_factor is None else scaling_factor)
        self.micro_batch = micro_batch

    @classmethod
    def from_config(cls, vae_config: dict[str, Any], scaling_factor: float | None = None) -> "LatentCodec":
        """A codec with a freshly initialised ``AutoencoderKL`` of the given config."""
        return cls(AutoencoderKL.from_config(dict(vae_config)), scaling_factor)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def latent_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """Latent ``(h, w)`` of frames of size ``frame_hw``."""
        return frame_hw[0] // self.downsample, frame_hw[1] // self.downsample

    def config_dict(self) -> dict[str, Any]:
        vae = {k: v for k, v in self.vae.config.items() if not k.startswith("_")}
        return {"vae": vae, "scaling_factor": self.scaling_factor}

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def frames_to_tensor(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` frames -> float ``(N, 3, H, W)`` in ``[-1, 1]`` on the codec's device."""
        frames_t = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames, copy=True))
        if frames_t.dtype != torch.uint8 or frames_t.dim() != 4 or frames_t.shape[-1] != 3:
            raise ValueError(
                f"frames must be uint8 of shape (N, H, W, 3), got {tuple(frames_t.shape)} {frames_t.dtype}"
            )
        x = frames_t.to(self.device).permute(0, 3, 1, 2).to(self.dtype)
        return x / 127.5 - 1.0

    @staticmethod
    def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
        """float ``(N, 3, H, W)`` in ``[-1, 1]`` -> uint8 ``(N, H, W, 3)``."""
        x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` frames -> scaled latents ``(N, C, H/d, W/d)``."""
        x = self.frames_to_tensor(frames)
        return self.encode_tensor(x)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> scaled latents (differentiable, for training)."""
        chunks = [
            self.vae.encode(x[i : i + self.micro_batch]).latent_dist.mode() for i in range(0, len(x), self.micro_batch)
        ]
        return torch.cat(chunks) * self.scaling_factor

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> ``(N, 3, H, W)`` in about ``[-1, 1]`` (differentiable, for training)."""
        z = latents.to(self.dtype) / self.scaling_factor
        chunks = [self.vae.decode(z[i : i + self.micro_batch]).sample for i in range(0, len(z), self.micro_batch)]
        return torch.cat(chunks)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents ``(N, C, h, w)`` -> uint8 frames ``(N, H, W, 3)``."""
        if len(latents) == 0:
            raise ValueError("decode got an empty batch of latents")
        return self.tensor_to_frames(self.decode_tensor(latents))
