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
