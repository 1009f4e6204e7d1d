"""Goal-image heads: pixel and latent MSE to the goal given at reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world_gym.reward_models import GoalLatentMSEReward, GoalPixelMSEReward, RewardContext, make_reward_head


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    goals = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    frames = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    frames[0, 1] = goals[0]
    frames[1, 2] = np.clip(goals[1].astype(int) + 10, 0, 255)
    return frames, goals


def test_pixel_mse_values_and_success() -> None:
    frames, goals = batch()
    out = make_reward_head("goal_mse", success_threshold=0.01)(frames, RewardContext(goal_images=goals))
    expected = ((frames / 255.0 - goals[:, None] / 255.0) ** 2).mean(axis=(2, 3, 4))
    np.testing.assert_allclose(out.info["goal_mse"], expected, rtol=1e-5)
    np.testing.assert_allclose(out.reward, -expected, rtol=1e-5)
    assert out.reward.dtype == np.float32 and out.reward.shape == (2, 3)
    assert out.success.tolist() == [[False, True, False], [False, False, True]]
    assert out.reward[0, 1] == 0.0 and out.reward.argmax(1).tolist() == [1, 2]


def test_exp_reward_in_unit_interval() -> None:
    frames, goals = batch()
    out = GoalPixelMSEReward(reward="exp", scale=0.05)(frames, RewardContext(goal_images=goals))
    assert out.reward[0, 1] == pytest.approx(1.0) and ((out.reward > 0) & (out.reward <= 1)).all()


def test_single_goal_broadcasts() -> None:
    frames, goals = batch()
    out = GoalPixelMSEReward()(frames, RewardContext(goal_images=goals[0]))
    assert out.success[0, 1] and out.reward.shape == (2, 3)


@pytest.mark.parametrize("goal", [None, np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 16, 16, 3), np.float32),
                                  np.zeros((3, 16, 16, 3), np.uint8)])
def test_bad_goal_is_a_clear_error(goal: np.ndarray | None) -> None:
    frames, _ = batch()
    with pytest.raises(ValueError, match="goal"):
        GoalPixelMSEReward()(frames, RewardContext(goal_images=goal))


def test_latent_mse_uses_the_codec_and_caches_the_goal() -> None:
    frames, goals = batch()
    calls = []

    def encode(x: np.ndarray) -> torch.Tensor:
        calls.append(len(x))
        return torch.from_numpy(x).float().permute(0, 3, 1, 2)[:, :, ::4, ::4] / 255.0  # a stand-in "codec"

    head = make_reward_head("goal_latent_mse", success_threshold=1e-6)
    out = head(frames, RewardContext(goal_images=goals, encode=encode))
    z, zg = encode(frames.reshape(-1, 16, 16, 3)).reshape(2, 3, 3, 4, 4), encode(goals)
    np.testing.assert_allclose(out.info["goal_mse"], ((z - zg[:, None]) ** 2).mean((2, 3, 4)).numpy(), rtol=1e-5)
    assert out.success[0, 1] and not out.success[0, 0]
    calls.clear()
    head(frames, RewardContext(goal_images=goals, encode=encode))
    assert calls == [6]  # goal latents came from the cache


def test_latent_mse_needs_a_codec() -> None:
    frames, goals = batch()
    with pytest.raises(ValueError, match="encode"):
        GoalLatentMSEReward()(frames, RewardContext(goal_images=goals))
