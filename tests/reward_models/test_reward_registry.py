"""The reward-head registry: built-in names, third-party registration, entry points."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

import world_gym.reward_models as rm
from world_gym.reward_models import RewardContext, RewardHead, RewardOutput, make_reward_head, register_reward_head


class Constant(RewardHead):
    name = "constant"

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        b, t = frames.shape[:2]
        return RewardOutput(np.full((b, t), self.value, np.float32), np.ones((b, t), bool))


def test_builtin_names() -> None:
    assert {"zero", "goal_mse", "goal_latent_mse", "vlm", "resnet_iou"} <= set(rm.REWARD_HEADS)


def test_register_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rm.REWARD_HEADS, "constant", Constant)
    head = make_reward_head("constant", value=0.5)
    assert head(np.zeros((2, 1, 4, 4, 3), np.uint8), RewardContext()).reward.tolist() == [[0.5], [0.5]]


def test_entry_point_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = importlib.metadata.EntryPoint("my_head", f"{__name__}:Constant", rm.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [ep] if group == rm.ENTRY_POINT_GROUP else [])
    monkeypatch.delitem(rm.REWARD_HEADS, "my_head", raising=False)
    assert isinstance(make_reward_head("my_head", value=2.0), Constant)
    assert "my_head" in rm.REWARD_HEADS
    monkeypatch.delitem(rm.REWARD_HEADS, "my_head")
    with pytest.raises(ValueError, match="entry-point group"):
        make_reward_head("nobody_has_this")
