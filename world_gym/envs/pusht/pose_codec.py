"""A codec whose latent is a frame's pose: one token of six numbers per frame.

:class:`PoseCodec` puts the pose-state model's reader and drawer (:mod:`world_gym.models.pose_state`)
behind a VAE :class:`~world_gym.models.codec.LatentCodec`: ``encode`` turns frames into VAE latents,
reads the agent's and the block's pose from them (the :class:`PoseEncoder`, refined through the
decoder) and returns it as a ``(6, 1, 1)`` "latent frame"; ``decode`` draws the VAE latents of a
pose with the :class:`SpriteDecoder` and decodes those to pixels, or, with a
:class:`~world_gym.models.sprite_renderer.SpriteRenderer` attached (``decoder="render"``, the
default then), draws the pose's pixels directly from learned sprites. Any latent-video backbone then
runs on poses unchanged: IRASim's DiT denoises a clip of one-token frames, one per action, so its
frame-level action conditioning acts on the frame's whole content (``IRASim-PushT-v0``).

A token is ``token_scale * (agent x, agent y, block x, block y, cos angle, sin angle)``, positions
in the action normalisation's units (``[0, 512]`` -> ``[-1, 1]``).

With ``agent_from_pixels`` the agent's position is read off the frame itself, as the centroid of its
colour (gym-pusht draws it as a disc of one blue, on top of everything): within 0.7 units of 512 of
the true position on held-out frames, where the learned encoder with its refinement lands 34-90 units
off on one frame in twenty (docs/pusht_world_model.md, session 14). The learned reader keeps the
block, and the agent of frames without that blue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from world_gym import metrics
from world_gym.models.codec import FastDecoder, LatentCodec
from world_gym.models.sprite_renderer import SpriteRenderer, SpriteRendererConfig
from world_gym.models.pose_state import (  # noqa: F401  (states_to_tokens, tokens_to_states: this module's API)
    TOKEN_CHANNELS,
    PoseEncoder,
    PoseStateConfig,
    SpriteDecoder,
    read_states,
    rotate,
    states_to_tokens,
    tokens_to_states,
)

# fewer agent-coloured pixels than this (of a disc of about 25 at 96 x 96): the learned encoder reads the agent
MIN_AGENT_PIXELS = 4
# in a codec directory of pose tokens (`world-gym train pose-tokens`): the VAE and pose parts it was made with
POSE_CODEC_FILE = "pose_codec.json"


def agent_from_pixels(x: torch.Tensor, workspace: float = metrics.PUSHT_WORKSPACE) -> torch.Tensor:
    """gym-pusht frames ``(N, 3, H, W)`` in ``[-1, 1]`` -> the agent's position ``(N, 2)`` in the
    action normalisation's units: the centroid of its colour (:func:`world_gym.metrics.pusht_segment`),
    NaN where fewer than ``MIN_AGENT_PIXELS`` pixels have it.

    >>> frames = -torch.ones(1, 3, 96, 96)
    >>> frames[0, :, 10:14, 60:64] = torch.tensor([65, 105, 225])[:, None, None] / 127.5 - 1
    >>> agent_from_pixels(frames)  # the square's centre, (62, 12) of 96, is (330.7, 64.0) of 512
    tensor([[ 0.2917, -0.7500]])
    >>> agent_from_pixels(-torch.ones(1, 3, 96, 96))
    tensor([[nan, nan]])
    """
    frames = LatentCodec.tensor_to_frames(x.detach())
    mask = metrics.pusht_segment(frames) == metrics.AGENT
    centre = metrics.mask_centroid(mask) * (workspace / frames.shape[2])
    centre[mask.sum(axis=(1, 2)) < MIN_AGENT_PIXELS] = np.nan
    return torch.from_numpy((centre - workspace / 2) / (workspace / 2)).float().to(x.device)


def block_frame(tokens: torch.Tensor, actions: torch.Tensor, reference: int,
                scale: float) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A clip of pose tokens and its actions in the block's frame of one of its frames.

    Push-T's contact dynamics do not change when the whole board is moved or turned (walls aside),
    but a network of absolute poses has to learn them at every place and angle, and to find where
    the agent is against the T by rotating and subtracting poses itself. Here every position (agent,
    block, action) becomes ``R(-angle_ref) (p - block_ref)`` and every angle ``angle - angle_ref``,
    so the reference frame's block sits at the origin at angle 0 and the agent's token entries are
    directly where it is against the T.

    Args:
        tokens: ``(B, T, 6, 1, 1)`` pose tokens (``token_scale`` times agent x, y, block x, y, cos, sin).
        actions: ``(B, L, 2)`` normalised agent targets (the token positions' units over ``scale``).
        reference: the index in ``tokens`` of the frame whose block defines the frame.
        scale: the tokens' ``token_scale``.

    Returns:
        the tokens and actions in that frame, and the frame ``(origin (B, 2), (cos, sin) (B, 2))``
        for :func:`from_block_frame`.

    The agent a quarter of the board right of a block turned by 90 degrees is below it in its frame:

    >>> tokens = states_to_tokens(torch.tensor([[0.5, 0.0, 0.25, 0.0, torch.pi / 2]]), 4.0)[:, None]
    >>> canonical, moved, frame = block_frame(tokens, torch.tensor([[[0.25, 0.5]]]), 0, 4.0)
    >>> [round(v, 3) + 0.0 for v in canonical.flatten().tolist()], [round(v, 3) + 0.0 for v in moved.flatten().tolist()]
    ([0.0, -1.0, 0.0, 0.0, 4.0, 0.0], [0.5, 0.0])
    >>> torch.allclose(from_block_frame(canonical, frame), tokens, atol=1e-6)
    True
    """
    ref = tokens[:, reference, :, 0, 0]
    origin, rot = ref[:, 2:4], ref[:, 4:6] / ref[:, 4:6].norm(dim=-1, keepdim=True).clamp_min(1e-6)
    flat = tokens[..., 0, 0]
    cos, sin = rot[:, None, 0], rot[:, None, 1]

    def to_frame(v: torch.Tensor) -> torch.Tensor:  # R(-angle) v of (B, T, 2) vectors
        return rotate(v, cos, -sin)

    out = torch.cat([to_frame(flat[..., 0:2] - origin[:, None]), to_frame(flat[..., 2:4] - origin[:, None]),
                     to_frame(flat[..., 4:6])], -1)
    moved = to_frame(actions * scale - origin[:, None].to(actions.dtype)) / scale
    return out[..., None, None], moved, (origin, rot)


