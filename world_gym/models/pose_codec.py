"""A codec whose latent is a frame's pose: one token of six numbers per frame.

:class:`PoseCodec` puts the pose-state model's reader and drawer (:mod:`world_gym.models.pose_state`)
behind a VAE :class:`~world_gym.models.codec.LatentCodec`: ``encode`` turns frames into VAE latents,
reads the agent's and the block's pose from them (the :class:`PoseEncoder`, refined through the
decoder) and returns it as a ``(6, 1, 1)`` "latent frame"; ``decode`` draws the VAE latents of a
pose with the :class:`SpriteDecoder` and decodes those to pixels. Any latent-video backbone then
runs on poses unchanged: IRASim's DiT denoises a clip of one-token frames, one per action, so its
frame-level action conditioning acts on the frame's whole content (``IRASim-PushT-v0``).

A token is ``token_scale * (agent x, agent y, block x, block y, cos angle, sin angle)``, positions
in the action normalisation's units (``[0, 512]`` -> ``[-1, 1]``).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL

from world_gym.models.codec import FastDecoder, LatentCodec
from world_gym.models.pose_state import (
    PoseEncoder,
    PoseStateConfig,
    SpriteDecoder,
    pose_to_state,
    read_states,
)

TOKEN_CHANNELS = 6
# in a codec directory of pose tokens (`world-gym train pose-tokens`): the VAE and pose parts it was made with
POSE_CODEC_FILE = "pose_codec.json"


def states_to_tokens(states: torch.Tensor, scale: float) -> torch.Tensor:
    """States ``(N, 5)`` -> tokens ``(N, 6, 1, 1)``."""
    angle = states[:, 4:5]
    return (scale * torch.cat([states[:, :4], torch.cos(angle), torch.sin(angle)], 1))[..., None, None]


def tokens_to_states(tokens: torch.Tensor, scale: float) -> torch.Tensor:
    """Tokens ``(N, 6, 1, 1)`` -> states ``(N, 5)`` (the angle from the cosine and sine, whatever their norm)."""
    return pose_to_state(tokens.flatten(1) / scale)


class PoseCodec(LatentCodec):
    """Frames <-> pose tokens ``(N, 6, 1, 1)`` through a VAE and the pose-state reader and drawer.

    Args:
        vae, scaling_factor, micro_batch, fast_decoder: the VAE codec (see :class:`LatentCodec`).
        pose: :class:`PoseStateConfig` fields of the encoder and decoder (``latent_size`` the VAE
            latents'; ``refine_steps``/``refine_lr`` the run-time refinement), and ``token_scale``.

    >>> import numpy as np
    >>> from world_gym.models.codec import tiny_vae_config
    >>> codec = PoseCodec.from_config(tiny_vae_config(), pose={"latent_size": [8, 8], "refine_steps": 2})
    >>> tokens = codec.encode(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    >>> tokens.shape, codec.decode(tokens).shape
    (torch.Size([3, 6, 1, 1]), (3, 32, 32, 3))
    """

    def __init__(self, vae: AutoencoderKL, scaling_factor: float | None = None, micro_batch: int = 64,
                 fast_decoder: FastDecoder | None = None, pose: dict[str, Any] | None = None) -> None:
        super().__init__(vae, scaling_factor, micro_batch, fast_decoder)
        fields = dict(pose or {})
        self.token_scale = float(fields.pop("token_scale", 4.0))
        fields.setdefault("latent_channels", self.vae_channels)
        self.pose_config = PoseStateConfig(**fields)
        if self.pose_config.latent_channels != self.vae_channels:
            raise ValueError(f"pose config reads {self.pose_config.latent_channels} latent channels, "
                             f"the VAE has {self.vae_channels}")
        self.pose_encoder = PoseEncoder(self.pose_config)
        self.sprite = SpriteDecoder(self.pose_config)

    @classmethod
    def from_config(cls, vae_config: dict[str, Any], scaling_factor: float | None = None,
                    fast_decoder: dict[str, Any] | None = None, pose: dict[str, Any] | None = None) -> "PoseCodec":
        """A pose codec with freshly initialised networks of the given configs."""
        codec = cls(AutoencoderKL.from_config(dict(vae_config)), scaling_factor, pose=pose)
        if fast_decoder is not None:
            codec.attach_fast_decoder(FastDecoder(codec.vae_channels, codec.downsample, fast_decoder["channels"]))
        return codec

    @property
    def latent_channels(self) -> int:
        return TOKEN_CHANNELS

    def latent_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """One token per frame, whatever its size."""
        return 1, 1

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "pose": {**self.pose_config.to_dict(), "token_scale": self.token_scale}}

    def encode_vae(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> the VAE's scaled latents."""
        return super().encode_tensor(x)

    def read_states(self, latents: torch.Tensor, refine_steps: int | None = None) -> torch.Tensor:
        """VAE latents ``(N, C, h, w)`` -> states ``(N, 5)``: the encoder's, refined through the decoder
        by ``refine_steps`` (default: the config's) Adam steps."""
        cfg = self.pose_config
        steps = cfg.refine_steps if refine_steps is None else refine_steps
        return read_states(self.pose_encoder, self.sprite, latents.to(self.sprite.cell_features.dtype), steps,
                           cfg.refine_lr)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> pose tokens ``(N, 6, 1, 1)`` (not differentiable: refined)."""
        return states_to_tokens(self.read_states(self.encode_vae(x)), self.token_scale)

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Pose tokens ``(N, 6, 1, 1)`` -> ``(N, 3, H, W)`` in about ``[-1, 1]``."""
        states = tokens_to_states(latents.to(self.sprite.cell_features.dtype), self.token_scale)
        return super().decode_tensor(self.sprite(states))
