import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import world_gym  # noqa: F401
from test_env import SucceedAtFrame
from world_gym.env import WorldModelEnv
from world_gym.vector_env import WorldModelVectorEnv


def _venv(micro_model, micro_frames, n=4, **kw):
    return WorldModelVectorEnv(num_envs=n, model=micro_model, initial_states=micro_frames, device="cpu", **kw)


def test_make_vec_eight_envs_with_partial_reset():
    venv = gym.make_vec("IRASim-PushT-v0", num_envs=8, vectorization_mode="vector_entry_point", chunk_size=2,
                        num_inference_steps=1, device="cpu")
    assert isinstance(venv.unwrapped, WorldModelVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = venv.reset(seed=0)
    assert obs.shape == (8, 96, 96, 3) and venv.action_space.shape == (8, 2, 2)
    obs2, rewards, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert info["frames"].shape == (8, 2, 96, 96, 3) and rewards.shape == (8,)
    mask = np.zeros(8, bool)
    mask[[1, 5]] = True
    obs3, info = venv.reset(options={"reset_mask": mask})
    assert info["_episode"].tolist() == mask.tolist()
    np.testing.assert_array_equal(obs3[~mask], obs2[~mask])


def test_vector_matches_single_env_for_the_same_seed(micro_model, micro_frames):
    venv = _venv(micro_model, micro_frames, n=3, chunk_size=2)
    venv.reset(seed=[10, 11, 12])
    actions = np.random.default_rng(0).uniform(0, 512, (3, 2, 2)).astype(np.float32)
    _, _, _, _, vinfo = venv.step(actions)
    single = WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2)
    single.reset(seed=11)
    _, _, _, _, info = single.step(actions[1])
    diff = np.abs(vinfo["frames"][1].astype(int) - info["frames"].astype(int))
    assert diff.max() <= 2, "batching may change float rounding, not the frames"


def test_next_step_autoreset_and_success(micro_model, micro_frames):
    venv = _venv(micro_model, micro_frames, n=2, chunk_size=3, reward_model=SucceedAtFrame(at=0))
    venv.reset(seed=0)
    _, rewards, terminated, _, info = venv.step(np.full((2, 3, 2), 256.0))
    assert terminated.all() and info["num_frames"].tolist() == [1, 1] and rewards.tolist() == [1.0, 1.0]
    obs, rewards, terminated, truncated, info = venv.step(np.full((2, 3, 2), 256.0))
    assert rewards.tolist() == [0.0, 0.0] and not terminated.any() and "episode" in info  # reset step
    _, rewards, terminated, _, _ = venv.step(np.full((2, 3, 2), 256.0))
    assert terminated.all()


def test_max_episode_steps_from_make_vec_counts_chunks(micro_model, micro_frames):
    venv = _venv(micro_model, micro_frames, n=2, chunk_size=2, max_episode_steps=2)
    venv.reset(seed=0)
    venv.step(np.full((2, 2, 2), 256.0))
    _, _, _, truncated, info = venv.step(np.full((2, 2, 2), 256.0))
    assert truncated.all() and info["episode_frames"].tolist() == [4, 4]


def test_batched_reset_options_and_errors(micro_model, micro_frames):
    venv = _venv(micro_model, micro_frames, n=2)
    frames = np.stack([np.full((32, 32, 3), 1, np.uint8), np.full((32, 32, 3), 2, np.uint8)])
    obs, _ = venv.reset(options={"initial_frame": frames})
    np.testing.assert_array_equal(obs, frames)
    obs, info = venv.reset(options={"episode": np.array([3, 5])})
    assert info["episode"].tolist() == [3, 5]
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 4, 2), np.float32))
