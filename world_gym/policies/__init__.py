"""Policies: the protocol, adapters and small reference policies (``world_gym.policies``)."""

from __future__ import annotations

from typing import Any

from world_gym.policies.base import Policy, PolicySpec, RandomPolicy

__all__ = ["ActionReplayPolicy", "CNNBCPolicy", "LeRobotPolicy", "PixelPushTExpert", "Policy", "PolicySpec",
           "PushTExpert", "PushTPlay", "RandomPolicy", "SB3Policy"]

_LAZY = {
    "PushTExpert": "world_gym.policies.pusht_expert",
    "PushTPlay": "world_gym.policies.pusht_expert",
    "PixelPushTExpert": "world_gym.policies.pusht_pixel_expert",
    "CNNBCPolicy": "world_gym.policies.cnn_bc",
    "LeRobotPolicy": "world_gym.policies.lerobot_policy",
    "SB3Policy": "world_gym.policies.sb3_policy",
    "ActionReplayPolicy": "world_gym.policies.replay",
}


def __getattr__(name: str) -> Any:
    # Optional dependencies (gym-pusht, lerobot, stable-baselines3) are imported only when asked.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
