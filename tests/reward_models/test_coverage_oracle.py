"""benchmarks/coverage_oracle.py: the re-rendering it rests on, its flag arithmetic, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def oracle():
    return load_benchmark("coverage_oracle")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import world_gym.data.collect as col

    root = tmp_path_factory.mktemp("oracle") / "heldout"
    col.collect(root, 1, "heldout", "expert=1", workers=1, progress=False, max_steps=8)
    return root


def test_recorded_states_render_their_stored_frames(oracle, dataset: Path) -> None:
    from world_gym.data.episodes import load_episodes

    data = load_episodes(dataset, ("observation.coverage", "observation.block_pose", "observation.state"),
                         progress=False)
    renderer = oracle.StateRenderer()
    for i in range(len(data)):
        pose, agent = data.extras["observation.block_pose"][i], data.extras["observation.state"][i]
        frame, cov = renderer.render(pose, agent)
        # float32 poses: at most a pixel or two off; coverage to float32 precision
        assert np.abs(frame.astype(int) - data.frames[i]).any(-1).sum() <= 2
        assert cov == pytest.approx(float(np.ravel(data.extras["observation.coverage"])[i]), abs=1e-4)


def test_identical_frames_include_the_state_itself(oracle) -> None:
    from world_gym.envs.pusht.ground_truth import GOAL_POSE

    renderer = oracle.StateRenderer()
    frame, cov, same = oracle.success_posterior(renderer, GOAL_POSE.copy(), np.array([80.0, 80.0]), 20,
                                                np.random.default_rng(0))
    assert cov == pytest.approx(1.0) and same[0] == cov and len(same) >= 1
    assert frame.shape == (96, 96, 3) and (same > 0.9).all()  # tiny offsets around a perfect placement


def test_plateau_walk_stays_on_the_frame(oracle) -> None:
    from world_gym.envs.pusht.ground_truth import GOAL_POSE

    renderer = oracle.StateRenderer()
    agent = np.array([80.0, 80.0])
    frame, cov, chain = oracle.plateau_walk(renderer, GOAL_POSE.copy(), agent, 30, np.random.default_rng(0))
    assert cov == pytest.approx(1.0) and chain[0] == cov and chain.shape == (31,)
    assert len(np.unique(chain)) > 1  # it moved, and only to poses of the same frame, near coverage 1
    assert (chain > 0.97).all() and np.array_equal(renderer.render(GOAL_POSE.copy(), agent)[0], frame)


def test_oracle_flag_arithmetic(oracle) -> None:
    p = np.array([0.9, 0.6, 0.2, 0.0])
    truth = np.array([True, False, True, False])
    flags = oracle.oracle_flags(p, truth, (0.5, 0.1))
    assert flags["0.50"] == pytest.approx({"precision": 0.5, "recall": 0.5})
    assert flags["0.10"] == pytest.approx({"precision": 2 / 3, "recall": 1.0})


def test_runs_and_reports(oracle, dataset: Path, capsys: pytest.CaptureFixture) -> None:
    report = oracle.main(["--data", str(dataset), "--band", "-1", "2", "--perturbations", "3",
                          "--taus", "0.5", "--prior", "local"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    assert report["band_frames"] == report["frames"] == 9 and report["rerender_mismatches"] == 0
    assert "| 0.50 |" in out and report["prior"] == "local"
    assert oracle.main(["--data", str(dataset), "--perturbations", "3"])["prior"] == "plateau"
