"""The reward-head protocol: frames (plus the env's context) in, per-frame reward and success out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from world_gym.registry import Registry


@dataclass
class RewardContext:
    """What an env knows beside the frames, for ``B`` envs.

    Attributes:
        previous_frames: ``(B, H, W, 3)`` uint8, the frame before the scored ones.
        goal_images: ``(B, H, W, 3)`` uint8 goal images given at reset, or None.
        task: one instruction text per env, or None.
        encode: the world model's codec encoder (uint8 ``(N, H, W, 3)`` -> latents), for heads that
            compare in latent space; None outside a world model.
        latents: ``(B, T, ...)`` the imagined latents the scored frames were decoded from, for heads
            that read the state off them instead of the pixels; None outside a world model.
        codec: the world model's codec (its settings, e.g. a pose codec's ``token_scale``); None
            outside a world model.
    """

    previous_frames: np.ndarray | None = None
    goal_images: np.ndarray | None = None
    task: list[str] | None = None
    encode: Callable[[np.ndarray], torch.Tensor] | None = None
    latents: torch.Tensor | None = None
    codec: Any = None


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

    def close(self) -> None:
        """Release connections or other resources (no-op for heads without any); the envs call it on ``close``."""


class ZeroReward(RewardHead):
    """Reward 0 and never success: the head of an untrained model, or of an env you score elsewhere."""

    name = "zero"

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        b, t = frames.shape[:2]
        return RewardOutput(reward=np.zeros((b, t), np.float32), success=np.zeros((b, t), bool))


RewardFactory = Callable[..., RewardHead]
#: Packages offer heads under this entry-point group (``name = "module:factory"``), loaded on first use.
ENTRY_POINT_GROUP = "world_gym.reward_models"
#: Every reward head by name: registered ones and the entry points of :data:`ENTRY_POINT_GROUP`.
REWARD_HEADS: Registry[RewardFactory] = Registry("reward head", ENTRY_POINT_GROUP)


def register_reward_head(name: str, factory: RewardFactory) -> None:
    """Make ``gym.make(id, reward_model=name)`` build ``factory(**reward_model_kwargs)``."""
    REWARD_HEADS.register(name, factory)


def make_reward_head(spec: str | RewardHead | None, default: str = "zero", **kwargs: Any) -> RewardHead:
    """A reward head from a registered name, an instance (returned as is), or None (``default``).

    Raises:
        ValueError: an unknown name (the message lists the known ones and the entry-point group),
            or ``kwargs`` with an instance.
        TypeError: ``spec`` is neither a name nor a :class:`RewardHead`.
    """
    if isinstance(spec, RewardHead):
        if kwargs:
            raise ValueError("reward_model_kwargs apply to a named reward head, not to an instance")
        return spec
    name = default if spec is None else spec
    if not isinstance(name, str):
        raise TypeError(f"reward_model must be a name or a RewardHead, got {type(spec).__name__}")
    return REWARD_HEADS.get(name)(**kwargs)


register_reward_head("zero", ZeroReward)
