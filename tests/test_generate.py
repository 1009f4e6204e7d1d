"""Tests for ``world-gym generate`` (world_gym/commands/generate.py), the world-model dataset schema
(world_gym/data/lerobot_io.py) and the dataset integrity check (world_gym/data/integrity.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot")

from world_gym.commands.generate import GenerationConfig, generate  # noqa: E402
from world_gym.data.integrity import DatasetIntegrityError, check_dataset  # noqa: E402
from world_gym.data.lerobot_io import (  # noqa: E402
    SOURCE,
    UNLABELED,
    EpisodeWriter,
    build_episode,
    recover,
    stored_seeds,
    world_model_features,
)
from world_gym.policies import zoo  # noqa: E402
from world_gym.policies.base import RandomPolicy  # noqa: E402
from world_gym.reward_models.base import RewardHead, RewardOutput  # noqa: E402
from world_gym.data.episodes import load_episodes  # noqa: E402


class HashSuccess(RewardHead):
    """Success on a frame whose bytes hash to 0 mod 6: deterministic, some episodes succeed, some not."""

    name = "hash_success"

    def __call__(self, frames, context):
        b, t = frames.shape[:2]
        success = np.array([[hashlib.sha1(frames[i, j].tobytes()).digest()[0] % 6 == 0 for j in range(t)]
                            for i in range(b)])
        return RewardOutput(reward=success.astype(np.float32) + 0.25, success=success)


def _load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("world-gym/test", root=root)


def _episodes(ds) -> dict[int, dict[str, np.ndarray]]:
    """Per episode_seed: frames (uint8 HWC) and actions read back through LeRobotDataset."""
    out: dict[int, dict[str, list]] = {}
    for i in range(ds.num_frames):
        row = ds[i]
        seed = int(row["episode_seed"])
        frame = (row["observation.image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        ep = out.setdefault(seed, {"frames": [], "actions": [], "label": int(row["episode_label"]),
                                   "success": [], "done": []})
        ep["frames"].append(frame)
        ep["actions"].append(row["action"].numpy())
        ep["success"].append(bool(row["next.success"]))
        ep["done"].append(bool(row["next.done"]))
    return {k: {key: np.asarray(v) if isinstance(v, list) else v for key, v in ep.items()} for k, ep in out.items()}


def _config(tmp_path: Path, model, frames, **kwargs) -> GenerationConfig:
    env_kwargs = {"model": model, "initial_states": frames, "max_episode_frames": 8, "device": "cpu",
                  "reward_model": "zero", **kwargs.pop("env_kwargs", {})}
    defaults = {"env_id": "IRASim-PushT-v0", "policy": "random,chunk_size=4", "episodes": 3,
                "out": tmp_path / "ds", "num_envs": 2, "checkpoint_every": 1, "progress": False}
    return GenerationConfig(**{**defaults, **kwargs, "env_kwargs": env_kwargs})


def test_writer_round_trips_frames_and_actions_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = world_model_features((32, 40, 3), 3, ["x", "y", "z"])
    written = {}
    with EpisodeWriter(tmp_path / "ds", checkpoint_every=2, features=features, fps=5, task="t") as writer:
        for seed, steps in ((4, 5), (9, 1), (2, 7)):
            frames = rng.integers(0, 256, (steps + 1, 32, 40, 3), dtype=np.uint8)
            actions = (rng.normal(size=(steps, 3)) * 100).astype(np.float32)
            writer.add_episode(build_episode(frames, actions, rng.random(steps), seed == 9, seed, label=UNLABELED))
            written[seed] = (frames, actions)
    ds = _load(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.fps == 5
    back = _episodes(ds)
    for seed, (frames, actions) in written.items():
        np.testing.assert_array_equal(back[seed]["frames"], frames)
        np.testing.assert_array_equal(back[seed]["actions"][:-1], actions)  # the last row repeats the action
        np.testing.assert_array_equal(back[seed]["actions"][-1], actions[-1])
        assert back[seed]["done"].tolist() == [False] * len(actions) + [True]
        assert back[seed]["label"] == UNLABELED
    assert back[9]["success"].tolist() == [True, True] and not back[4]["success"].any()
    arrays = load_episodes(tmp_path / "ds", cache=False, progress=False)
    assert arrays.num_episodes == 3 and arrays.frames.shape == (16, 32, 40, 3)
    with pytest.raises(ValueError, match="columns"):
        EpisodeWriter(tmp_path / "ds", features=world_model_features((32, 40, 3), 2))
    with pytest.raises(ValueError, match=r"frames must be uint8 \(T \+ 1"):
        build_episode(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 2)), np.zeros(2), False, 0)


def test_generate_writes_a_loadable_dataset_with_the_policy_in_its_metadata(tmp_path, micro_model, micro_frames):
    summary = generate(_config(tmp_path, micro_model, micro_frames))
    root = tmp_path / "ds"
    assert summary["added"] == 3 and summary["episodes"] == 3 and not summary["interrupted"]
    ds = _load(root)
    assert ds.num_episodes == 3 and ds.num_frames == 3 * 9  # 8 frames + the start frame each
    back = _episodes(ds)
    assert sorted(back) == [0, 1, 2]
    for seed, ep in back.items():
        policy = RandomPolicy(zoo._random(None, {"chunk_size": 4})[0]().action_space)
        policy.reset(seed=seed)
        expected = np.concatenate([policy.act(None) for _ in range(2)])
        np.testing.assert_array_equal(ep["actions"][:-1], expected)  # the actions the policy took
        np.testing.assert_array_equal(ep["frames"][0], micro_frames.frames[seed])  # its start frame
        assert ep["label"] == 0 and not ep["success"].any()  # the zero head never succeeds
    source = json.loads((root / SOURCE).read_text())
    assert source["env_id"] == "IRASim-PushT-v0" and source["policy"]["spec"] == "random,chunk_size=4"
    assert source["settings"]["env_kwargs"]["model"] == "<WorldModel>"
    assert check_dataset(root, decode_images=True) == {"episodes": 3, "frames": 27}
    arrays = load_episodes(root, cache=False, progress=False)
    np.testing.assert_array_equal(arrays.frames[:9], np.stack([ds[i]["observation.image"].permute(1, 2, 0).mul(255)
                                                               .round().byte().numpy() for i in range(9)]))


def test_keep_successes_stores_only_successes_and_labels_them(tmp_path, micro_model, micro_frames):
    config = _config(tmp_path, micro_model, micro_frames, keep="successes", episodes=2,
                     env_kwargs={"reward_model": HashSuccess()})
    summary = generate(config)
    assert summary["episodes"] == 2 and summary["attempts"] >= 2
    back = _episodes(_load(tmp_path / "ds"))
    for ep in back.values():
        assert ep["label"] == 1 and ep["success"][-1] and ep["done"][-1]
    all_config = _config(tmp_path, micro_model, micro_frames, out=tmp_path / "all", episodes=6,
                         env_kwargs={"reward_model": HashSuccess()})
    generate(all_config)
    labels = {seed: ep["label"] for seed, ep in _episodes(_load(tmp_path / "all")).items()}
    assert set(labels.values()) == {0, 1}, labels  # the head's verdict, both kinds present
    assert set(back) <= {s for s, label in labels.items() if label == 1}  # same seeds, same outcomes


def test_resume_grows_the_dataset_and_refuses_other_settings(tmp_path, micro_model, micro_frames):
    generate(_config(tmp_path, micro_model, micro_frames, episodes=2))
    summary = generate(_config(tmp_path, micro_model, micro_frames, episodes=4))
    assert summary["added"] == 2 and sorted(stored_seeds(tmp_path / "ds")) == [0, 1, 2, 3]
    assert generate(_config(tmp_path, micro_model, micro_frames, episodes=4))["added"] == 0
    with pytest.raises(ValueError, match="policy: stored 'random,chunk_size=4', now 'random,chunk_size=2'"):
        generate(_config(tmp_path, micro_model, micro_frames, policy="random,chunk_size=2"))
    (tmp_path / "foreign").mkdir()
    with pytest.raises(FileExistsError, match="not written by 'world-gym generate'"):
        generate(_config(tmp_path, micro_model, micro_frames, out=tmp_path / "foreign"))


class _Interrupting:
    """Raises KeyboardInterrupt on its ``after``-th act across all instances (a Ctrl-C mid-run)."""

    calls = 0

    def __init__(self, after: int) -> None:
        self.after = after
        self.inner = RandomPolicy(zoo._random(None, {"chunk_size": 4})[0]().action_space)

    def reset(self, seed=None):
        self.inner.reset(seed)

    def act(self, obs, info=None):
        type(self).calls += 1
        if type(self).calls == self.after:
            raise KeyboardInterrupt
        return self.inner.act(obs)


def test_ctrl_c_keeps_finished_episodes_and_the_rerun_completes(tmp_path, micro_model, micro_frames, monkeypatch):
    _Interrupting.calls = 0
    monkeypatch.setitem(zoo.KINDS, "interrupting", lambda path, options: (lambda: _Interrupting(5), 4))
    config = _config(tmp_path, micro_model, micro_frames, policy="interrupting", episodes=4)
    summary = generate(config)
    assert summary["interrupted"] and summary["added"] == 2  # two steps of two envs: two whole episodes
    root = tmp_path / "ds"
    assert check_dataset(root)["episodes"] == 2 and _load(root).num_episodes == 2
    _Interrupting.calls = -10**6  # no more interrupts
    assert generate(config)["added"] == 2
    assert sorted(stored_seeds(root)) == [0, 1, 2, 3] and _load(root).num_episodes == 4


def test_truncated_or_half_written_dataset_is_refused(tmp_path, micro_model, micro_frames):
    config = _config(tmp_path, micro_model, micro_frames, episodes=2)
    generate(config)
    root = tmp_path / "ds"
    stray = root / "data/chunk-000/file-099.parquet"
    stray.write_bytes(b"PAR1 half a file")
    with pytest.raises(DatasetIntegrityError, match="mid-write"):
        check_dataset(root)
    assert recover(root) and check_dataset(root)["episodes"] == 2
    data = sorted((root / "data").glob("*/*.parquet"))[0]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DatasetIntegrityError, match="truncated or corrupt"):
        check_dataset(root)
    with pytest.raises(DatasetIntegrityError, match="truncated or corrupt"):
        generate(_config(tmp_path, micro_model, micro_frames, episodes=3))
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] += 1
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / data.name).unlink(missing_ok=True)
    with pytest.raises(DatasetIntegrityError):
        check_dataset(root)


def test_cli_contract_with_the_shipped_tiny_model(tmp_path: Path, capsys) -> None:
    from world_gym.cli import main

    out = tmp_path / "cli"
    argv = ["generate", "IRASim-PushT-v0", "--policy", "random,chunk_size=8", "--episodes", "1", "--out", str(out),
            "--seed", "3", "--model", "tiny-pusht", "--max-frames", "8", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 1
    ds = _load(out)
    assert ds.num_episodes == 1 and ds.num_frames == 9 and stored_seeds(out) == [3]
    assert ds.features["observation.image"]["shape"] == (96, 96, 3)
