"""Registered environment families, one module each (``world_gym.envs``)."""

from world_gym.envs import bridge, languagetable, pusht, rt1

__all__ = ["bridge", "languagetable", "pusht", "rt1"]
