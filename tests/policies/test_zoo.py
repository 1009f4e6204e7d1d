"""The zoo trainer: chunk targets, a tiny end-to-end zoo build, and its manifest."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: shared helpers

from training_data import write_tiny_dataset  # noqa: E402

from world_gym.cli import main  # noqa: E402
from world_gym.data.episodes import chunk_targets  # noqa: E402
from world_gym.policies.zoo import load_zoo  # noqa: E402


def test_chunk_targets_stop_at_episode_ends():
    actions = np.arange(5, dtype=np.float32)[:, None].repeat(2, 1)
    out = chunk_targets(actions, np.array([0, 0, 0, 1, 1]), 3)
    assert out[:, :, 0].tolist() == [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 4, 4], [4, 4, 4]]


def test_zoo_command_builds_a_loadable_zoo(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", episodes=3, length=10, size=96)
    out = tmp_path / "zoo"
    args = ["zoo", "--data", str(data), "--out", str(out), "--steps", "2,4", "--data-fraction", "0.5",
            "--data-steps", "2", "--behaviors", "all", "--replay-seeds", "", "--replay-noise", "",
            "--act-steps", "0", "--pixel-expert-noise", "0,20"]
    assert main(args) == 0
    names = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["policies"]
    assert names == ["random", "bc_steps2", "bc_steps4", "bc_data2",
                     "pixel_expert_noise0", "pixel_expert_noise20"]
    meta = json.loads((out / "bc_steps4" / "config.json").read_text())["metadata"]
    assert meta["steps"] == 4 and meta["episodes"] == 3
    stamp = (out / "bc_steps4" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # resume: nothing is retrained
    assert (out / "bc_steps4" / "model.safetensors").stat().st_mtime_ns == stamp
    specs = load_zoo(out)
    frame = np.zeros((96, 96, 3), np.uint8)
    assert specs[1].make().act(frame).shape == (8, 2)
    assert specs[-1].fingerprint["options"] == {"noise": 20.0, "chunk_size": 8}


def test_small_lerobot_act_trains_and_loads(tmp_path):
    from world_gym.policies.lerobot_policy import LeRobotPolicy
    from world_gym.policies.train_zoo import train_lerobot_act

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 96, 96, 3), dtype=np.uint8)
    actions = rng.uniform(0, 512, (12, 2)).astype(np.float32)
    loss = train_lerobot_act(frames, actions, actions.copy(), np.repeat([0, 1], 6), tmp_path / "act", steps=2,
                             batch_size=2)
    assert np.isfinite(loss)
    policy = LeRobotPolicy.from_pretrained(tmp_path / "act", chunk_size=8)
    policy.reset(seed=0)
    assert policy.act(frames[0], {"pos_agent": actions[0]}).shape == (8, 2)
