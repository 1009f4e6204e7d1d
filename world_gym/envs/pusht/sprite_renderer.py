"""Poses -> pixels: learned sprites of the agent and the block, placed by their pose (a spatial transformer).

The :class:`SpriteRenderer` draws a Push-T frame straight from a state ``(agent x, y, block x, y,
angle)``: a learned background (the board, the goal T, the walls), then the block's learned RGBA
sprite turned and moved to the block's pose, then the agent's sprite moved to the agent. Each output
pixel samples the sprites (bilinearly) at its centre in the objects' own frames, so the objects'
edges fall where the pose puts them to a fraction of a pixel; with ``canvas`` set it blends them
at the centres of the four canvas pixels that a bilinear shrink of the simulator's canvas reads
(gym-pusht draws on 512 x 512 pixels and shrinks them to 96 x 96), so that edges also fall on the
canvas's pixel grid. A sprite is sampled only in the window of pixels whose sample points can reach
it (a 129-unit block sprite turned any way covers at most 35 x 35 pixels of a 96 x 96 frame); the rest
of the frame is the background, as sampling everywhere would draw it, bit for bit. Everything it
draws is learned from (frame, privileged pose) pairs (``world-gym train pose-renderer``); only the
placement is geometry.

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

import math
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
        canvas: the side in pixels of the square canvas the simulator draws on before it shrinks the
            canvas to ``frame_size`` by bilinear sampling (gym-pusht: 512, ``cv2.resize``); each frame
            pixel then blends the sprites sampled at the centres of the four canvas pixels around the
            point it samples, so that edges fall on the canvas's pixel grid as the simulator's do.
            0: each frame pixel samples the sprites at its own centre.
    """

    frame_size: tuple[int, int] = (96, 96)
    workspace: float = 512.0
    block_extent: float = 64.0
    block_centre: tuple[float, float] = (0.0, 60.0)
    agent_extent: float = 20.0
    texels_per_unit: float = 1.0
    canvas: int = 0

    def __post_init__(self) -> None:
        self.frame_size = tuple(int(s) for s in self.frame_size)  # type: ignore[assignment]
        self.block_centre = tuple(float(c) for c in self.block_centre)  # type: ignore[assignment]
        if min(self.block_extent, self.agent_extent, self.texels_per_unit, self.workspace) <= 0:
            raise ValueError("extents, texels_per_unit and workspace must be positive")
        self.canvas = int(self.canvas)
        if self.canvas < 0 or (self.canvas and self.canvas < max(self.frame_size)):
            raise ValueError(f"canvas must be 0 or at least the frame's side {max(self.frame_size)}, "
                             f"got {self.canvas}")

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


