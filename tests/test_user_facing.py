"""What a new user meets first: the CLI's subcommands and env list, labelled videos, honest reports,
progress bars that finish, the Hydra configs shipped as package data."""

import argparse
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from world_gym.cli import COMMANDS, build_parser, main
from world_gym.env_catalog import CATALOG
from world_gym.evaluation.harness import EvaluationConfig, Evaluator, evaluate_policies
from world_gym.evaluation.report import markdown_report
from world_gym.evaluation.rollouts import EnvListBackend
from world_gym.policies.base import PolicySpec
from world_gym.video import add_label, side_by_side


def test_import_world_gym_registers_ids_without_torch():
    code = ("import sys, gymnasium as gym, world_gym; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert all(i in gym.registry for i in ['IRASim-PushT-v0', 'PoseState-PushT-v0', 'IRASim-RT1-v0']); "
            "import world_gym.cli; world_gym.cli.build_parser().format_help(); "
            "assert 'torch' not in sys.modules, 'torch imported by the CLI'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_catalog_matches_the_registered_families():
    import world_gym.envs  # noqa: F401  (defines every family)
    from world_gym.registration import FAMILIES

    assert {(e.family, e.env_id) for e in CATALOG} == {(f.name, f.env_id) for f in FAMILIES.values()}
    for entry in CATALOG:
        spec = gym.spec(entry.env_id)
        assert spec.entry_point == "world_gym.env:WorldModelEnv" and spec.kwargs == {"family": entry.family}


def test_envs_command_lists_every_id(capsys):
    assert main(["envs"]) == 0
    text = capsys.readouterr().out
    for entry in CATALOG:
        assert entry.env_id in text and entry.model in text
    assert main(["envs", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["env_id"] for r in rows] == [e.env_id for e in CATALOG]
    assert rows[0]["fidelity"] != "-" and rows[0]["card"].endswith(".md")


def test_help_lists_every_command_without_naming_internals():
    text = build_parser().format_help()
    assert all(name in text for name in COMMANDS)
    assert "COMMAND_MODULES" not in text and "COMMANDS" not in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_builds_its_parser(name):
    with pytest.raises(SystemExit) as exit_info:
        build_parser(name).parse_args([name, "--help"])
    assert exit_info.value.code == 0


def test_reward_model_help_names_the_real_default():
    parser = build_parser("evaluate")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices["evaluate"]._actions if a.dest == "reward_model")
    assert "resnet_iou" in action.help and "zero" not in action.help


def test_side_by_side_scales_and_labels():
    wm = np.zeros((3, 96, 96, 3), np.uint8)
    gt = np.full((5, 96, 96, 3), 128, np.uint8)
    video = side_by_side(wm, gt, labels=["world model", "gym-pusht"], scale=4, gap=2)
    assert video.shape[0] == 3 and video.shape[2] == 2 * 384 + 2 and video.shape[1] > 384
    band = video.shape[1] - 384
    assert (video[:, band:, :384] == 0).all()  # nearest-neighbour scaling keeps the frame's pixels
    left_band, right_band = video[0, :band, :384], video[0, :band, 386:]
    assert (left_band < 128).any() and (right_band < 128).any()  # text drawn on each side's white band
    assert not np.array_equal(left_band, right_band)  # ... and the two captions differ
    with pytest.raises(ValueError, match="one label per video"):
        side_by_side(wm, gt, labels=["only one"])
    assert add_label(wm, "x", height=20).shape == (3, 116, 96, 3)


def _summary(policies: int) -> dict:
    cell = {"summary": {"success_rate": 0.5, "success_ci": [0.1, 0.9], "mean_max_coverage": 0.5,
                        "coverage_ci": [0.4, 0.6], "mean_length": 10.0}, "timing": {"wall_s": 1.0}}
    return {"env_id": "X", "ground_truth_id": "gym_pusht/PushT-v0", "seeds": [0, 1], "max_episode_frames": 5,
            "num_envs": 1, "reward_head": "zero",
            "policies": {f"p{i}": {"world_model": cell, "ground_truth": cell} for i in range(policies)},
            "comparison": {"mean_max_coverage": {"pearson": 1.0, "spearman": 1.0, "mmrv": 0.0, "policies": policies}}}


def test_report_says_when_too_few_policies_to_correlate():
    text = markdown_report(_summary(2))
    assert "n/a (needs >= 3 policies)" in text and "| 1.000 |" not in text
    assert "two points always correlate" in text
    text = markdown_report(_summary(3))
    assert "| 1.000 | 1.000 |" in text and "needs >= 3" not in text


class _Countdown(gym.Env):
    """Ends after ``seed % 3 + 1`` steps."""

    observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = spaces.Box(0, 512, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = seed % 3 + 1
        return np.zeros((8, 8, 3), np.uint8), {}

    def step(self, action):
        self.left -= 1
        return np.zeros((8, 8, 3), np.uint8), 0.0, self.left <= 0, False, {"coverage": 0.5, "is_success": self.left <= 0}


class _Still:
    chunk_size = 1

    def reset(self, seed=None):
        pass

    def act(self, observation, info=None):
        return np.zeros((1, 2), np.float32)


def test_progress_bar_finishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Evaluator, "_ground_truth_backend", lambda self, chunk: EnvListBackend(_Countdown, 2, chunk))
    monkeypatch.setattr(EvaluationConfig, "resolved_ground_truth_id", lambda self: "countdown")
    config = EvaluationConfig(seeds=[0, 1, 2, 3], num_envs=2, max_episode_frames=6, out_dir=tmp_path, world_model=False)
    specs = [PolicySpec(name, _Still, 1) for name in ("a", "b")]
    evaluate_policies(specs, config, progress=True)
    assert "8/8" in capsys.readouterr().err
    evaluate_policies(specs, config, progress=True)  # every result cached: the bar still ends full
    assert "8/8" in capsys.readouterr().err


def test_training_configs_ship_inside_the_package():
    from importlib import resources

    from world_gym.training.common import compose, configs_dir

    assert configs_dir() == resources.files("world_gym").joinpath("configs")
    cfg = compose("train_dynamics", ["trainer.steps=3"])
    assert cfg.trainer.steps == 3
