"""Registered environment families, one module each (``world_gym.envs``)."""

from world_gym.envs import pusht

__all__ = ["pusht"]
