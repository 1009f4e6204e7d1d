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


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class FastDecoder(nn.Module):
    """A small convolutional decoder from scaled latents to frames in ``[-1, 1]``.

    The ``AutoencoderKL`` decoder (GroupNorm, SiLU, full-resolution convolutions) is most of a
    world-model step on CPU. This one has no normalisation, works at the latent resolution and at
    each upsampling stage's, and upsamples with sub-pixel convolutions (``PixelShuffle``), the last
    straight to RGB: a stage per factor of 2 of ``downsample``, ``channels[i]`` wide (the last entry
    repeats when there are more stages). It is trained on the codec's latents of dataset frames
    against the frames themselves (``world-gym train fast-decoder``), as TAESD is for Stable
    Diffusion's latents; the encoder and the latent space do not change.

    >>> dec = FastDecoder(latent_channels=4, downsample=4, channels=(16, 8))
    >>> dec(torch.zeros(2, 4, 8, 8)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, latent_channels: int, downsample: int, channels: tuple[int, ...] | list[int] = (64, 32),
                 out_channels: int = 3) -> None:
        super().__init__()
        stages = int(round(np.log2(downsample)))
        if 2**stages != downsample or stages < 1:
            raise ValueError(f"downsample must be a power of 2 >= 2, got {downsample}")
        if not channels:
            raise ValueError("channels must name at least one width")
        widths = [int(channels[min(i, len(channels) - 1)]) for i in range(stages)]
        self.latent_channels = latent_channels
        self.downsample = downsample
        self.channels = [int(c) for c in channels]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[0], 3, padding=1), nn.ReLU(), _Residual(widths[0])]
        for width, nxt in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(width, nxt * 4, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(), _Residual(nxt)]
        layers += [nn.Conv2d(widths[-1], out_channels * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def config_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net(latents)


#: the decoders of a VAE codec; a codec class may know more (:attr:`LatentCodec.decoder_kinds`)
DECODERS = ("fast", "vae")
#: keys of a VAE codec's config entry (``config.json``'s ``codec``)
VAE_CODEC_KEYS = ("kind", "vae", "scaling_factor", "fast_decoder")


class LatentCodec(nn.Module):
    """Encodes uint8 RGB frames to scaled VAE latents and decodes them back.

    Latents are ``vae.encode(x).latent_dist.mode() * scaling_factor`` (deterministic: the posterior
    mean), with ``x`` in ``[-1, 1]``, the convention of diffusers' latent diffusion pipelines.

    Args:
        vae: any ``AutoencoderKL``.
        scaling_factor: multiplies latents after encoding; defaults to ``vae.config.scaling_factor``.
        micro_batch: frames per VAE call, which bounds peak memory for large batches.
        fast_decoder: an optional :class:`FastDecoder` of these latents; when there is one,
            ``decode`` uses it unless ``decoder`` is ``"vae"``.

    >>> codec = LatentCodec.from_config(tiny_vae_config())
    >>> frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    >>> codec.encode(frames).shape
    torch.Size([2, 4, 8, 8])
    >>> codec.decode(codec.encode(frames)).shape
    (2, 32, 32, 3)
    """

    #: the codec registry's name for this class (``config.json``'s ``codec.kind``)
    kind: str = "vae"
    #: every decoder a codec of this class can have, and how to get one it lacks
    decoder_kinds: tuple[str, ...] = DECODERS
    decoder_hints: dict[str, str] = {"fast": "train one with `world-gym train fast-decoder`"}

    def __init__(self, vae: AutoencoderKL, scaling_factor: float | None = None, micro_batch: int = 64,
                 fast_decoder: FastDecoder | None = None) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor if scaling_factor is None else scaling_factor)
        self.micro_batch = micro_batch
        self.fast_decoder = fast_decoder
        self._decoder = "fast" if fast_decoder is not None else "vae"

    @classmethod
    def from_config(cls, vae_config: dict[str, Any], scaling_factor: float | None = None,
                    fast_decoder: dict[str, Any] | None = None) -> "LatentCodec":
        """A codec with a freshly initialised ``AutoencoderKL`` of the given config (and a
        :class:`FastDecoder` of the ``fast_decoder`` config, ``{"channels": [...]}``, if given)."""
        codec = cls(AutoencoderKL.from_config(dict(vae_config)), scaling_factor)
        if fast_decoder is not None:
            codec.attach_fast_decoder(FastDecoder(codec.vae_channels, codec.downsample, fast_decoder["channels"]))
        return codec

    @property
    def decoder(self) -> str:
        """Which decoder ``decode`` runs: ``"fast"`` (the :class:`FastDecoder`), ``"vae"``, or one
        that a subclass adds (:attr:`decoder_kinds`)."""
        return self._decoder

    @decoder.setter
    def decoder(self, name: str) -> None:
        if name not in self.decoder_kinds:
            raise ValueError(f"decoder must be one of {self.decoder_kinds} for a {type(self).__name__}, got {name!r}")
        if name not in self.decoders:
            hint = self.decoder_hints.get(name, "attach one first")
            raise ValueError(f"this codec has no {name} decoder ({hint})")
        self._decoder = name

    @property
    def decoders(self) -> tuple[str, ...]:
        """The decoders this codec can run."""
        return ("fast", "vae") if self.fast_decoder is not None else ("vae",)

    def attach_decoder(self, name: str, decoder: nn.Module) -> tuple[str, dict[str, Any]]:
        """Add (or replace) the extra decoder ``name`` and decode with it.

        Args:
            name: one of :attr:`decoder_kinds` other than ``"vae"`` (here ``"fast"``: a :class:`FastDecoder`).
            decoder: the trained module.

        Returns:
            the key and the entry that the codec's config stores for it (``("fast_decoder", {...})``).

        Raises:
            ValueError: this codec class takes no decoder of that name.
        """
        if name == "fast":
            self.attach_fast_decoder(decoder)  # type: ignore[arg-type]
            return "fast_decoder", decoder.config_dict()  # type: ignore[operator]
        raise ValueError(f"a {type(self).__name__} takes no {name!r} decoder; it takes "
                         f"{[k for k in self.decoder_kinds if k != 'vae']}")

    def attach_fast_decoder(self, fast_decoder: FastDecoder) -> None:
        """Add (or replace) the fast decoder, and decode with it."""
        if fast_decoder.latent_channels != self.vae_channels or fast_decoder.downsample != self.downsample:
            raise ValueError(
                f"fast decoder for {fast_decoder.latent_channels} channels / downsample {fast_decoder.downsample} "
                f"does not fit a codec of {self.vae_channels} / {self.downsample}"
            )
        self.fast_decoder = fast_decoder.to(self.device, self.dtype)
        self._decoder = "fast"

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def vae_channels(self) -> int:
        """Channels of the VAE's latents (what a :class:`FastDecoder` decodes)."""
        return int(self.vae.config.latent_channels)

    @property
    def latent_channels(self) -> int:
        """Channels of the latents ``encode`` returns (the VAE's here; a subclass may differ)."""
        return self.vae_channels

    def latent_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """Latent ``(h, w)`` of frames of size ``frame_hw``."""
        return frame_hw[0] // self.downsample, frame_hw[1] // self.downsample

    def config_dict(self) -> dict[str, Any]:
        vae = {k: v for k, v in self.vae.config.items() if not k.startswith("_")}
        out: dict[str, Any] = {"kind": self.kind, "vae": vae, "scaling_factor": self.scaling_factor}
        if self.fast_decoder is not None:
            out["fast_decoder"] = self.fast_decoder.config_dict()
        return out

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
        """Scaled latents -> ``(N, 3, H, W)`` in about ``[-1, 1]`` (differentiable, for training),
        with the decoder ``self.decoder`` names."""
        if self._decoder == "fast":
            z = latents.to(self.dtype)
            step = self.micro_batch
            return torch.cat([self.fast_decoder(z[i : i + step]) for i in range(0, len(z), step)])
        z = latents.to(self.dtype) / self.scaling_factor
        chunks = [self.vae.decode(z[i : i + self.micro_batch]).sample for i in range(0, len(z), self.micro_batch)]
        return torch.cat(chunks)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents ``(N, C, h, w)`` -> uint8 frames ``(N, H, W, 3)``."""
        if len(latents) == 0:
            raise ValueError("decode got an empty batch of latents")
        return self.tensor_to_frames(self.decode_tensor(latents))


def make_vae_codec(config: dict[str, Any]) -> LatentCodec:
    """The codec registry's factory of kind ``"vae"``: a :class:`LatentCodec` from a config entry
    ``{"vae": AutoencoderKL config, "scaling_factor": float, "fast_decoder": {...}}``.

    Raises:
        ValueError: the entry has keys a VAE codec does not know (a ``renderer`` or ``pose`` belong to
            other codec kinds).
    """
    unknown = sorted(set(config) - set(VAE_CODEC_KEYS))
    if unknown:
        raise ValueError(f"a codec of kind 'vae' takes the keys {list(VAE_CODEC_KEYS)}, got unknown keys {unknown}: "
                         "name the codec kind that reads them in the entry's `kind`")
    return LatentCodec.from_config(config["vae"], config.get("scaling_factor"), config.get("fast_decoder"))
