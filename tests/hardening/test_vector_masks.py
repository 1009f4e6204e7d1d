"""Vector env: partial-reset masks, per-sub-env action errors, autoreset and close."""

from __future__ import annotations

import numpy as np
import pytest

from world_gym.reward_models import RewardHead, RewardOutput
from world_gym.vector_env import WorldModelVectorEnv


class SuccessAtFirstFrame(RewardHead):
    name = "test_success_first"

    def __call__(self, frames, context):
        b, t = frames.shape[:2]
        return RewardOutput(np.ones((b, t), np.float32), np.ones((b, t), bool))


def make(micro_model, micro_frames, n: int = 3, **kw) -> WorldModelVectorEnv:
    return WorldModelVectorEnv(num_envs=n, model=micro_model, initial_states=micro_frames, device="cpu",
                               chunk_size=2, **kw)


def actions(n: int = 3) -> np.ndarray:
    return np.full((n, 2, 2), 256.0, np.float32)


def test_all_false_mask_is_a_no_op(micro_model, micro_frames) -> None:
    venv = make(micro_model, micro_frames)
    venv.reset(seed=0)
    obs, _, _, _, _ = venv.step(actions())
    elapsed = venv._episodes.elapsed.copy()
    again, info = venv.reset(options={"reset_mask": np.zeros(3, bool)})
    np.testing.assert_array_equal(again, obs)
    assert info == {} and (venv._episodes.elapsed == elapsed).all()
    venv.step(actions())  # the episodes go on
    assert (venv._episodes.elapsed == elapsed + 2).all()


def test_partial_mask_resets_only_the_masked(micro_model, micro_frames) -> None:
    venv = make(micro_model, micro_frames)
    venv.reset(seed=0)
    venv.step(actions())
    _, info = venv.reset(options={"reset_mask": np.array([False, True, False])})
    assert venv._episodes.elapsed.tolist() == [2, 0, 2] and info["_is_success"].tolist() == [False, True, False]


@pytest.mark.parametrize("mask", [np.zeros(2, bool), np.zeros(3, int), [True, False, True]])
def test_bad_masks(micro_model, micro_frames, mask) -> None:
    with pytest.raises(ValueError, match="reset_mask"):
        make(micro_model, micro_frames).reset(options={"reset_mask": mask})


@pytest.mark.parametrize("value, match", [(np.nan, "of sub-env 1 must be finite"),
                                          (-4.0, "of sub-env 1 must lie within")])
def test_a_bad_action_names_its_sub_env(micro_model, micro_frames, value, match) -> None:
    venv = make(micro_model, micro_frames)
    venv.reset(seed=0)
    batch = actions()
    batch[1, 1, 0] = value
    with pytest.raises(ValueError, match=match) as err:
        venv.step(batch)
    assert "sub-envs at fault" not in str(err.value)  # one sub-env at fault: only its action is shown
    batch[2, 0, 1] = value
    with pytest.raises(ValueError, match=r"sub-envs at fault: \[1, 2\]"):
        venv.step(batch)


def test_autoreset_is_unaffected(micro_model, micro_frames) -> None:
    venv = make(micro_model, micro_frames, reward_model=SuccessAtFirstFrame())
    venv.reset(seed=0)
    _, _, terminated, _, _ = venv.step(actions())
    assert terminated.all()
    _, rewards, terminated, _, info = venv.step(actions())  # NEXT_STEP: this step resets every sub-env
    assert (rewards == 0).all() and not terminated.any() and venv._episodes.elapsed.tolist() == [0, 0, 0]
    assert venv.step(actions())[2].all()


def test_step_and_reset_after_close(micro_model, micro_frames) -> None:
    venv = make(micro_model, micro_frames)
    venv.reset(seed=0)
    venv.close()
    with pytest.raises(RuntimeError, match="after close"):
        venv.step(actions())
    with pytest.raises(RuntimeError, match="after close"):
        venv.reset()


@pytest.mark.parametrize("episode", [[1, 2.5, 3], [True, 1, 2], None])
def test_batched_episode_options_are_integers(micro_model, micro_frames, episode) -> None:
    with pytest.raises(TypeError, match="episode"):
        make(micro_model, micro_frames).reset(options={"episode": episode})