def _canvas_samples(h: int, w: int, canvas: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a ``canvas`` x ``canvas`` image shrunk to ``h`` x ``w`` by bilinear sampling (OpenCV's
    ``INTER_LINEAR``: frame pixel ``j`` samples canvas coordinate ``(j + 0.5) * canvas / w - 0.5``) reads
    it: the centres ``(4, h * w, 2)`` of the four canvas pixels around each frame pixel's sample point,
    as ``(x, y)`` in pose units, and their bilinear weights ``(4, h * w)`` (edge pixels clamped)."""
    def axis(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = ((torch.arange(n, dtype=torch.float64) + 0.5) * canvas / n - 0.5).clamp(0, canvas - 1)
        lo = u.floor().clamp(max=canvas - 2)
        frac = u - lo
        centre = lambda i: (i + 0.5) / canvas * 2 - 1  # noqa: E731
        return centre(lo), centre(lo + 1), frac
    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    points, weights = [], []
    for ys, wy in ((y0, 1 - fy), (y1, fy)):
        for xs, wx in ((x0, 1 - fx), (x1, fx)):
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([gx.flatten(), gy.flatten()], -1))
            weights.append((wy[:, None] * wx[None, :]).flatten())
    return torch.stack(points).float(), torch.stack(weights).float()


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
        if c.canvas:
            points, weights = _canvas_samples(h, w, c.canvas)
        else:
            points, weights = _pixel_centres(h, w)[None], torch.ones(1, h * w)
        self.register_buffer("pixels", points, persistent=False)  # (K, H W, 2): K sample points a pixel
        self.register_buffer("pixel_weights", weights, persistent=False)  # (K, H W)
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
        """The sprite's colour ``(M, 3, P)`` and alpha ``(M, 1, P)`` at ``coords`` ``(M, P, 2)`` (its own
        frame, workspace units)."""
        grid = (coords / extent).to(sprite.dtype)[:, None]
        out = F.grid_sample(sprite.expand(len(coords), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)[:, :, 0]
        return out[:, :3], out[:, 3:].clamp(0, 1)

    def _window(self, centres: torch.Tensor, radius: float, margin: float) -> torch.Tensor:
        """The flat indices ``(N, S_h S_w)`` of the frame pixels whose sample points may lie within
        ``radius`` (pose units) of ``centres`` ``(N, 2)`` on either axis: a window of fixed size per call
        (``S_h`` x ``S_w``), moved with each centre and kept inside the frame."""
        h, w = self.config.frame_size
        reach = radius + margin
        starts, sizes = [], []
        for axis, n in ((1, h), (0, w)):  # rows follow y, columns x
            # pixel i's centre sits at (i + 0.5) / n * 2 - 1: those within reach are ceil(first) onwards
            size = min(n, math.floor(reach * n) + 1)
            first = torch.ceil((centres[:, axis].detach() - reach + 1) / 2 * n - 0.5)
            starts.append(torch.nan_to_num(first, 0.0).clamp(0, n - size).long())
            sizes.append(size)
        rows = starts[0][:, None] + torch.arange(sizes[0], device=centres.device)
        cols = starts[1][:, None] + torch.arange(sizes[1], device=centres.device)
        return (rows[:, :, None] * w + cols[:, None, :]).flatten(1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        c = self.config
        half = c.workspace / 2
        states = states.to(self.background.dtype)
        n, k = len(states), len(self.pixels)
        h, w = c.frame_size
        cos, sin = torch.cos(states[:, 4]), torch.sin(states[:, 4])
        block_centre = self.block_centre.to(states.dtype)
        # Each sprite changes only the pixels whose sample points reach it; the rest of the frame is the
        # background. The sample points of a pixel lie within a canvas pixel of its centre, moved by ``offset``.
        margin = (2 / c.canvas if c.canvas else 0.0) + float(self.offset.detach().abs().max()) / half + 1e-4
        weights = self.pixel_weights.to(states.dtype)  # (K, H W)
        background = self.background.flatten(1)  # (3, H W)
        out = (background[None] * weights[:, None]).sum(0) if k > 1 else background
        out = out[None].expand(n, -1, -1)
        texel = 2 * c.block_extent / (self.block.shape[-1] - 1), 2 * c.agent_extent / (self.agent.shape[-1] - 1)
        # the block's window (drawn over the background), then the agent's (drawn over both)
        block_window = self._window(states[:, 2:4] + rotate(block_centre, cos, sin) / half,
                                    math.sqrt(2) * (c.block_extent + texel[0]) / half, margin)
        agent_window = self._window(states[:, 0:2], (c.agent_extent + texel[1]) / half, margin)
        for index, with_agent in ((block_window, False), (agent_window, True)):
            m = index.shape[1]
            pixels = self.pixels.to(states.dtype)[:, index] + self.offset / half  # (K, N, M, 2), pose units
            pixels = pixels.transpose(0, 1)  # (N, K, M, 2)
            in_block = rotate((pixels - states[:, None, None, 2:4]) * half, cos[:, None, None],
                              -sin[:, None, None]) - block_centre
            block_rgb, block_alpha = self._sample(self.block, in_block.flatten(0, 1), c.block_extent)
            drawn = background[:, index].transpose(0, 1).repeat_interleave(k, 0)  # (N K, 3, M)
            drawn = drawn * (1 - block_alpha) + block_rgb * block_alpha
            if with_agent:
                from_agent = (pixels - states[:, None, None, 0:2]) * half
                agent_rgb, agent_alpha = self._sample(self.agent, from_agent.flatten(0, 1), c.agent_extent)
                drawn = drawn * (1 - agent_alpha) + agent_rgb * agent_alpha
            if k > 1:
                drawn = (drawn.reshape(n, k, 3, m) * weights[:, index].transpose(0, 1)[:, :, None]).sum(1)
            out = out.scatter(2, index[:, None].expand(-1, 3, -1), drawn)
        return out.reshape(n, 3, h, w)
