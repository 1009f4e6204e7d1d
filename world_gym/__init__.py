"""world-gym: trained robot world models as ordinary Gymnasium environments.

``import world_gym`` registers the env ids with Gymnasium; the classes below (and torch) are
imported the first time they are used, so importing the package and running ``world-gym --help``
stay fast.

>>> import gymnasium as gym
>>> import world_gym
>>> env = gym.make("IRASim-PushT-v0")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from world_gym.env_catalog import register_ids as _register_ids

if TYPE_CHECKING:
    from world_gym.action_spec import ActionSpec
    from world_gym.env import WorldModelEnv
    from world_gym.registration import EnvFamily, register_family
    from world_gym.vector_env import WorldModelVectorEnv
    from world_gym.world_model import WorldModel, WorldModelConfig
    from world_gym.wrappers import ChunkedAction

__version__ = "0.3.0"

_EXPORTS: dict[str, str] = {
    "ActionSpec": "world_gym.action_spec",
    "ChunkedAction": "world_gym.wrappers",
    "EnvFamily": "world_gym.registration",
    "WorldModel": "world_gym.world_model",
    "WorldModelConfig": "world_gym.world_model",
    "WorldModelEnv": "world_gym.env",
    "WorldModelVectorEnv": "world_gym.vector_env",
    "register_family": "world_gym.registration",
}

__all__ = sorted(_EXPORTS)

_register_ids()


def __getattr__(name: str) -> Any:
    """Import a public class (or the ``envs`` subpackage) on first access."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name == "envs":
        return importlib.import_module("world_gym.envs")
    raise AttributeError(f"module 'world_gym' has no attribute {name!r}")
