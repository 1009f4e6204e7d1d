"""Reward heads: turn imagined frames into reward and success (``world_gym.reward_models``)."""

from world_gym.reward_models.base import (
    REWARD_HEADS,
    RewardContext,
    RewardHead,
    RewardOutput,
    ZeroReward,
    make_reward_head,
    register_reward_head,
)

__all__ = [
    "REWARD_HEADS",
    "RewardContext",
    "RewardHead",
    "RewardOutput",
    "ZeroReward",
    "make_reward_head",
    "register_reward_head",
]
