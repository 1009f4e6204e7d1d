"""Reward heads: turn imagined frames into reward and success (``world_gym.reward_models``).

Registered names (``gym.make(id, reward_model=name, reward_model_kwargs={...})``):

========================  ===========================================================
``zero``                  reward 0, never success
``goal_mse``              pixel MSE to the goal image (:class:`GoalPixelMSEReward`)
``goal_latent_mse``       latent MSE through the world model's codec (:class:`GoalLatentMSEReward`)
``vlm``                   a vision-language model judges the task text (:class:`VLMReward`)
``resnet_iou``            Push-T coverage from pixels, gym-pusht's reward
                          (:class:`~world_gym.reward_models.resnet_iou.ResNetIoUReward`)
========================  ===========================================================

The first four are generic and registered here. ``resnet_iou`` is task-level (Push-T): this
package declares it as an entry point of the ``world_gym.reward_models`` group, and the Push-T
family (:mod:`world_gym.envs.pusht.family`) registers it when imported. Third-party heads: call
:func:`register_reward_head`, or declare an entry point in that group, which
:func:`make_reward_head` loads on first use of its name.
"""

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

register_reward_head("goal_mse", GoalPixelMSEReward)
register_reward_head("goal_latent_mse", GoalLatentMSEReward)
register_reward_head("vlm", VLMReward)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REWARD_HEADS",
    "GoalLatentMSEReward",
    "GoalPixelMSEReward",
    "RewardContext",
    "RewardHead",
    "RewardOutput",
    "VLMError",
    "VLMReward",
    "ZeroReward",
    "make_reward_head",
    "register_reward_head",
]
