"""Policy adapters (LeRobot, stable-baselines3), the CNN BC policy, replays and policy specs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: shared helpers

from world_gym.policies.base import Policy  # noqa: E402
from world_gym.policies.cnn_bc import CNNBCConfig, CNNBCNet, CNNBCPolicy  # noqa: E402
from world_gym.policies.replay import ActionReplayPolicy  # noqa: E402
from world_gym.policies.zoo import parse_policy_spec  # noqa: E402

FRAME = np.zeros((96, 96, 3), np.uint8)


def test_cnn_bc_round_trip(tmp_path):
    net = CNNBCNet(CNNBCConfig(channels=(8, 8, 8), hidden=16, chunk_size=4))
    net.save_pretrained(tmp_path / "bc")
    policy = CNNBCPolicy.from_pretrained(tmp_path / "bc", chunk_size=3)
    assert isinstance(policy, Policy)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    chunk = policy.act(frame)
    assert chunk.shape == (3, 2) and chunk.dtype == np.float32 and (chunk >= 0).all() and (chunk <= 512).all()
    assert np.allclose(chunk, CNNBCPolicy(net, 3).act(frame), atol=1e-5)
    with pytest.raises(ValueError, match="uint8 frame"):
        policy.act(np.zeros((32, 32, 3), np.uint8))


def test_replay_policy_replays_and_holds(tmp_path):
    actions = {7: np.arange(10, dtype=np.float32).reshape(5, 2) * 10}
    ActionReplayPolicy(actions).save_npz(tmp_path / "r.npz")
    policy = ActionReplayPolicy.from_npz(tmp_path / "r.npz", chunk_size=3)
    policy.reset(seed=7)
    assert np.array_equal(policy.act(), actions[7][:3])
    assert np.array_equal(policy.act(), actions[7][[3, 4, 4]])  # the last action is held
    noisy = ActionReplayPolicy(actions, chunk_size=2, noise=5.0)
    noisy.reset(seed=7)
    first = noisy.act()
    noisy.reset(seed=7)
    assert np.array_equal(first, noisy.act()) and not np.array_equal(first, actions[7][:2])
    with pytest.raises(KeyError):
        policy.reset(seed=8)


def test_shipped_expert_replays_solve_gym_pusht():
    """``replay`` with no path plays the shipped expert actions; gym-pusht is deterministic, so
    replaying seed 3's actions from seed 3's start solves the task as the expert did."""
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    (spec,) = parse_policy_spec("replay")
    policy = spec.make()
    env = make_pusht_env(max_episode_steps=300)
    env.reset(seed=3)
    policy.reset(seed=3)
    done, info = False, {}
    while not done:
        for action in policy.act(None):
            _, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if done:
                break
    assert info["is_success"]


def test_policy_specs_from_strings(tmp_path):
    (spec,) = parse_policy_spec("rnd=random,chunk_size=4")
    assert spec.name == "rnd" and spec.chunk_size == 4
    a, b = spec.make(), spec.make()
    a.reset(seed=1), b.reset(seed=1)
    first = a.act(None)
    assert first.shape == (4, 2) and np.array_equal(first, b.act(None))
    CNNBCNet(CNNBCConfig(channels=(8,), hidden=8, chunk_size=2)).save_pretrained(tmp_path / "zoo" / "bc")
    (tmp_path / "zoo" / "zoo.json").write_text(json.dumps({"policies": [
        {"name": "bc", "kind": "cnn_bc", "path": "bc"}, {"name": "random", "kind": "random"}]}))
    specs = parse_policy_spec(f"zoo:{tmp_path / 'zoo'}")
    assert [s.name for s in specs] == ["bc", "random"] and specs[0].chunk_size == 2
    assert specs[0].fingerprint["files"]  # a retrained checkpoint invalidates cached results
    with pytest.raises(ValueError, match="unknown policy kind"):
        parse_policy_spec("nope:x")


def test_lerobot_adapter_per_step_and_chunks(tmp_path):
    from lerobot_policies import save_tiny_act

    from world_gym.policies.lerobot_policy import LeRobotPolicy

    path = save_tiny_act(tmp_path / "act", with_state=True, chunk_size=4)
    policy = LeRobotPolicy.from_pretrained(path)
    policy.reset(seed=0)
    frame = FRAME.copy()
    frame[40:44, 40:44] = (65, 105, 225)
    action = policy.act(frame, {})  # agent_pos estimated from the blue disc
    assert action.shape == (2,) and action.dtype == np.float32 and np.isfinite(action).all()
    chunked = LeRobotPolicy(policy.policy, policy.preprocessor, policy.postprocessor, chunk_size=4)
    chunked.reset(seed=0)
    chunk = chunked.act(frame, {"pos_agent": np.array([220.0, 220.0])})
    assert chunk.shape == (4, 2)
    # the same frame and state give the same chunk: nothing leaks between calls
    assert np.allclose(chunk, chunked.act(frame, {"pos_agent": np.array([220.0, 220.0])}))
    assert not np.allclose(chunk, chunked.act(frame, {"pos_agent": np.array([20.0, 400.0])}))


def test_sb3_adapter(micro_model, micro_frames):
    from stable_baselines3 import PPO

    from world_gym.env import WorldModelEnv
    from world_gym.policies.sb3_policy import SB3Policy

    env = WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2, max_episode_frames=4)
    model = PPO("MlpPolicy", env, n_steps=4, batch_size=4, seed=0, device="cpu", policy_kwargs={"net_arch": [8]})
    policy = SB3Policy(model)
    assert policy.chunk_size == 2
    obs, info = env.reset(seed=0)
    policy.reset(seed=0)
    action = policy.act(obs, info)
    assert action.shape == (2, 2)
    assert np.array_equal(action, policy.act(obs, info))  # deterministic
