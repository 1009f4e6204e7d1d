"""Push-T coverage read off pose latents, for planning without decoding a frame.

The Push-T pose models (``pusht-irasim-pose``, ``pusht-pose-state``) imagine one pose token per
frame, ``token_scale * (agent x, y, block x, y, cos angle, sin angle)`` with positions in ``[-1, 1]``
for gym-pusht's ``[0, 512]``. The block pose is the one gym-pusht reports (``info["block_pose"]``),
so gym-pusht's coverage (the area of the block's T inside the goal T over the goal T's area, which
gym-pusht computes with shapely) follows from it exactly: :func:`tee_coverage` computes it in closed
form for many poses at once, as the sum of the overlaps of the two T's rectangles.

:class:`PushTPoseCoverage` is the same as an env's reward head (``reward_model="pusht_pose_coverage"``):
gym-pusht's reward and success of every imagined frame, from its token.

:class:`PushTLatentCoverage` is the planning objective: coverage per imagined step, plus an optional
shaping term (minus the mean distance of the T's corners to the goal's, over the workspace size) that
ranks candidates while the block is still far from the goal and coverage is zero for all of them.

>>> import numpy as np
>>> round(float(tee_coverage(np.array([[256.0, 256.0, np.pi / 4]]))[0]), 6)
1.0
"""

from __future__ import annotations

import numpy as np
import torch

from world_gym.envs.pusht.pixels import (
    GOAL_POSE,
    PUSHT_SUCCESS_THRESHOLD,
    TEE_AREA,
    TEE_RECTANGLES,
    WORKSPACE_SIZE,
    coverage_to_reward,
)
from world_gym.planning.imagination import ImaginationModel, Start
from world_gym.planning.objectives import Objective
from world_gym.reward_models.base import RewardContext, RewardHead, RewardOutput

_EPS = 1e-7
_CORNERS = np.concatenate(TEE_RECTANGLES)


def _place(points: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Block-local points ``(P, 2)`` at poses ``(N, 3)`` -> world points ``(N, P, 2)``."""
    c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    x, y = points[None, :, 0], points[None, :, 1]
    return np.stack([poses[:, :1] + c * x - s * y, poses[:, 1:2] + s * x + c * y], axis=-1)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _edges_inside(p: np.ndarray, q: np.ndarray, strict: bool) -> np.ndarray:
    """Twice the signed area swept by the parts of ``p``'s edges inside ``q`` (both convex,
    counter-clockwise, ``(N, 4, 2)``): ``sum cross(a, b)`` over the clipped edges ``a -> b``."""
    a, d = p, np.roll(p, -1, axis=1) - p  # edges a + t d, t in [0, 1]: (N, 4, 2)
    q0, e = q, np.roll(q, -1, axis=1) - q  # half-planes cross(e, x - q0) >= 0: (N, 4, 2)
    c0 = _cross(e[:, None], a[:, :, None] - q0[:, None])  # (N, edges, planes)
    c1 = _cross(e[:, None], d[:, :, None])
    tol = _EPS * (1.0 + np.abs(c0))
    parallel = np.abs(c1) <= _EPS
    outside = parallel & ((c0 <= tol) if strict else (c0 < -tol))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -c0 / c1
    lo = np.where(~parallel & (c1 > 0), t, 0.0).max(axis=-1).clip(0.0, None)
    hi = np.where(~parallel & (c1 < 0), t, 1.0).min(axis=-1).clip(None, 1.0)
    keep = (hi > lo) & ~outside.any(axis=-1)
    start, end = a + lo[..., None] * d, a + hi[..., None] * d
    return np.where(keep, _cross(start, end), 0.0).sum(axis=-1)


def tee_coverage(block_poses: np.ndarray, goal_pose: np.ndarray = GOAL_POSE) -> np.ndarray:
    """gym-pusht's coverage of block poses ``(..., 3)`` (``x, y, angle`` as ``info["block_pose"]``).

    The area of the block's T inside the goal T is the sum of the overlaps of their rectangles, each
    the boundary integral of the parts of both outlines inside the other (edges shared by both are
    counted once). Matches gym-pusht's shapely computation to about 1e-9.

    Returns:
        coverage in ``[0, 1]``, shape ``(...)``.
    """
    poses = np.asarray(block_poses, np.float64)
    lead = poses.shape[:-1]
    poses = poses.reshape(-1, 3)
    goal = np.broadcast_to(np.asarray(goal_pose, np.float64), poses.shape)
    twice_area = np.zeros(len(poses))
    for rect_b in TEE_RECTANGLES:
        b = _place(rect_b, poses)
        for rect_g in TEE_RECTANGLES:
            g = _place(rect_g, goal)
            twice_area += _edges_inside(b, g, strict=False) + _edges_inside(g, b, strict=True)
    return np.clip(twice_area / (2.0 * TEE_AREA), 0.0, 1.0).reshape(lead)


def corner_distance(block_poses: np.ndarray, goal_pose: np.ndarray = GOAL_POSE) -> np.ndarray:
    """Mean distance (workspace units) of the T's 8 corners to the goal T's, shape ``(...)``."""
    poses = np.asarray(block_poses, np.float64)
    lead = poses.shape[:-1]
    corners = _place(_CORNERS, poses.reshape(-1, 3))
    goal = _place(_CORNERS, np.asarray(goal_pose, np.float64)[None])
    return np.linalg.norm(corners - goal, axis=-1).mean(axis=-1).reshape(lead)


def tokens_to_block_poses(latents: torch.Tensor, token_scale: float) -> np.ndarray:
    """Pose tokens ``(..., 6, 1, 1)`` -> block poses ``(..., 3)`` in gym-pusht's units (pixels of 512, radians)."""
    flat = latents.detach().double().cpu().numpy().reshape(*latents.shape[:-3], -1) / token_scale
    if flat.shape[-1] != 6:
        raise ValueError(f"pose tokens have 6 channels, got latents of shape {tuple(latents.shape)}")
    half = WORKSPACE_SIZE / 2
    return np.stack([(flat[..., 2] + 1) * half, (flat[..., 3] + 1) * half,
                     np.arctan2(flat[..., 5], flat[..., 4])], axis=-1)


