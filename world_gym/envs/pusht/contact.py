"""Contact between gym-pusht's agent and block, on pose tokens: the block moves only when pushed.

gym-pusht's space has no momentum to speak of (``space.damping = 0``: a body loses all its velocity
at once), so its T-shaped block is quasi-static: it moves during a step only while the agent's disc
pushes it, or while the solver pushes it out of a wall it was pushed into. :func:`swept_clearance`
measures how close the agent's disc comes to the block's T while it moves from one position to the
next (the disc swept along the segment between them), :func:`wall_penetration` how deep the T lies
in a wall; :func:`freeze_untouched_block` uses both as a gate on imagined pose tokens: where the
swept disc stays farther than a margin from the T and the T is not in a wall, the block's pose is
copied unchanged from the step before, so a world model on pose tokens cannot drift a block that
nothing touches (:meth:`~world_gym.envs.pusht.pose_codec.PoseCodec.constrain_rollout`).

The margin and the wall slop come from gym-pusht's own episodes, with their true poses (training set,
50 held-out episodes, the behaviour stress set): of the steps in which the block moves by more than
0.1 px (its far end), the gate would freeze 0.06%, 0.04% and 0.33%, none by more than 2.7 px, and
of the steps in which it stays still it freezes 93%, 93% and 86% (the rest: the agent within the
margin, parked on the block or brushing it). Gated step by step, the true pose sequences stay within
2.0, 0.16 and 0.20 px of the truth (mean 0.004, 0.003 and 0.015).

Positions here are pixels of gym-pusht's 512 board; a pose token holds them in the action
normalisation's units (``[0, 512]`` -> ``[-1, 1]``) times ``token_scale``
(:func:`~world_gym.envs.pusht.pose_state.states_to_tokens`).
"""

from __future__ import annotations

import numpy as np
import torch

from world_gym.backbones.pose_frame import rotate, wrap_angle
from world_gym.envs.pusht.pixels import TEE_RECTANGLES, WORKSPACE_SIZE

#: gym-pusht's agent disc radius (pixels of 512; ``ground_truth.AGENT_RADIUS``, kept here so that the
#: gate needs no gym-pusht import).
AGENT_RADIUS = 15.0
#: The gate's margin (pixels of 512): a block is frozen when the swept agent disc stays farther than
#: this from its T. Chosen on gym-pusht's training episodes: at 0 px the gated true sequences were
#: more than 1 px off in 0.4% of frames (0.03% at 3 px); at 5 px the gate held 89% of the still
#: steps (93% at 3 px).
BLOCK_GATE_MARGIN = 3.0
#: gym-pusht's walls: segments at 5 and 506 of radius 2, so the T's free room is ``[7, 504]`` on both axes.
WALL_LOW, WALL_HIGH = 7.0, 504.0
#: A T resting against a wall lies about 0.1 px in it (pymunk's collision slop); deeper than this, the
#: solver is pushing it out and it moves with nothing touching it.
WALL_SLOP = 0.25
#: With the wall hold on (:func:`hold_in_walls`), how much deeper than in the step before (or than
#: :data:`WALL_SLOP`, whichever is deeper) an imagined T may lie in a wall after one step (pixels of 512).
#: gym-pusht's own block goes more than 1 px deeper in one step in 0-4% of its steps: with a 1 px
#: allowance six of 38 held-out rollouts of ``pusht-irasim-pose`` took another course (block IoU over
#: 150 steps 0.752 against 0.759 without the hold), with 3 px the figure stayed (0.759).
WALL_STEP_SLOP = 3.0
#: How far the T's farthest point lies from its pose's origin (pixels of 512): a turn by ``a`` radians
#: moves it about ``FAR_END * a``.
FAR_END = 120.0
#: The T's rectangles' lower and upper corners ``(2, 2)`` and all their corners ``(2, 4, 2)``, block-local pixels.
_LO = torch.tensor(np.array([r.min(0) for r in TEE_RECTANGLES]))
_HI = torch.tensor(np.array([r.max(0) for r in TEE_RECTANGLES]))
_CORNERS = torch.tensor(np.array(TEE_RECTANGLES))


