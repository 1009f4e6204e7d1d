"""``lerobot-eval --env.type=world_gym`` runs a LeRobot policy inside the Push-T world model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: shared helpers

pytest.importorskip("lerobot")

from world_gym.lerobot_env import GYM_ID, WorldGymEnv  # noqa: E402


def test_env_config_features_and_kwargs():
    cfg = WorldGymEnv(task="IRASim-PushT-v0", num_inference_steps=1)
    assert cfg.type == "world_gym" and cfg.gym_id == GYM_ID
    assert set(cfg.features) == {"action", "pixels", "agent_pos"}
    assert cfg.gym_kwargs["task"] == "IRASim-PushT-v0" and cfg.gym_kwargs["max_episode_steps"] == 300
    assert cfg.gym_kwargs["max_episode_frames"] == 300  # the world model's own limit agrees
    assert "agent_pos" not in WorldGymEnv(obs_type="pixels").features
    with pytest.raises(ValueError):
        WorldGymEnv(obs_type="state")


def test_seed_gives_the_ground_truth_start_and_lerobot_observations():
    env = gym.make(GYM_ID, task="IRASim-PushT-v0", num_inference_steps=1, device="cpu", max_episode_steps=2)
    obs, info = env.reset(seed=3)
    from world_gym.envs.pusht.family import load_initial_states

    assert np.array_equal(obs["pixels"], load_initial_states().get(3).frame)
    assert obs["agent_pos"].shape == (2,) and obs["agent_pos"].dtype == np.float32
    obs, reward, terminated, truncated, info = env.step(np.array([256.0, 256.0], np.float32))
    assert obs["pixels"].shape == (96, 96, 3) and "is_success" in info and "frames" not in info
    assert env.get_wrapper_attr("_max_episode_steps") == 2


def test_lerobot_eval_runs_a_saved_policy_in_the_world_model(tmp_path):
    from lerobot_policies import save_tiny_act

    policy = save_tiny_act(tmp_path / "act", with_state=True)
    out = tmp_path / "eval"
    cmd = [str(Path(sys.executable).parent / "lerobot-eval"), f"--policy.path={policy}", "--policy.device=cpu",
           "--env.type=world_gym", "--env.task=IRASim-PushT-v0", "--env.discover_packages_path=world_gym.lerobot_env",
           "--env.episode_length=2", "--env.num_inference_steps=1", "--env.device=cpu",
           "--eval.n_episodes=2", "--eval.batch_size=2", "--seed=5", f"--output_dir={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2 and info["overall"]["pc_success"] == 0.0  # zero head: no success
    assert len(info["overall"]["video_paths"]) == 2
