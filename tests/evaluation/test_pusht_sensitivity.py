"""benchmarks/pusht_sensitivity.py on a tiny stress set collected in gym-pusht."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_benchmark


def test_exact_replay_is_the_episode_and_offset_starts_are_scored_per_family(tmp_path: Path, capsys) -> None:
    pytest.importorskip("lerobot")
    import world_gym.data.collect as col

    sensitivity = load_benchmark("pusht_sensitivity")
    root = tmp_path / "stress"
    col.collect(root, 2, "stress", "side_switch,near_miss", workers=1, progress=False, max_steps=20)
    report = sensitivity.main(["--data", str(root), "--horizon", "18", "--starts", "exact,0:0,5:0,0:3"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    assert "| start | side_switch | near_miss | mean |" in out
    scores = report["scores"]
    assert list(scores) == ["exact replay", "placed at the true pose", "+5 px", "+3 deg"]
    for family in ("side_switch", "near_miss"):
        assert scores["exact replay"][family]["long"] == 1.0  # the replay is the recorded episode
        assert scores["placed at the true pose"][family]["long"] > 0.95
        assert scores["+5 px"][family]["short"] < 0.99  # a start 5 px off shows in the block's pixels
    assert report["episodes"] == {"side_switch": 1, "near_miss": 1}
    with pytest.raises(SystemExit, match="neither 'exact' nor PX:DEG"):
        sensitivity.main(["--data", str(root), "--starts", "exact,half"])
    with pytest.raises(SystemExit, match="no episode"):
        sensitivity.main(["--data", str(root), "--horizon", "50"])


def test_one_step_from_recorded_poses_restarts_gym_pusht_and_scores_a_state_model(tmp_path: Path, capsys) -> None:
    pytest.importorskip("lerobot")
    import world_gym.data.collect as col

    sensitivity = load_benchmark("pusht_sensitivity")
    root = tmp_path / "stress"
    col.collect(root, 2, "stress", "side_switch,park", workers=1, progress=False, max_steps=30, images=False)
    report = sensitivity.main(["--data", str(root), "--one-step", "5", "--model", "pusht-pose-state"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    assert "| family | frames | block motion | gym-pusht restarted | pusht-pose-state |" in out
    restarted, model = report["scores"]["gym-pusht restarted"], report["scores"]["pusht-pose-state"]
    for family, frames in report["frames"].items():
        assert 0 < frames <= 5
        assert restarted[family]["agent"] < 1e-3  # the agent's velocity is recovered exactly
        assert restarted[family]["block_motion"] >= 0.1  # only frames where the block moves
        assert 0 <= restarted[family]["position"] < restarted[family]["block_motion"]
        assert model[family]["frames"] == frames and model[family]["agent"] < 1.0
    with pytest.raises(SystemExit, match="give --one-step"):
        sensitivity.main(["--data", str(root), "--model", "pusht-pose-state"])
    with pytest.raises(SystemExit, match="not a pose-state step"):
        sensitivity.main(["--data", str(root), "--one-step", "2", "--model", "tiny-pusht"])
    with pytest.raises(SystemExit, match="no frame of 'circle'"):
        sensitivity.main(["--data", str(root), "--one-step", "2", "--families", "circle"])
