"""Bad actions and out-of-order calls on the single env, in the style of Gymnasium's env checker.

The dtype rule: any real numeric dtype (float or integer of any width) is cast to float32, the
action space's dtype, so one action gives the same frames whatever its dtype; bool, complex, object
and string arrays raise ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from world_gym.env import WorldModelEnv
from world_gym.reward_models import RewardHead, RewardOutput


class SuccessAtFirstFrame(RewardHead):
    name = "test_success_first"

    def __call__(self, frames, context):
        b, t = frames.shape[:2]
        return RewardOutput(np.ones((b, t), np.float32), np.ones((b, t), bool))


def make(micro_model, micro_frames, **kw) -> WorldModelEnv:
    return WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2, **kw)


def first_frames(env: WorldModelEnv, action: object) -> np.ndarray:
    env.reset(seed=0)
    return env.step(action)[4]["frames"]


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int32, np.uint16, np.int16])
def test_real_numeric_dtypes_are_cast_to_float32(micro_model, micro_frames, dtype) -> None:
    env = make(micro_model, micro_frames)
    action = np.array([[100, 200], [300, 400]])
    expected = first_frames(env, action.astype(np.float32))
    np.testing.assert_array_equal(first_frames(env, action.astype(dtype)), expected)
    np.testing.assert_array_equal(first_frames(env, action.tolist()), expected)  # nested lists too


@pytest.mark.parametrize("action", [
    np.ones((2, 2), bool), np.ones((2, 2), np.complex64), np.array([[1, 2], [3, 4]], dtype=object),
    np.array([["1", "2"], ["3", "4"]]), [[True, False], [True, True]],
], ids=["bool", "complex", "object", "str", "list-of-bools"])
def test_non_real_dtypes_are_refused(micro_model, micro_frames, action) -> None:
    env = make(micro_model, micro_frames)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="real numeric array.*cast to float32"):
        env.step(action)


@pytest.mark.parametrize("action, match", [
    (np.full((2, 2), np.nan, np.float32), "finite"),
    (np.array([[1.0, np.inf], [1.0, 1.0]]), "finite"),
    (np.array([[1e300, 1.0], [1.0, 1.0]]), "finite"),  # float64 beyond float32's range
    (np.array([[600.0, 1.0], [1.0, 1.0]]), "lie within"),
    (np.array([[-1, 1], [1, 1]]), "lie within"),
    (np.zeros((3, 2), np.float32), "shape"),
    (np.zeros(2, np.float32), "shape"),
    (np.float32(1.0), "shape"),
])
def test_bad_values_and_shapes_are_refused(micro_model, micro_frames, action, match) -> None:
    env = make(micro_model, micro_frames)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_step_before_reset(micro_model, micro_frames) -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make(micro_model, micro_frames).step(np.zeros((2, 2), np.float32))


def test_step_after_terminated_needs_reset(micro_model, micro_frames) -> None:
    env = make(micro_model, micro_frames, reward_model=SuccessAtFirstFrame())
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[2]  # terminated
    with pytest.raises(RuntimeError, match="episode has ended.*reset"):
        env.step(env.action_space.sample())
    env.reset(seed=1)
    env.step(env.action_space.sample())  # a reset starts a new episode


def test_step_after_truncated_needs_reset(micro_model, micro_frames) -> None:
    env = make(micro_model, micro_frames, max_episode_frames=3)
    env.reset(seed=0)
    assert not env.step(env.action_space.sample())[3]
    _, _, _, truncated, info = env.step(env.action_space.sample())
    assert truncated and info["episode_frames"] == 3
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(env.action_space.sample())
    assert env.unwrapped._episodes.elapsed[0] == 3  # no frame counted past the limit


def test_step_and_reset_after_close(micro_model, micro_frames) -> None:
    env = make(micro_model, micro_frames)
    env.reset(seed=0)
    env.close()
    env.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="after close"):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="after close"):
        env.reset(seed=0)


def test_the_gymnasium_checker_still_passes(micro_model, micro_frames) -> None:
    check_env(make(micro_model, micro_frames, max_episode_frames=4))