def from_block_frame(tokens: torch.Tensor, frame: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The inverse of :func:`block_frame` for tokens ``(B, T, 6, 1, 1)`` in its ``frame``."""
    origin, rot = frame
    flat = tokens[..., 0, 0]
    cos, sin = rot[:, None, 0], rot[:, None, 1]
    out = torch.cat([rotate(flat[..., 0:2], cos, sin) + origin[:, None],
                     rotate(flat[..., 2:4], cos, sin) + origin[:, None], rotate(flat[..., 4:6], cos, sin)], -1)
    return out[..., None, None]


class PoseCodec(LatentCodec):
    """Frames <-> pose tokens ``(N, 6, 1, 1)`` through a VAE and the pose-state reader and drawer.

    Args:
        vae, scaling_factor, micro_batch, fast_decoder: the VAE codec (see :class:`LatentCodec`).
        pose: :class:`PoseStateConfig` fields of the encoder and decoder (``latent_size`` the VAE
            latents'; ``refine_steps``/``refine_lr`` the run-time refinement), ``token_scale``, and
            ``agent_from_pixels`` (read the agent from its colour; default False).
        renderer: an optional :class:`SpriteRenderer`; when there is one, ``decode`` draws with it
            unless ``decoder`` names another.

    >>> import numpy as np
    >>> from world_gym.models.codec import tiny_vae_config
    >>> codec = PoseCodec.from_config(tiny_vae_config(), pose={"latent_size": [8, 8], "refine_steps": 2})
    >>> tokens = codec.encode(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    >>> tokens.shape, codec.decode(tokens).shape
    (torch.Size([3, 6, 1, 1]), (3, 32, 32, 3))
    """

    def __init__(self, vae: AutoencoderKL, scaling_factor: float | None = None, micro_batch: int = 64,
                 fast_decoder: FastDecoder | None = None, pose: dict[str, Any] | None = None,
                 renderer: SpriteRenderer | None = None) -> None:
        super().__init__(vae, scaling_factor, micro_batch, fast_decoder)
        fields = dict(pose or {})
        self.token_scale = float(fields.pop("token_scale", 4.0))
        self.agent_from_pixels = bool(fields.pop("agent_from_pixels", False))
        fields.setdefault("latent_channels", self.vae_channels)
        self.pose_config = PoseStateConfig(**fields)
        if self.pose_config.latent_channels != self.vae_channels:
            raise ValueError(f"pose config reads {self.pose_config.latent_channels} latent channels, "
                             f"the VAE has {self.vae_channels}")
        self.pose_encoder = PoseEncoder(self.pose_config)
        self.sprite = SpriteDecoder(self.pose_config)
        self.renderer: SpriteRenderer | None = None
        if renderer is not None:
            self.attach_renderer(renderer)

    @classmethod
    def from_config(cls, vae_config: dict[str, Any], scaling_factor: float | None = None,
                    fast_decoder: dict[str, Any] | None = None, pose: dict[str, Any] | None = None,
                    renderer: dict[str, Any] | None = None) -> "PoseCodec":
        """A pose codec with freshly initialised networks of the given configs."""
        codec = cls(AutoencoderKL.from_config(dict(vae_config)), scaling_factor, pose=pose)
        if fast_decoder is not None:
            codec.attach_fast_decoder(FastDecoder(codec.vae_channels, codec.downsample, fast_decoder["channels"]))
        if renderer is not None:
            codec.attach_renderer(SpriteRenderer(SpriteRendererConfig.from_dict(renderer)))
        return codec

    def attach_renderer(self, renderer: SpriteRenderer) -> None:
        """Add (or replace) the sprite renderer, and decode with it."""
        self.renderer = renderer.to(self.device, self.dtype)
        self._decoder = "render"

    @property
    def decoders(self) -> tuple[str, ...]:
        return (*super().decoders, *(("render",) if self.renderer is not None else ()))

    @property
    def latent_channels(self) -> int:
        return TOKEN_CHANNELS

    def latent_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """One token per frame, whatever its size."""
        return 1, 1

    def config_dict(self) -> dict[str, Any]:
        out = {**super().config_dict(), "pose": {**self.pose_config.to_dict(), "token_scale": self.token_scale,
                                                 "agent_from_pixels": self.agent_from_pixels}}
        if self.renderer is not None:
            out["renderer"] = self.renderer.config_dict()
        return out

    def encode_vae(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> the VAE's scaled latents."""
        return super().encode_tensor(x)

    def read_states(self, latents: torch.Tensor, refine_steps: int | None = None,
                    agent: torch.Tensor | None = None) -> torch.Tensor:
        """VAE latents ``(N, C, h, w)`` -> states ``(N, 5)``: the encoder's, refined through the decoder
        by ``refine_steps`` (default: the config's) Adam steps; ``agent`` as in :func:`read_states`."""
        cfg = self.pose_config
        steps = cfg.refine_steps if refine_steps is None else refine_steps
        return read_states(self.pose_encoder, self.sprite, latents.to(self.sprite.cell_features.dtype), steps,
                           cfg.refine_lr, agent)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> pose tokens ``(N, 6, 1, 1)`` (not differentiable: refined)."""
        agent = agent_from_pixels(x) if self.agent_from_pixels else None
        return states_to_tokens(self.read_states(self.encode_vae(x), agent=agent), self.token_scale)

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Pose tokens ``(N, 6, 1, 1)`` -> ``(N, 3, H, W)`` in about ``[-1, 1]``."""
        states = tokens_to_states(latents.to(self.sprite.cell_features.dtype), self.token_scale)
        if self._decoder == "render":
            step = self.micro_batch
            return torch.cat([self.renderer(states[i : i + step]) for i in range(0, len(states), step)])
        return super().decode_tensor(self.sprite(states))
