"""Every numeric setting and the model argument are checked at ``gym.make``, before any step."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import world_gym  # noqa: F401  (registers the ids)
from world_gym.assets import bundled_model_path
from world_gym.env import WorldModelEnv

ENV_ID = "IRASim-PushT-v0"


@pytest.mark.parametrize("kwargs, match", [
    ({"chunk_size": 0}, "chunk_size must be >= 1"),
    ({"chunk_size": -2}, "chunk_size must be >= 1"),
    ({"chunk_size": 1.5}, "chunk_size must be an integer"),
    ({"chunk_size": True}, "chunk_size must be an integer"),
    ({"chunk_size": "4"}, "chunk_size must be an integer"),
    ({"num_inference_steps": 0}, "num_inference_steps must be >= 1"),
    ({"num_inference_steps": -3}, "num_inference_steps must be >= 1"),
    ({"num_inference_steps": 2.5}, "num_inference_steps must be an integer"),
    ({"max_episode_frames": 0}, "max_episode_frames must be >= 1"),
    ({"max_episode_frames": -5}, "max_episode_frames must be >= 1"),
    ({"sampler": "euler"}, "unknown sampler 'euler'.*ddim"),
    ({"sampler": 3}, "unknown sampler"),
    ({"chunk_size": 1000}, "chunk_size=1000 exceeds max_episode_frames=300"),
    ({"chunk_size": 8, "max_episode_frames": 4}, "chunk_size=8 exceeds max_episode_frames=4"),
])
def test_bad_settings_fail_at_make(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, model="tiny-pusht", reward_model="zero", device="cpu", **kwargs)


def test_cheap_checks_come_before_loading_the_model() -> None:
    with pytest.raises(ValueError, match="num_inference_steps"):
        gym.make(ENV_ID, model="/nonexistent", num_inference_steps=0, device="cpu")


def test_a_sampler_the_model_cannot_use_fails_at_make_listing_those_it_can() -> None:
    with pytest.raises(ValueError, match=r"'pndm' cannot sample this model \(prediction_type='sample'.*"
                                         r"Samplers this model supports: \[") as err:
        gym.make(ENV_ID, sampler="pndm", reward_model="zero", device="cpu")  # the default model predicts x0
    listed = str(err.value).rsplit("supports: ", 1)[1]
    assert "'ddim'" in listed and "'pndm'" not in listed


@pytest.mark.parametrize("sampler", ["pndm", "dpm_solver", "unipc"])
def test_compatible_samplers_run(sampler: str) -> None:
    env = gym.make(ENV_ID, model="tiny-pusht", sampler=sampler, num_inference_steps=2, reward_model="zero",
                   device="cpu")
    env.reset(seed=0)
    obs = env.step(env.action_space.sample())[0]
    assert obs.shape == (96, 96, 3)


def test_vector_settings_fail_at_make() -> None:
    for kwargs, match in (({"chunk_size": 0}, "chunk_size"), ({"max_episode_steps": 0}, "max_episode_steps"),
                          ({"num_inference_steps": -1}, "num_inference_steps")):
        with pytest.raises(ValueError, match=match):
            gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", model="tiny-pusht",
                         reward_model="zero", device="cpu", **kwargs)
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec(ENV_ID, num_envs=0, vectorization_mode="vector_entry_point", model="tiny-pusht",
                     reward_model="zero", device="cpu")


# --- one argument names the model: shipped name, directory or Hub id ---------------------------------

@pytest.mark.parametrize("name", ["tiny-pusht", "pusht-pose-state"])
def test_model_takes_a_shipped_name(name: str) -> None:
    env = gym.make(ENV_ID, model=name, reward_model="zero", device="cpu")
    assert env.unwrapped.model.config.to_dict() == WorldModelEnv(
        model=str(bundled_model_path(name)), family="pusht", reward_model="zero", device="cpu"
    ).model.config.to_dict()


def test_model_takes_a_directory_as_str_or_path() -> None:
    path = bundled_model_path("tiny-pusht")
    for model in (str(path), Path(path)):
        env = gym.make(ENV_ID, model=model, reward_model="zero", device="cpu", chunk_size=2)
        env.reset(seed=0)
        assert env.step(np.full((2, 2), 256.0, np.float32))[4]["frames"].shape == (2, 96, 96, 3)


def test_model_name_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="model_name= is deprecated"):
        env = gym.make(ENV_ID, model_name="tiny-pusht", reward_model="zero", device="cpu")
    assert env.unwrapped.model.config.metadata.get("trained") is False  # tiny-pusht's card
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        gym.make(ENV_ID, model="tiny-pusht", model_name="tiny-pusht", reward_model="zero", device="cpu")


def test_missing_paths_are_not_looked_up_on_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("looked up on the Hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    for missing in ("/nonexistent", "./nope", "../nope/model", "~/nope", "a/b/c", "no-such-shipped-model"):
        with pytest.raises(FileNotFoundError, match="no such directory"):
            gym.make(ENV_ID, model=missing, reward_model="zero", device="cpu")
    with pytest.raises(AssertionError, match="Hub"):  # an 'org/name' id does go to the Hub
        gym.make(ENV_ID, model="some-org/some-model", reward_model="zero", device="cpu")


def test_model_of_another_type() -> None:
    with pytest.raises(TypeError, match="model must be"):
        gym.make(ENV_ID, model=3, reward_model="zero", device="cpu")