def _point_box_offset(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Offsets ``(..., 2)`` of points ``(..., 2)`` from their nearest points of the axis-aligned boxes
    ``[lo, hi]`` (broadcast; 0 inside)."""
    return p - torch.minimum(torch.maximum(p, lo), hi)


def _point_box_distance(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Distance of points ``(..., 2)`` to the axis-aligned boxes ``[lo, hi]`` (broadcast; 0 inside)."""
    return _point_box_offset(p, lo, hi).norm(dim=-1)


def _point_segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of points ``(..., 2)`` to the segments ``a``-``b`` ``(..., 2)`` (a point when ``a == b``)."""
    d = b - a
    t = ((p - a) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-12)
    return (p - (a + t.clamp(0, 1)[..., None] * d)).norm(dim=-1)


def segment_box_distance(a: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Distances ``(..., K)`` between segments ``a``-``b`` ``(..., 2)`` and ``K`` axis-aligned boxes
    ``[lo, hi]`` (``(K, 2)`` each): 0 where they meet, else the smallest of the endpoints' distances to
    the box and the corners' distances to the segment (two disjoint convex shapes in the plane are
    closest at a vertex of one of them).

    >>> box = torch.tensor([[0.0, 0.0]]), torch.tensor([[10.0, 10.0]])
    >>> segment_box_distance(torch.tensor([-5.0, 13.0]), torch.tensor([15.0, 13.0]), *box)  # above it
    tensor([3.])
    >>> segment_box_distance(torch.tensor([-5.0, 5.0]), torch.tensor([15.0, 5.0]), *box)  # through it
    tensor([0.])
    """
    lo, hi = lo.to(a), hi.to(a)
    ends = torch.minimum(_point_box_distance(a[..., None, :], lo, hi), _point_box_distance(b[..., None, :], lo, hi))
    return _segment_box_distance(a, b, lo, hi, _box_corners(lo, hi), ends)


def _box_corners(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The corners ``(K, 4, 2)`` of ``K`` axis-aligned boxes ``[lo, hi]`` (``(K, 2)`` each), in order around them."""
    return torch.stack([lo, torch.stack([hi[:, 0], lo[:, 1]], -1), hi, torch.stack([lo[:, 0], hi[:, 1]], -1)], -2)


#: The corners ``(2, 4, 2)`` of the T's two rectangles as :func:`_box_corners` orders them.
_BOX_CORNERS = _box_corners(_LO, _HI)


def _segment_box_distance(a: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, corners: torch.Tensor,
                          ends: torch.Tensor) -> torch.Tensor:
    """:func:`segment_box_distance` given the boxes' corners (:func:`_box_corners`) and the smaller of
    the endpoints' distances to each box ``ends`` ``(..., K)``."""
    a, b = a[..., None, :], b[..., None, :]
    # separating axes: x, y and the segment's normal
    overlap = ((torch.minimum(a, b) <= hi) & (torch.maximum(a, b) >= lo)).all(-1)
    d = b - a
    normal = torch.stack([-d[..., 1], d[..., 0]], -1)
    side = ((corners - a[..., None, :]) * normal[..., None, :]).sum(-1)  # (..., K, 4)
    meet = overlap & ~((side > 0).all(-1) | (side < 0).all(-1))
    corner = _point_segment_distance(corners, a[..., None, :], b[..., None, :]).amin(-1)
    return torch.where(meet, torch.zeros_like(ends), torch.minimum(ends, corner))


def swept_clearance(agent_from: torch.Tensor, agent_to: torch.Tensor, block_pose: torch.Tensor) -> torch.Tensor:
    """How far the agent's disc stays from the block's T while it moves from ``agent_from`` to
    ``agent_to`` (``(..., 2)``, pixels of 512), the block at ``block_pose`` ``(..., 3)`` (x, y, angle):
    the distance of the segment between them to the T, less :data:`AGENT_RADIUS` (negative: overlap).

    >>> pose = torch.tensor([256.0, 256.0, 0.0])
    >>> swept_clearance(torch.tensor([256.0, 200.0]), torch.tensor([256.0, 220.0]), pose)  # the bar's top is y=256
    tensor(21.)
    >>> swept_clearance(torch.tensor([100.0, 300.0]), torch.tensor([400.0, 300.0]), pose)  # across the stem
    tensor(-15.)
    """
    c, s = torch.cos(block_pose[..., 2]), torch.sin(block_pose[..., 2])

    def local(p: torch.Tensor) -> torch.Tensor:  # R(-angle) (p - position)
        return rotate(p - block_pose[..., :2], c, -s)

    return _local_clearance(local(agent_from), local(agent_to))


def _local_clearance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How far the agent's disc, swept from ``a`` to ``b`` (``(..., 2)``, block-local pixels), stays from the T."""
    return segment_box_distance(a, b, _LO, _HI).amin(-1) - AGENT_RADIUS


def wall_penetration(block_pose: torch.Tensor) -> torch.Tensor:
    """How deep the block's T at ``block_pose`` ``(..., 3)`` lies beyond the walls' inner faces (pixels
    of 512; negative: its distance from the nearest wall).

    >>> wall_penetration(torch.tensor([256.0, 256.0, 0.0]))  # the stem's end at y = 376
    tensor(-128.)
    """
    world = _tee_corners(block_pose)
    return torch.maximum(WALL_LOW - world, world - WALL_HIGH).amax(dim=(-2, -1))


def _tee_corners(block_pose: torch.Tensor) -> torch.Tensor:
    """The T's eight rectangle corners ``(..., 8, 2)`` on the board (pixels of 512) at ``block_pose`` ``(..., 3)``."""
    c, s = torch.cos(block_pose[..., 2:3]), torch.sin(block_pose[..., 2:3])
    corners = _CORNERS.to(block_pose).reshape(-1, 2)
    x = block_pose[..., None, 0] + c * corners[:, 0] - s * corners[:, 1]
    y = block_pose[..., None, 1] + s * corners[:, 0] + c * corners[:, 1]
    return torch.stack([x, y], -1)


def _pose_pixels(block_state: torch.Tensor) -> torch.Tensor:
    """A block state ``(..., 3)`` (x, y in pose units, angle) as a pose in pixels of 512 and radians."""
    return torch.cat([(block_state[..., :2] + 1) * (WORKSPACE_SIZE / 2), block_state[..., 2:3]], -1)


def tokens_to_pixels(tokens: torch.Tensor, token_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose tokens ``(..., 6, 1, 1)`` -> the agent's position ``(..., 2)`` and the block's pose
    ``(..., 3)`` in pixels of 512 and radians (float32 or wider)."""
    flat = tokens.flatten(-3).float() / token_scale
    half = WORKSPACE_SIZE / 2
    agent = (flat[..., 0:2] + 1) * half
    block = torch.cat([(flat[..., 2:4] + 1) * half, torch.atan2(flat[..., 5:6], flat[..., 4:5])], -1)
    return agent, block


def freeze_untouched_block(previous: torch.Tensor, new: torch.Tensor, token_scale: float,
                           margin: float = BLOCK_GATE_MARGIN, deadband: float = 0.0,
                           walls: bool = False) -> torch.Tensor:
    """Imagined pose tokens with the block held still wherever the agent did not reach it.

    Step by step, the block's channels of each new token are copied from the token before (the
    last of ``previous`` for the first new one, the gated token for the others) where the agent's
    disc, swept from its position in the token before to its position in the new one, stays farther
    than ``margin`` from the T at the block's pose before (or, with a ``deadband``, does not reach
    it and the new token moves the T's far end by less than ``deadband``), and that T lies no deeper
    than :data:`WALL_SLOP` in a wall. The agent's channels are never changed.

    Within the margin a learned step decides; a step that has not learned that nothing moves a block
    the agent passes close by nudges it there by fractions of a pixel, and over hundreds of near
    passes these add up. In gym-pusht's episodes such a block moves in 1-3% of the steps in which
    the swept disc comes within 3 px without touching, half of them by less than 0.5 px: a deadband
    of 1 px freezes 0.35% of the steps in which the block moves (0.07% without it) and keeps the gated
    true pose sequences within 2.0, 0.61 and 0.68 px of the truth (training set, 50 held-out
    episodes, 168 stress episodes; 2.0, 0.16 and 0.20 without it).

    Args:
        previous: ``(B, h, 6, 1, 1)`` pose tokens before ``new`` (a rollout's context), ``h >= 1``.
        new: ``(B, L, 6, 1, 1)`` imagined pose tokens.
        token_scale: the pose codec's ``token_scale``.
        margin: pixels of 512 (``>= 0``).
        deadband: pixels of 512 (``>= 0``; 0: off): the smallest motion of the T's far end
            (:data:`FAR_END` x its turn plus its shift) a step may make where the swept disc comes
            within ``margin`` but does not reach the T.
        walls: also hold each step's block out of the walls (:func:`hold_in_walls`): where it lies
            deeper in a wall than the block before it by more than :data:`WALL_STEP_SLOP`, it is
            moved straight back to that depth (its position channels only).

    Returns:
        ``(B, L, 6, 1, 1)`` tokens, ``new``'s dtype; a frozen block's channels equal the previous
        token's bit for bit.
    """
    last = previous[:, -1]
    out = []
    for k in range(new.shape[1]):
        token = new[:, k]
        agent_from, block = tokens_to_pixels(last, token_scale)
        agent_to, block_to = tokens_to_pixels(token, token_scale)
        clearance = swept_clearance(agent_from, agent_to, block)
        reach = clearance > margin
        if deadband > 0:
            turn = wrap_angle(block_to[..., 2] - block[..., 2])
            moved = (block_to[..., :2] - block[..., :2]).norm(dim=-1) + FAR_END * turn.abs()
            reach = reach | ((clearance > 0) & (moved < deadband))
        free = reach & (wall_penetration(block) <= WALL_SLOP)
        free = free[:, None, None, None]
        token = torch.cat([token[:, :2], torch.where(free, last[:, 2:].to(token.dtype), token[:, 2:])], 1)
        if walls:
            token = _hold_token_in_walls(block, token, token_scale)
        out.append(token)
        last = token
    return torch.stack(out, 1)


def hold_in_walls(block_before: torch.Tensor, block: torch.Tensor, step_slop: float = WALL_STEP_SLOP) -> torch.Tensor:
    """The block's pose ``block`` ``(..., 3)`` (pixels of 512, radians) moved straight back from the
    walls as far as it must be so that its T lies no deeper in a wall than the T at ``block_before``
    did (or :data:`WALL_SLOP`, whichever is deeper) plus ``step_slop``; unchanged where it already does.

    gym-pusht's walls are thin segments: a fast push can drive the block a few pixels into one, and a
    block wedged there stays until it is pushed out, but in one step the block goes deeper by more than
    1 px only in 0-4% of its steps (held-out and stress episodes; up to 21 px in a step of the `circle`
    family). A learned step that has not met walls in its data slides a pushed block through them.

    >>> before = torch.tensor([256.0, 256.0, 0.0])  # the bar spans x 196-316
    >>> hold_in_walls(before, torch.tensor([20.0, 256.0, 0.0]))  # 47 px into the left wall: back to 3.25
    tensor([ 63.7500, 256.0000,   0.0000])
    >>> hold_in_walls(before, torch.tensor([70.0, 256.0, 0.0]))  # clear of it: unchanged
    tensor([ 70., 256.,   0.])
    """
    allowed = (wall_penetration(block_before).clamp(min=WALL_SLOP) + step_slop)[..., None, None]
    world = _tee_corners(block)
    low = (WALL_LOW - allowed - world).amax(-2).clamp(min=0)  # (..., 2): how far beyond the left / top wall
    high = (world - WALL_HIGH - allowed).amax(-2).clamp(min=0)
    return torch.cat([block[..., :2] + low - high, block[..., 2:]], -1)


def _hold_token_in_walls(block_before: torch.Tensor, token: torch.Tensor, token_scale: float) -> torch.Tensor:
    """:func:`hold_in_walls` on pose tokens ``(B, 6, 1, 1)``: only the position channels of tokens
    whose block is moved change."""
    _, block = tokens_to_pixels(token, token_scale)
    held = hold_in_walls(block_before, block)
    moved = (held[..., :2] != block[..., :2]).any(-1)[:, None, None, None]
    xy = ((held[..., :2] / (WORKSPACE_SIZE / 2) - 1) * token_scale).to(token.dtype)[..., None, None]
    return torch.cat([token[:, :2], torch.where(moved, xy, token[:, 2:4]), token[:, 4:]], 1)


#: Width of :func:`contact_features`.
CONTACT_FEATURES = 10
#: Width of :func:`wall_features`.
WALL_FEATURES = 12


def wall_features(block_state: torch.Tensor) -> torch.Tensor:
    """How the block's T meets each of the four walls, ``(..., WALL_FEATURES)``: for the left, right,
    top and bottom wall, how deep the T's deepest corner lies beyond it (units of 16 px, clipped to
    ``[-4, 1]``; negative: its distance), then that corner's coordinates in the block's frame (units of
    64 px), faded to zero from 0 to 16 px away from the wall (where the wall can push, and about what).

    ``block_state`` ``(..., 3)``: block x, y in pose units and angle.
    """
    return _wall_features(*_wall_depths(block_state))


def _wall_depths(block_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each wall (left, right, top, bottom), how deep the T's deepest corner lies beyond it (pixels
    of 512) ``(..., 4)`` and which of its eight corners that is ``(..., 4)``; their maximum is
    :func:`wall_penetration`, bit for bit."""
    world = _tee_corners(_pose_pixels(block_state))
    x, y = world[..., 0], world[..., 1]
    beyond = torch.stack([WALL_LOW - x, x - WALL_HIGH, WALL_LOW - y, y - WALL_HIGH], -2)  # (..., 4, 8)
    return beyond.max(-1)


def _wall_features(depth: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    corner = _CORNERS.to(depth).reshape(-1, 2)[which] / 64.0  # (..., 4, 2), block-local
    near = (1 + depth / 16.0).clamp(0, 1)[..., None]
    return torch.cat([(depth / 16.0).clamp(-4, 1), (corner * near).flatten(-2)], -1)


def contact_features(agent: torch.Tensor, agent_next: torch.Tensor, block_state: torch.Tensor) -> torch.Tensor:
    """The contact geometry a pose step reads beside coordinates, ``(..., CONTACT_FEATURES)``.

    For the agent where it is and where it goes (``agent``, ``agent_next``: ``(..., 2)`` in the block's
    frame, pose units, as :class:`~world_gym.envs.pusht.pose_state.PoseStep` computes them), its offset
    from the nearest point of each of the T's two rectangles (zero inside; units of 64 px); the swept
    disc's clearance from the T (:func:`segment_box_distance` less :data:`AGENT_RADIUS`; units of 16 px,
    clipped to ``[-2, 4]``); how deep the T lies in a wall (:func:`wall_penetration` of ``block_state``
    ``(..., 3)``: block x, y in pose units and angle; units of 16 px, clipped to ``[-4, 1]``).

    >>> f = contact_features(torch.tensor([0.0, -0.5]), torch.tensor([0.0, -0.4]), torch.zeros(3))
    >>> f.shape, round(float(f[1]), 3), round(float(f[8]), 3)  # 128 px above the bar; the swept disc 87.4 px off
    (torch.Size([10]), -2.0, 4.0)
    """
    return block_features(agent, agent_next, block_state, contact=True, walls=False)


def block_features(agent: torch.Tensor, agent_next: torch.Tensor, block_state: torch.Tensor, contact: bool = True,
                   walls: bool = True) -> torch.Tensor:
    """:func:`contact_features` (with ``contact``) then :func:`wall_features` (with ``walls``), as a pose
    step reads them, ``(..., CONTACT_FEATURES + WALL_FEATURES)`` for both, from one placement of the
    T's corners and one distance of each endpoint to the T's rectangles; equal to computing them
    one by one, bit for bit.
    """
    lo, hi = _LO.to(agent), _HI.to(agent)
    depth, which = _wall_depths(block_state)
    parts = []
    if contact:
        half = WORKSPACE_SIZE / 2
        a, b = agent * half, agent_next * half
        offsets = [_point_box_offset(p[..., None, :], lo, hi) for p in (a, b)]  # (..., 2, 2)
        ends = torch.minimum(offsets[0].norm(dim=-1), offsets[1].norm(dim=-1))
        swept = _segment_box_distance(a, b, lo, hi, _BOX_CORNERS.to(agent), ends).amin(-1) - AGENT_RADIUS
        wall = depth.amax(-1)
        parts += [o.flatten(-2) / 64.0 for o in offsets]
        parts += [(swept / 16.0).clamp(-2, 4)[..., None], (wall / 16.0).clamp(-4, 1)[..., None]]
    if walls:
        parts.append(_wall_features(depth, which))
    return torch.cat(parts, -1)
