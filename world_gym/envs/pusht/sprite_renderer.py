"""Poses -> pixels: learned sprites of the agent and the block, placed by their pose (a spatial transformer).

The :class:`SpriteRenderer` draws a Push-T frame straight from a state ``(agent x, y, block x, y,
angle)``: a learned background (the board, the goal T, the walls), then the block's learned RGBA
sprite turned and moved to the block's pose, then the agent's sprite moved to the agent. Each output
pixel samples the sprites (bilinearly) at its centre in the objects' own frames, as gym-pusht
samples its 512 x 512 canvas when it shrinks it to 96 x 96, so the objects' edges fall where the
pose puts them to a fraction of a pixel. Everything it draws is learned from (frame, privileged
pose) pairs (``world-gym train pose-renderer``); only the placement is geometry.

It is the third decoder of a :class:`~world_gym.envs.pusht.pose_codec.PoseCodec` (``decoder="render"``)
beside the sprite decoder's VAE latents through the VAE or the fast decoder: on held-out gym-pusht
frames it draws a true pose at 42 dB with the agent 0.5 units of 512 from where gym-pusht draws
it, where the latent path lands 1.8-2.1 units off (docs/models/pusht-irasim-pose.md).

>>> import torch
>>> renderer = SpriteRenderer(SpriteRendererConfig(frame_size=(32, 32)))
>>> renderer(torch.zeros(2, 5)).shape
torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_gym.backbones.pose_frame import rotate


@dataclass
class SpriteRendererConfig:
    """Sizes of a :class:`SpriteRenderer` (lengths in units of the workspace, gym-pusht's 512).

    Attributes:
        frame_size: ``(H, W)`` of the frames it draws.
        workspace: the side of the square the pose units ``[-1, 1]`` span.
        block_extent: half the side of the block's square sprite.
        block_centre: the sprite's centre in the block's own frame (gym-pusht's T hangs from its
            origin: its bar spans y 0-30, its stem 30-120, so the sprite is centred at y = 60).
        agent_extent: half the side of the agent's square sprite (gym-pusht's disc has radius 15).
        texels_per_unit: sprite resolution (1: one texel per unit, the 512 canvas's pixel).
    """

    frame_size: tuple[int, int] = (96, 96)
    workspace: float = 512.0
    block_extent: float = 64.0
    block_centre: tuple[float, float] = (0.0, 60.0)
    agent_extent: float = 20.0
    texels_per_unit: float = 1.0

    def __post_init__(self) -> None:
        self.frame_size = tuple(int(s) for s in self.frame_size)  # type: ignore[assignment]
        self.block_centre = tuple(float(c) for c in self.block_centre)  # type: ignore[assignment]
        if min(self.block_extent, self.agent_extent, self.texels_per_unit, self.workspace) <= 0:
            raise ValueError("extents, texels_per_unit and workspace must be positive")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d, "frame_size": list(self.frame_size), "block_centre": list(self.block_centre)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SpriteRendererConfig":
        return cls(**d)


def _pixel_centres(h: int, w: int) -> torch.Tensor:
    """Pixel centres ``(h * w, 2)`` as ``(x, y)`` in pose units (``x`` the column)."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h * 2 - 1, (torch.arange(w) + 0.5) / w * 2 - 1,
                            indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1)


def _sprite(extent: float, texels_per_unit: float) -> nn.Parameter:
    """An RGBA sprite ``(1, 4, n, n)``: colour 0 (grey in ``[-1, 1]``), half opaque, to be learned."""
    n = int(round(2 * extent * texels_per_unit)) + 1
    return nn.Parameter(torch.cat([torch.zeros(3, n, n), torch.full((1, n, n), 0.5)])[None])


class SpriteRenderer(nn.Module):
    """States ``(N, 5)`` (pose units, the angle in radians) -> frames ``(N, 3, H, W)`` in ``[-1, 1]``.

    Parameters: ``background`` ``(3, H, W)``; ``block`` and ``agent`` RGBA sprites ``(1, 4, n, n)``
    (alpha clamped to ``[0, 1]``, nothing outside the sprite); ``offset``, a learned shift of the
    pixel grid in workspace units (where the simulator rounds its drawing). The agent is drawn over
    the block, the block over the background.
    """

    def __init__(self, config: SpriteRendererConfig | None = None, background: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = c = config or SpriteRendererConfig()
        h, w = c.frame_size
        self.register_buffer("pixels", _pixel_centres(h, w), persistent=False)
        self.register_buffer("block_centre", torch.tensor(c.block_centre), persistent=False)
        self.background = nn.Parameter(background.clone().float() if background is not None else torch.ones(3, h, w))
        if self.background.shape != (3, h, w):
            raise ValueError(f"background must be (3, {h}, {w}), got {tuple(self.background.shape)}")
        self.block = _sprite(c.block_extent, c.texels_per_unit)
        self.agent = _sprite(c.agent_extent, c.texels_per_unit)
        self.offset = nn.Parameter(torch.zeros(2))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def _sample(self, sprite: torch.Tensor, coords: torch.Tensor, extent: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The sprite's colour and alpha at ``coords`` ``(N, H W, 2)`` (its own frame, workspace units)."""
        n, (h, w) = coords.shape[0], self.config.frame_size
        grid = (coords / extent).reshape(n, h, w, 2).to(sprite.dtype)
        out = F.grid_sample(sprite.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)
        return out[:, :3], out[:, 3:].clamp(0, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        c = self.config
        half = c.workspace / 2
        states = states.to(self.background.dtype)
        pixels = self.pixels.to(states.dtype)[None] + self.offset / half  # (1, H W, 2), pose units
        cos, sin = torch.cos(states[:, 4])[:, None], torch.sin(states[:, 4])[:, None]
        in_block = rotate((pixels - states[:, None, 2:4]) * half, cos, -sin) - self.block_centre.to(states.dtype)
        from_agent = (pixels - states[:, None, 0:2]) * half
        block_rgb, block_alpha = self._sample(self.block, in_block, c.block_extent)
        agent_rgb, agent_alpha = self._sample(self.agent, from_agent, c.agent_extent)
        out = self.background[None] * (1 - block_alpha) + block_rgb * block_alpha
        return out * (1 - agent_alpha) + agent_rgb * agent_alpha
