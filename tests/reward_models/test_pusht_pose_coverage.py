"""The pose-token reward head: gym-pusht's reward and success read off the imagined pose tokens."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from world_gym.reward_models import RewardContext, make_reward_head
from world_gym.reward_models.pusht_latent_coverage import PushTPoseCoverage, tee_coverage


def _tokens(poses: np.ndarray, scale: float) -> torch.Tensor:
    """Block poses ``(B, T, 3)`` -> pose tokens ``(B, T, 6, 1, 1)`` (agent at the centre)."""
    x, y, a = poses[..., 0] / 256 - 1, poses[..., 1] / 256 - 1, poses[..., 2]
    zeros = np.zeros_like(x)
    tokens = np.stack([zeros, zeros, x, y, np.cos(a), np.sin(a)], -1) * scale
    return torch.as_tensor(tokens, dtype=torch.float32)[..., None, None]


def test_reward_and_success_follow_gym_pusht_coverage():
    head = make_reward_head("pusht_pose_coverage")
    assert isinstance(head, PushTPoseCoverage)
    poses = np.array([[[256.0, 256.0, np.pi / 4], [266.0, 256.0, np.pi / 4], [100.0, 100.0, 0.0]]])
    frames = np.zeros((1, 3, 96, 96, 3), np.uint8)
    out = head(frames, RewardContext(latents=_tokens(poses, 2.0), codec=SimpleNamespace(token_scale=2.0)))
    expected = tee_coverage(poses)
    np.testing.assert_allclose(out.info["coverage"], expected, atol=1e-5)
    assert out.success.tolist() == [[True, False, False]] and out.reward[0, 0] == 1.0
    np.testing.assert_allclose(out.reward[0, 1], expected[0, 1] / 0.95, atol=1e-5)


def test_refuses_frames_without_pose_tokens():
    head = PushTPoseCoverage()
    frames = np.zeros((1, 2, 96, 96, 3), np.uint8)
    with pytest.raises(ValueError, match="world model only"):
        head(frames, RewardContext())
    with pytest.raises(ValueError, match="pose tokens"):
        head(frames, RewardContext(latents=torch.zeros(1, 2, 4, 12, 12)))
    with pytest.raises(ValueError, match="success_threshold"):
        PushTPoseCoverage(success_threshold=0.0)


def test_pose_state_env_scores_a_start_near_the_goal():
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    real = make_pusht_env()
    real.reset(seed=0, options={"reset_to_state": [100.0, 100.0, 262.0, 250.0, np.pi / 4]})
    frame, _, _, _, info = real.step(np.array([100.0, 100.0]))
    env = gym.make("PoseState-PushT-v0", chunk_size=4, reward_model="pusht_pose_coverage", device="cpu")
    env.reset(seed=0, options={"initial_frame": frame})
    # the agent holds still far from the block: the block stays, and so does its coverage
    _, reward, _, _, step_info = env.step(np.full((4, 2), 100.0, np.float32))
    assert 0.1 < info["coverage"] < 0.95
    np.testing.assert_allclose(step_info["coverage"], info["coverage"], atol=0.05)
    assert reward > 0
