import gymnasium as gym
import numpy as np
import pytest

import world_gym  # noqa: F401
from world_gym.wrappers import ChunkedAction


def _pusht():
    import gym_pusht  # noqa: F401

    return gym.make("gym_pusht/PushT-v0", obs_type="pixels")


def test_chunked_pusht_steps_every_action():
    env = ChunkedAction(_pusht(), chunk_size=4)
    assert env.action_space.shape == (4, 2)
    obs, _ = env.reset(seed=0)
    chunk = np.array([[100, 100], [120, 110], [140, 120], [160, 130]], np.float32)
    obs, reward, terminated, truncated, info = env.step(chunk)
    assert info["frames"].shape == (4, 96, 96, 3) and info["rewards"].shape == (4,)
    np.testing.assert_array_equal(obs, info["frames"][-1])
    assert reward == pytest.approx(info["rewards"].sum()) and "is_success" in info

    reference = _pusht()
    reference.reset(seed=0)
    for a in chunk:
        ref_obs, *_ = reference.step(a)
    np.testing.assert_array_equal(obs, ref_obs)


def test_chunk_stops_at_truncation():
    env = ChunkedAction(gym.make("gym_pusht/PushT-v0", obs_type="pixels", max_episode_steps=6), chunk_size=4)
    env.reset(seed=0)
    env.step(np.full((4, 2), 256.0, np.float32))
    obs, _, terminated, truncated, info = env.step(np.full((4, 2), 256.0, np.float32))
    assert truncated and info["frames"].shape[0] == 2


def test_same_policy_runs_in_learned_and_real_simulator():
    """One action-chunk policy, unchanged, drives the world model and gym-pusht."""
    learned = gym.make("IRASim-PushT-v0", chunk_size=3, num_inference_steps=1, device="cpu")
    real = ChunkedAction(_pusht(), chunk_size=3)
    assert learned.action_space == real.action_space
    assert learned.observation_space == real.observation_space
    rng = np.random.default_rng(0)
    for env in (learned, real):
        obs, _ = env.reset(seed=0)
        for _ in range(2):
            obs, _, _, _, info = env.step(rng.uniform(0, 512, (3, 2)).astype(np.float32))
            assert obs.shape == (96, 96, 3) and obs.dtype == np.uint8 and info["frames"].shape == (3, 96, 96, 3)


def test_rejects_wrong_shapes_and_spaces():
    env = ChunkedAction(_pusht(), chunk_size=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="Box"):
        ChunkedAction(gym.make("CartPole-v1"), chunk_size=2)
