"""Tests for world_gym/data (collect.py, lerobot_io.py): real gym-pusht, short episodes, tmp roots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_pusht")
pytest.importorskip("lerobot")

from world_gym.data import collect as col  # noqa: E402
from world_gym.data.lerobot_io import (  # noqa: E402
    POLICY_LOG,
    EpisodeWriter,
    recover,
    stored_seeds,
    validate_episode,
)
from world_gym.envs.pusht import ground_truth as gt  # noqa: E402
from world_gym.envs.pusht.ground_truth import PUSHT_FEATURES  # noqa: E402

#: what the collector passes to the writer
SCHEMA = {"features": PUSHT_FEATURES, "fps": gt.FPS, "task": gt.TASK}

MIX = col.parse_mix("expert=0.5,play=0.5")


def _load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("world-gym/pusht", root=root)


def test_plan_is_deterministic_disjoint_and_follows_the_mix() -> None:
    mix = col.parse_mix(col.DEFAULT_MIX)
    train = col.plan_episodes("train", 200, mix)
    heldout = col.plan_episodes("heldout", 200, mix)
    assert train == col.plan_episodes("train", 200, mix)
    assert col.plan_episodes("train", 50, mix) == train[:50]  # growing a dataset keeps its episodes
    assert not {s.seed for s in train} & {s.seed for s in heldout}
    assert all(s.seed < 10_000 for s in heldout) and all(s.seed >= 100_000 for s in train)
    share = {name: np.mean([s.behavior == name for s in train]) for name in mix}
    for name, weight in mix.items():
        assert share[name] == pytest.approx(weight, abs=0.03)
    noisy_levels = {s.noise for s in train if s.behavior == "noisy"}
    assert noisy_levels == set(col.DEFAULT_NOISE_LEVELS)
    assert all(s.noise == 0.0 for s in train if s.behavior != "noisy")
    with pytest.raises(ValueError, match="unknown behaviour"):
        col.parse_mix("expert=1,dance=1")
    with pytest.raises(ValueError, match="only 10000 seeds"):
        col.plan_episodes("heldout", 10_001, mix)


def test_stress_split_plays_each_family_in_turn_on_its_own_seeds() -> None:
    from world_gym.envs.pusht.behaviours import STRESS_FAMILIES, family_seeds

    assert col.parse_mix("stress") == {name: pytest.approx(1 / 7) for name in STRESS_FAMILIES}
    assert col.parse_mix("training") == col.parse_mix(col.DEFAULT_MIX)
    assert col.parse_mix("training=1,stress=1")["near_miss"] == pytest.approx(1 / 14)
    assert col.parse_mix("sweep,park") == {"sweep": 0.5, "park": 0.5}
    plan = col.plan_episodes("stress", 16, col.parse_mix("stress"))
    assert [s.behavior for s in plan[:7]] == list(STRESS_FAMILIES) and plan[7].behavior == "sweep"
    assert col.plan_episodes("stress", 9, col.parse_mix("stress")) == plan[:9]
    for name in STRESS_FAMILIES:  # a family's seeds do not depend on the other families of the mix
        mine = [s.seed for s in plan if s.behavior == name]
        assert mine == family_seeds(name, len(mine))
    alone = col.plan_episodes("stress", 2, col.parse_mix("near_miss"))
    assert [s.seed for s in alone] == family_seeds("near_miss", 2)
    start, stop = col.SPLITS["stress"]
    for other, (lo, hi) in col.SPLITS.items():
        assert other == "stress" or hi <= start or lo >= stop
    assert all(start <= s.seed < stop and s.noise == 0.0 for s in plan)
    with pytest.raises(ValueError, match="stress families only"):
        col.plan_episodes("stress", 2, col.parse_mix("expert=1"))


def test_recorded_episode_labels_match_gym_pusht() -> None:
    env = gt.make_pusht_env(max_episode_steps=40)
    episode = col.record_episode(env, col.BEHAVIORS["expert"].make_policy(0.0), col.EpisodeSpec(7, "expert"))
    validate_episode(episode, PUSHT_FEATURES)
    n = len(episode["action"])
    assert n == 41  # 40 steps + the final frame
    first, _ = env.reset(seed=7)
    np.testing.assert_array_equal(episode["observation.image"][0], first)
    covs = np.array([gt.coverage(p) for p in episode["observation.block_pose"].astype(np.float64)])
    np.testing.assert_allclose(episode["observation.coverage"][:, 0], covs, atol=1e-4)  # float32 pose
    # next.reward of row t is the reward of frame t + 1; the final row repeats its own frame's.
    next_cov = np.append(episode["observation.coverage"][1:, 0], episode["observation.coverage"][-1, 0])
    np.testing.assert_allclose(episode["next.reward"][:, 0], np.clip(next_cov / 0.95, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(episode["next.done"][:, 0], np.arange(n) == n - 1)
    np.testing.assert_array_equal(episode["action"][-1], episode["action"][-2])
    assert np.all(episode["episode_seed"] == 7) and np.all(episode["behavior"] == 0)


def test_collect_writes_lerobot_dataset_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "heldout"
    summary = col.collect(root, 2, "heldout", MIX, workers=1, checkpoint_every=1, progress=False, max_steps=12)
    assert summary["episodes_added"] == 2 and summary["frames_added"] == 26
    ds = _load(root)
    assert ds.num_episodes == 2 and ds.num_frames == 26 and ds.fps == 10
    assert set(PUSHT_FEATURES) <= set(ds.features)
    assert ds.features["observation.image"]["dtype"] == "image"  # not video: no ffmpeg needed
    item = ds[13]
    assert item["observation.image"].shape == (3, 96, 96)
    assert item["observation.state"].shape == (2,) and item["observation.block_pose"].shape == (3,)
    assert int(item["episode_seed"]) == 1 and int(item["frame_index"]) == 0

    again = col.collect(root, 3, "heldout", MIX, workers=1, progress=False, max_steps=12)
    assert again["episodes_added"] == 1
    assert col.collect(root, 3, "heldout", MIX, workers=1, progress=False, max_steps=12)["episodes_added"] == 0
    assert stored_seeds(root) == [0, 1, 2]
    assert _load(root).num_episodes == 3
    with pytest.raises(ValueError, match="outside split"):
        col.collect(root, 1, "train", MIX, progress=False, max_steps=12)


def test_collect_rollouts_of_learned_policies(tmp_path: Path) -> None:
    import json

    from world_gym.policies.zoo import parse_policy_spec

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "zoo.json").write_text(json.dumps({"policies": [
        {"name": "chunky", "kind": "random", "options": {"chunk_size": 4}},
        {"name": "single", "kind": "random", "options": {"chunk_size": 1}}]}))
    spec = f"zoo:{zoo}"
    mix = col.parse_mix("policy=1")
    with pytest.raises(ValueError, match="--policy"):
        col.plan_episodes("heldout", 2, mix)
    root = tmp_path / "rollouts"
    summary = col.collect(root, 3, "heldout", mix, workers=2, progress=False, max_steps=6, policy=spec)
    assert summary["per_behavior"] == {"policy:chunky": {"episodes": 2, "success_rate": 0.0},
                                       "policy:single": {"episodes": 1, "success_rate": 0.0}}
    log = json.loads((root / POLICY_LOG).read_text())
    assert log == {"policy": spec, "seeds": {"0": "chunky", "1": "single", "2": "chunky"}}
    data = _load(root).hf_dataset
    seeds = np.asarray(data["episode_seed"]).reshape(-1)
    assert np.all(np.asarray(data["behavior"]) == col.BEHAVIORS["policy"].code)
    # Each episode played its policy as seeded at reset: chunk by chunk, or one target at a time.
    for seed, name in ((0, "chunky"), (1, "single")):
        policy = next(p for p in parse_policy_spec(spec) if p.name == name).make()
        policy.reset(seed=seed)
        chunks = [np.asarray(policy.act(None), np.float32).reshape(-1, 2) for _ in range(6)]
        expected = np.concatenate(chunks)[:6]
        np.testing.assert_allclose(np.asarray(data["action"])[seeds == seed][:6], expected)
    with pytest.raises(ValueError, match="collected with --policy"):
        col.collect(root, 4, "heldout", mix, progress=False, max_steps=6, policy=f"zoo:{zoo},only=single")


def test_two_workers_give_the_same_episodes(tmp_path: Path) -> None:
    col.collect(tmp_path / "w2", 2, "heldout", MIX, workers=2, progress=False, max_steps=8)
    col.collect(tmp_path / "w1", 2, "heldout", MIX, workers=1, progress=False, max_steps=8)
    a, b = _load(tmp_path / "w2").hf_dataset, _load(tmp_path / "w1").hf_dataset
    order = np.argsort(np.asarray(a["episode_seed"]).reshape(-1), kind="stable")
    for key in ("action", "observation.block_pose", "episode_seed"):
        np.testing.assert_allclose(np.asarray(a[key])[order], np.asarray(b[key]))


def _tiny_episode(seed: int, frames: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    episode = {}
    for key, feature in PUSHT_FEATURES.items():
        dtype = np.uint8 if feature["dtype"] == "image" else np.dtype(feature["dtype"])
        episode[key] = (rng.random((frames, *feature["shape"])) * 200).astype(dtype)
    episode["episode_seed"][:] = seed
    return episode


_CRASH = """
import os, sys
sys.path.insert(0, {tests!r})
from test_collect import _tiny_episode
from world_gym.data.lerobot_io import EpisodeWriter
from world_gym.envs.pusht import ground_truth as gt
writer = EpisodeWriter({root!r}, checkpoint_every=1, features=gt.PUSHT_FEATURES, fps=gt.FPS, task=gt.TASK)
writer.add_episode(_tiny_episode(1))
writer.checkpoint_every = 100
writer.add_episode(_tiny_episode(2))
os._exit(1)  # killed: no finalize, no checkpoint
"""


def test_hard_crash_rolls_back_to_the_last_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    script = _CRASH.format(tests=str(Path(__file__).parent), root=str(root))
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 1
    assert recover(root) is True
    assert stored_seeds(root) == [1]
    with EpisodeWriter(root, task=gt.TASK) as writer:
        writer.add_episode(_tiny_episode(3))
    ds = _load(root)
    assert ds.num_episodes == 2 and stored_seeds(root) == [1, 3]
    assert int(ds[ds.num_frames - 1]["episode_index"]) == 1
    with pytest.raises(ValueError, match="expected shape"):
        EpisodeWriter(tmp_path / "other", **SCHEMA).add_episode({**_tiny_episode(4), "action": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="features="):  # the core has no default schema
        EpisodeWriter(tmp_path / "schemaless", fps=gt.FPS)
