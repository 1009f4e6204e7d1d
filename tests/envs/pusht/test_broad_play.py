"""world_gym.envs.pusht.broad_play: the broad training families, state-only collection, and the pose step
trained on dataset roots from a shipped model's step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gym_pusht")

from training_data import play_behaviour  # noqa: E402
from world_gym.data import collect as col  # noqa: E402
from world_gym.data.episodes import load_episodes  # noqa: E402
from world_gym.envs.pusht import behaviours as bh  # noqa: E402
from world_gym.envs.pusht.broad_play import BROAD_FAMILIES, make_broad_policy  # noqa: E402
from world_gym.envs.pusht.train_pose import (  # noqa: E402
    POSE_COLUMNS,
    dataset_poses,
    export_world_model,
    init_step,
    step_config,
    train_dynamics,
)
from world_gym.training.common import compose  # noqa: E402
from world_gym.world_model import WorldModel  # noqa: E402


def play(name: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Actions, agent positions and block poses of ``steps`` steps of family ``name`` from reset ``seed``."""
    return play_behaviour(make_broad_policy(name), seed, steps)


@pytest.mark.parametrize("name", sorted(BROAD_FAMILIES))
def test_each_broad_family_is_deterministic_valid_and_its_own(name: str) -> None:
    a, b, other = play(name, 100_000, 60), play(name, 100_000, 60), play(name, 100_001, 60)
    np.testing.assert_array_equal(a["action"], b["action"])
    assert a["action"].dtype == np.float32 and a["action"].shape == (60, 2)
    assert a["action"].min() >= 0 and a["action"].max() <= 512
    assert not np.array_equal(a["action"], other["action"])
    assert bh.family_name(BROAD_FAMILIES[name]) == name
    codes = set(BROAD_FAMILIES.values())
    assert not codes & set(bh.STRESS_FAMILIES.values()) and not codes & set(bh.TRAINING_FAMILIES.values())


def test_contact_families_move_the_block() -> None:
    for name in ("contact_play", "side_push", "fast_play"):
        moved = [np.abs(np.diff(play(name, seed, 150)["block"], axis=0)).max(axis=1) > 1e-3
                 for seed in (100_000, 100_001)]
        assert np.mean(np.concatenate(moved)) > 0.1, name


def test_unknown_family_and_mix_group() -> None:
    with pytest.raises(ValueError, match="unknown broad training family"):
        make_broad_policy("sweep")
    mix = col.parse_mix("broad")  # the six of the first broad collection: its command still collects the same
    assert set(mix) == set(BROAD_FAMILIES) - {"fast_play"} and np.isclose(sum(mix.values()), 1.0)


def test_fast_play_is_contact_play_at_higher_speed() -> None:
    def agent_speed(name: str) -> np.ndarray:
        runs = [play(name, seed, 150)["agent"] for seed in (100_000, 100_001, 100_002)]
        return np.concatenate([np.linalg.norm(np.diff(a, axis=0), axis=1) for a in runs])

    slow, fast = agent_speed("contact_play"), agent_speed("fast_play")
    assert np.quantile(fast, 0.9) > 1.5 * np.quantile(slow, 0.9)


def test_state_only_collection_and_a_step_trained_on_it(tmp_path: Path) -> None:
    root = tmp_path / "broad"
    summary = col.collect(root, 2, "train", "broad", progress=False, max_steps=20, images=False)
    assert summary["episodes_added"] == 2 and summary["frames_added"] == 42
    data = load_episodes(root, extra_columns=(*POSE_COLUMNS, "behavior"), progress=False, images=False)
    assert data.actions.shape == (42, 2) and set(np.unique(data.extras["behavior"])) <= set(BROAD_FAMILIES.values())
    with pytest.raises(ValueError):  # a root keeps one kind: frames cannot join a state-only root
        col.collect(root, 3, "train", "broad", progress=False, max_steps=20, images=True)

    poses, actions, episodes = dataset_poses(compose("train_pose", []), [str(root), str(root)])
    assert poses.shape == (84, 6) and actions.shape == (84, 2) and len(np.unique(episodes)) == 4
    assert np.abs(actions).max() <= 1.0

    out = tmp_path / "run"
    over = [f"out_dir={out}", f"dynamics.roots=[{root}]", "dynamics.init_from=pusht-pose-state",
            "dynamics.batch_size=8", "dynamics.unroll=4", "trainer.log_every=1", "trainer.ckpt_every=1"]
    cfg = compose("train_pose", [*over, "dynamics.steps=2"])
    base = WorldModel.from_pretrained("pusht-pose-state")
    from world_gym.envs.pusht.pose_state import PoseStateDynamics

    fresh = PoseStateDynamics(step_config(cfg))
    # without init_from: the config's model fields on pose tokens (the shipped step has grown since)
    plain = compose("train_pose", [f"dynamics.roots=[{root}]", "model.dynamics_hidden=64"])
    own = step_config(plain)
    assert own.latent_channels == 6 and own.latent_size == (1, 1) and own.token_scale == 4.0
    assert own.dynamics_hidden == 64 and not own.contact_features
    assert fresh.config.contact_features and fresh.config == base.backbone.config
    init_step(fresh, "pusht-pose-state")
    for k, v in base.backbone.step_net.state_dict().items():
        torch.testing.assert_close(fresh.step_net.state_dict()[k], v.float(), msg=k)

    train_dynamics(cfg)
    # the export records the options the step trained with (config_dynamics.yaml), not its own
    path = export_world_model(compose("train_pose", [f"out_dir={out}", "base_model=pusht-pose-state"]), tmp_path / "wm")
    model = WorldModel.from_pretrained(path)
    assert model.config.metadata["dynamics_steps"] == 2
    assert model.config.metadata["dynamics_roots"] == [str(root)]
    assert model.config.metadata["dynamics_config"]["unroll"] == 4
    assert model.config.metadata["dynamics_config"]["init_from"] == "pusht-pose-state"
    assert model.start_encodings is not None  # the codec is the base model's: its start encodings stay valid
    trained = torch.load(out / "dynamics.pt", weights_only=True)["model"]
    changed = False
    for k, v in model.backbone.step_net.state_dict().items():
        torch.testing.assert_close(v, trained[k], msg=k)
        changed |= not torch.equal(v, base.backbone.step_net.state_dict()[k].float())
    assert changed  # two steps of AdamW moved the step
    for k, v in model.codec.state_dict().items():
        torch.testing.assert_close(v, base.codec.state_dict()[k], msg=k)
    with pytest.raises(ValueError, match="not 'PoseState'"):
        export_world_model(compose("train_pose", [f"out_dir={out}", "base_model=tiny-pusht"]), tmp_path / "wm2")
