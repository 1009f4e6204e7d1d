"""Planar pose tokens in the frame of one of their objects: a clip-level change of coordinates.

A pose token is six numbers, ``scale * (agent x, agent y, object x, object y, cos angle, sin angle)``:
an agent and one rigid object in the plane, positions in the action normalisation's units. The
contact dynamics of a planar pushing task do not change when the whole scene is moved or turned
(walls aside), so a backbone can denoise a clip in the object's frame of a reference frame instead
of in board coordinates. :class:`~world_gym.backbones.irasim.IRASim` does so when its config sets
``pose_frame``; any codec that writes such tokens can use it.
"""

from __future__ import annotations

import math

import torch


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Angles mapped to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def rotate(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``(..., 2)`` vectors rotated by the angle whose cosine and sine are ``cos``, ``sin`` ``(...)``:
    ``(cos x - sin y, sin x + cos y)``, computed as ``(x, y) * (cos, cos) + (y, x) * (-sin, sin)``, the
    same numbers bit for bit in four tensor operations instead of nine."""
    return v * torch.stack([cos, cos], -1) + v.flip(-1) * torch.stack([-sin, sin], -1)


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

    >>> tokens = torch.tensor([[2.0, 0.0, 1.0, 0.0, 0.0, 4.0]])[:, None, :, None, None]  # scale 4
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
