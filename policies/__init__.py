"""Policies: the protocol, adapters and small reference policies (``world_gym.policies``)."""

from world_gym.policies.base import Policy, RandomPolicy

__all__ = ["Policy", "RandomPolicy"]
