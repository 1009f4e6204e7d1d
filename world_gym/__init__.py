"""world-gym: trained robot world models as ordinary Gymnasium environments.

>>> import gymnasium as gym
>>> import world_gym
>>> env = gym.make("IRASim-PushT-v0")
"""

from world_gym.action_spec import ActionSpec
from world_gym.env import WorldModelEnv
from world_gym.registration import EnvFamily, register_family
from world_gym.vector_env import WorldModelVectorEnv
from world_gym.world_model import WorldModel, WorldModelConfig
from world_gym.wrappers import ChunkedAction

from world_gym import envs  # noqa: E402,F401  (registers the env ids)

__version__ = "0.1.0"

__all__ = [
    "ActionSpec",
    "ChunkedAction",
    "EnvFamily",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelEnv",
    "WorldModelVectorEnv",
    "register_family",
]
