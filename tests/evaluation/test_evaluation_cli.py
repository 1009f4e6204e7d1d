"""``world-gym evaluate`` and examples/policy_evaluation.py end to end: tiny Push-T model and gym-pusht."""

import json
import runpy
import sys
from pathlib import Path

from world_gym.cli import main

ARGS = ["--episodes", "2", "--num-envs", "2", "--max-frames", "8", "--steps", "1", "--device", "cpu"]


def test_evaluate_command_runs_both_sides_and_resumes(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", "--policy", "random,chunk_size=8", "--policy", "slow=random,chunk_size=4", *ARGS,
            "--videos", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["reward_head"] == "pusht_pose_coverage"  # the Push-T default head on pose tokens
    assert first["policies"]["random"]["world_model"]["success_rate"] == 0.0
    assert first["policies"]["random"]["ground_truth"]["mean_max_coverage"] is not None  # gym-pusht's coverage
    result = json.loads((out / "results" / "world_model" / "slow.json").read_text())
    assert [e["seed"] for e in result["episodes"]] == [0, 1] and all(e["length"] == 8 for e in result["episodes"])
    assert result["timing"]["env_steps"] == 2  # 8 frames in chunks of 4, both envs at once
    assert (out / "videos" / "random_seed0.mp4").stat().st_size > 0 and (out / "report.md").is_file()
    stamp = (out / "results" / "world_model" / "slow.json").stat().st_mtime_ns
    assert main(argv) == 0  # resume: cached results are not recomputed
    assert (out / "results" / "world_model" / "slow.json").stat().st_mtime_ns == stamp
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["policies"] == first["policies"]


def test_example_script_runs(tmp_path, monkeypatch, capsys):
    script = Path(__file__).parents[2] / "examples" / "policy_evaluation.py"
    monkeypatch.setattr(sys, "argv", [str(script), *ARGS, "--videos", "0", "--out", str(tmp_path / "ex")])
    runpy.run_path(str(script), run_name="__main__")
    assert "reward head in the world model: pusht_pose_coverage" in capsys.readouterr().out
    assert (tmp_path / "ex" / "summary.json").is_file()


def test_evaluate_in_bfloat16_world_model(tmp_path, capsys):
    out = tmp_path / "bf16"
    argv = ["evaluate", "--policy", "random,chunk_size=4", *ARGS, "--dtype", "bfloat16", "--no-ground-truth",
            "--videos", "0", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    result = json.loads((out / "results" / "world_model" / "random.json").read_text())
    assert all(e["length"] == 8 for e in result["episodes"])
    # backbone and codec precision are part of the cached settings
    assert json.dumps(result).count("torch.bfloat16") >= 2
