"""Policies: the protocol, adapters and small reference policies (``world_gym.policies``)."""

from __future__ import annotations

from typing import Any

from world_gym.policies.base import Policy, RandomPolicy

__all__ = ["Policy", "PushTExpert", "PushTPlay", "RandomPolicy"]

_LAZY = {"PushTExpert": "world_gym.policies.pusht_expert", "PushTPlay": "world_gym.policies.pusht_expert"}


def __getattr__(name: str) -> Any:
    # The Push-T policies need gym-pusht (the optional "pusht" extra); import it only when asked.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