class PushTLatentCoverage(Objective):
    """gym-pusht's coverage of each imagined step, read off its pose token (no decoding).

    Args:
        token_scale: the pose codec's ``token_scale`` (4 for the shipped models).
        shaping: weight of ``- corner_distance / 512`` added to the coverage (0: coverage alone).
        goal_pose: gym-pusht's goal.

    Raises:
        ValueError (at :meth:`check`): the model's latents are not 6-channel pose tokens.
    """

    name = "pusht_latent_coverage"

    def __init__(self, token_scale: float = 4.0, shaping: float = 5.0, goal_pose: np.ndarray = GOAL_POSE) -> None:
        if shaping < 0:
            raise ValueError(f"shaping must be >= 0, got {shaping}")
        self.token_scale = float(token_scale)
        self.shaping = float(shaping)
        self.goal_pose = np.asarray(goal_pose, np.float64)

    def check(self, model: ImaginationModel) -> None:
        wm = getattr(model, "model", None)
        codec = getattr(wm, "codec", None)
        if codec is not None and getattr(codec, "latent_channels", None) != 6:
            raise ValueError(f"objective {self.name!r} reads Push-T pose tokens (6 channels); this model's "
                             f"latents have {getattr(codec, 'latent_channels', '?')} channels: use a reward head "
                             "objective (e.g. 'resnet_iou') instead")
        scale = getattr(codec, "token_scale", None)
        if scale is not None and float(scale) != self.token_scale:
            raise ValueError(f"the model's pose tokens have token_scale {scale}, the objective {self.token_scale}")

    def score(self, latents: torch.Tensor, frames: np.ndarray | None, start: Start,
              model: ImaginationModel) -> np.ndarray:
        poses = tokens_to_block_poses(latents, self.token_scale)
        out = tee_coverage(poses, self.goal_pose)
        if self.shaping:
            out = out - self.shaping * corner_distance(poses, self.goal_pose) / WORKSPACE_SIZE
        return out


class PushTPoseCoverage(RewardHead):
    """gym-pusht's reward and success read off the imagined pose tokens, exactly (no network).

    For the Push-T pose models the frame is drawn from the pose token, so the coverage of the token's
    block pose is the coverage of the imagined frame's T, computed as gym-pusht computes it
    (:func:`tee_coverage`). About 0.1 ms a frame against the ``resnet_iou`` head's 7 ms, which scores
    the pixels with two ResNet-18s (the largest cost of a ``PoseState-PushT-v0`` step).

    ``gym.make("PoseState-PushT-v0", reward_model="pusht_pose_coverage")``

    Args:
        success_threshold: coverage above which a frame is a success (gym-pusht: 0.95).
        goal_pose: gym-pusht's goal.

    Raises:
        ValueError (when called): no latents in the context (outside a world model), or latents that
            are not 6-channel pose tokens.
    """

    name = "pusht_pose_coverage"

    def __init__(self, success_threshold: float = PUSHT_SUCCESS_THRESHOLD, goal_pose: np.ndarray = GOAL_POSE) -> None:
        if not 0.0 < success_threshold <= 1.0:
            raise ValueError(f"success_threshold must be in (0, 1], got {success_threshold}")
        self.success_threshold = float(success_threshold)
        self.goal_pose = np.asarray(goal_pose, np.float64)

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        latents = context.latents
        if latents is None:
            raise ValueError(f"reward head {self.name!r} reads the imagined pose tokens; it scores frames of a "
                             "world model only (use 'resnet_iou' for frames alone)")
        if latents.ndim != 5 or tuple(latents.shape[2:]) != (6, 1, 1):
            raise ValueError(f"reward head {self.name!r} reads Push-T pose tokens (B, T, 6, 1, 1); this model's "
                             f"latents are {tuple(latents.shape)}: use 'resnet_iou'")
        scale = float(getattr(context.codec, "token_scale", 4.0))
        coverage = tee_coverage(tokens_to_block_poses(latents, scale), self.goal_pose)
        reward, success = coverage_to_reward(coverage, self.success_threshold)
        return RewardOutput(reward=reward, success=success, info={"coverage": coverage.astype(np.float32)})


def make_objective(model: ImaginationModel) -> PushTLatentCoverage:
    """The Push-T planning objective for ``model`` (its codec's ``token_scale`` when it has one)."""
    codec = getattr(getattr(model, "model", None), "codec", None)
    return PushTLatentCoverage(token_scale=float(getattr(codec, "token_scale", 4.0)))
