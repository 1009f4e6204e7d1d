"""The reward-head protocol: frames (plus the env's context) in, per-frame reward and success out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch


@dataclass
class RewardContext:
    """What an env knows beside the frames, for ``B`` envs.

    Attributes:
        previous_frames: ``(B, H, W, 3)`` uint8, the frame before the scored ones.
        goal_images: ``(B, H, W, 3)`` uint8 goal images given at reset, or None.
        task: one instruction text per env, or None.
        encode: the world model's codec encoder (uint8 ``(N, H, W, 3)`` -> latents), for heads that
            compare in latent space; None outside a world model.
    """

    previous_frames: np.ndarray | None = None
    goal_images: np.ndarray | None = None
    task: list[str] | None = None
    encode: Callable[[np.ndarray], torch.Tensor] | None = None


@dataclass
class RewardOutput:
    """Per-frame scores of a ``(B, T)`` batch of frames.

    Attributes:
        reward: ``(B, T)`` float32.
        success: ``(B, T)`` bool.
        info: the head's own fields, arrays of shape ``(B, T)`` (e.g. ``coverage``) or ``(B,)``.
    """

    reward: np.ndarray
    success: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)


class RewardHead(ABC):
    """Scores imagined frames. Subclasses set ``name`` and implement :meth:`__call__`."""

    name: str = "reward_head"

    @abstractmethod
    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        """Score ``frames`` of shape ``(B, T, H, W, 3)`` uint8."""

    def to(self, device: str | torch.device) -> "RewardHead":
        """Move any weights to ``device`` (no-op for heads without weights)."""
        return self


class ZeroReward(RewardHead):
    """Reward 0 and never success: the head of an untrained model, or of an env you score elsewhere."""

    name = "zero"

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        b, t = frames.shape[:2]
        return RewardOutput(reward=np.zeros((b, t), np.float32), success=np.zeros((b, t), bool))


RewardFactory = Callable[..., RewardHead]
REWARD_HEADS: dict[str, RewardFactory] = {}
#: Packages offer heads under this entry-point group (``name = "module:factory"``), loaded on first use.
ENTRY_POINT_GROUP = "world_gym.reward_models"


def _load_entry_point(name: str) -> RewardFactory | None:
    """The factory another package declares as ``name`` in :data:`ENTRY_POINT_GROUP`, if any."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def register_reward_head(name: str, factory: RewardFactory) -> None:
    """Make ``gym.make(id, reward_model=name)`` build ``factory(**reward_model_kwargs)``."""
    REWARD_HEADS[name] = factory


def make_reward_head(spec: str | RewardHead | None, default: str = "zero", **kwargs: Any) -> RewardHead:
    """A reward head from a registered name, an instance (returned as is), or None (``default``)."""
    if isinstance(spec, RewardHead):
        if kwargs:
            raise ValueError("reward_model_kwargs apply to a named reward head, not to an instance")
        return spec
    name = default if spec is None else spec
    if not isinstance(name, str):
        raise TypeError(f"reward_model must be a name or a RewardHead, got {type(spec).__name__}")
    if name not in REWARD_HEADS:
        factory = _load_entry_point(name)
        if factory is None:
            raise ValueError(f"unknown reward head {name!r}; registered: {sorted(REWARD_HEADS)} "
                             f"(and none named so in the {ENTRY_POINT_GROUP!r} entry-point group)")
        register_reward_head(name, factory)
    return REWARD_HEADS[name](**kwargs)


register_reward_head("zero", ZeroReward)
