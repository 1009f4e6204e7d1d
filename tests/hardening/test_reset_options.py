"""Bad ``reset`` options: every one gives an error naming the option, nothing is coerced."""

from __future__ import annotations

import numpy as np
import pytest

from world_gym.env import WorldModelEnv


def make(micro_model, micro_frames) -> WorldModelEnv:
    return WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2)


@pytest.mark.parametrize("episode", [3.7, 3.0, True, False, "5", None, np.float64(2), np.bool_(True), [1]])
def test_episode_must_be_an_integer(micro_model, micro_frames, episode) -> None:
    env = make(micro_model, micro_frames)
    with pytest.raises(TypeError, match=r"options\['episode'\] must be an integer"):
        env.reset(options={"episode": episode})


@pytest.mark.parametrize("episode", [2, np.int64(2), np.int32(2), np.uint8(2)])
def test_python_and_numpy_integers_select_the_episode(micro_model, micro_frames, episode) -> None:
    obs, info = make(micro_model, micro_frames).reset(options={"episode": episode})
    assert info["episode"] == 2 and isinstance(info["episode"], int)
    np.testing.assert_array_equal(obs, micro_frames.frames[2])


def test_episode_out_of_range(micro_model, micro_frames) -> None:
    with pytest.raises(IndexError):
        make(micro_model, micro_frames).reset(options={"episode": len(micro_frames)})


@pytest.mark.parametrize("options, error, match", [
    ({"initial_frame": np.zeros((32, 32, 3), np.float32)}, ValueError, r"initial_frame.*uint8"),
    ({"initial_frame": np.zeros((16, 16, 3), np.uint8)}, ValueError, r"initial_frame.*\(32, 32, 3\)"),
    ({"goal_image": np.zeros((32, 32), np.uint8)}, ValueError, "goal_image"),
    ({"initial_frame": np.zeros((32, 32, 3), np.uint8), "episode": 1}, ValueError, "not both"),
    ({"seed": 3}, ValueError, "unknown reset options"),
])
def test_bad_options(micro_model, micro_frames, options, error, match) -> None:
    with pytest.raises(error, match=match):
        make(micro_model, micro_frames).reset(options=options)


def test_no_source_needs_an_initial_frame(micro_model) -> None:
    env = WorldModelEnv(model=micro_model, device="cpu", chunk_size=2)
    with pytest.raises(ValueError, match="initial_frame"):
        env.reset()
    obs, _ = env.reset(options={"initial_frame": np.full((32, 32, 3), 7, np.uint8)})
    assert (obs == 7).all()
