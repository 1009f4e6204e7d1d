"""The install layout of DESIGN.md: envs/, reward_models/, policies/ live under world_gym only."""

import importlib
import importlib.util
import json
import sys

import gymnasium as gym

import world_gym


def test_namespaced_subpackages_import():
    for name in ("world_gym.envs", "world_gym.reward_models", "world_gym.policies", "world_gym.envs.pusht"):
        assert importlib.import_module(name).__name__ == name


def test_no_generic_top_level_names_are_installed():
    for generic in ("envs", "policies", "reward_models"):
        spec = importlib.util.find_spec(generic)
        assert spec is None or "site-packages" not in str(spec.origin), generic


def test_registered_ids_and_entry_points():
    spec = gym.spec("IRASim-PushT-v0")
    assert spec.entry_point == "world_gym.env:WorldModelEnv"
    assert spec.vector_entry_point == "world_gym.vector_env:WorldModelVectorEnv"
    assert world_gym.__version__


def test_bundled_tiny_model_is_small_and_safetensors():
    from world_gym.assets import bundled_model_path

    path = bundled_model_path("tiny-pusht")
    config = json.loads((path / "config.json").read_text())
    assert config["frame_size"] == [96, 96] and config["action"]["high"] == [512.0, 512.0]
    assert (path / "model.safetensors").stat().st_size < 20 * 2**20
    assert not list(path.glob("*.pt")) and not list(path.glob("*.bin"))
    assert "world_gym" in sys.modules
