"""Reward heads: turn imagined frames into reward and success (``world_gym.reward_models``).

Registered names (``gym.make(id, reward_model=name, reward_model_kwargs={...})``):

========================  ===========================================================
``zero``                  reward 0, never success
``goal_mse``              pixel MSE to the goal image (:class:`GoalPixelMSEReward`)
``goal_latent_mse``       latent MSE through the world model's codec (:class:`GoalLatentMSEReward`)
``vlm``                   a vision-language model judges the task text (:class:`VLMReward`)
``resnet_iou``            Push-T coverage from pixels, gym-pusht's reward (:class:`ResNetIoUReward`)
========================  ===========================================================

Third-party heads: call :func:`register_reward_head`, or declare an entry point in the
``world_gym.reward_models`` group, which :func:`make_reward_head` loads on first use of its name.
"""

from typing import Any

from world_gym.reward_models.base import (
    ENTRY_POINT_GROUP,
    REWARD_HEADS,
    RewardContext,
    RewardHead,
    RewardOutput,
    ZeroReward,
    make_reward_head,
    register_reward_head,
)
from world_gym.reward_models.goal_image import GoalLatentMSEReward, GoalPixelMSEReward
from world_gym.reward_models.vlm import VLMError, VLMReward


def _resnet_iou(**kwargs: Any) -> RewardHead:
    # Imported on use: torchvision is slow to import and only this head needs it.
    from world_gym.reward_models.resnet_iou import ResNetIoUReward

    return ResNetIoUReward(**kwargs)


register_reward_head("goal_mse", GoalPixelMSEReward)
register_reward_head("goal_latent_mse", GoalLatentMSEReward)
register_reward_head("vlm", VLMReward)
register_reward_head("resnet_iou", _resnet_iou)


def __getattr__(name: str) -> Any:
    if name == "ResNetIoUReward":
        from world_gym.reward_models.resnet_iou import ResNetIoUReward

        return ResNetIoUReward
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENTRY_POINT_GROUP",
    "REWARD_HEADS",
    "GoalLatentMSEReward",
    "GoalPixelMSEReward",
    "ResNetIoUReward",
    "RewardContext",
    "RewardHead",
    "RewardOutput",
    "VLMError",
    "VLMReward",
    "ZeroReward",
    "make_reward_head",
    "register_reward_head",
]
