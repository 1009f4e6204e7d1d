"""benchmarks/policy_ranking.py end to end: novel policies in the tiny random-weight model and in gym-pusht."""

import json

import pytest
from conftest import load_benchmark

pytest.importorskip("gym_pusht")

ARGS = ["--env", "IRASim-PushT-v0", "--set", "model=tiny-pusht", "--set", "num_inference_steps=1",
        "--set", "device=cpu", "--seeds", "201,203", "--max-frames", "8", "--num-envs", "2", "--quiet",
        "--policy", "novel:idle,chunk_size=4", "--policy", "novel:greedy,chunk_size=4",
        "--policy", "lag=novel:laggard,chunk_size=4,every=8"]


def test_ranking_benchmark_runs_both_sides_resumes_and_reuses_ground_truth(tmp_path, capsys):
    bench = load_benchmark("policy_ranking")
    out = tmp_path / "tiny"
    result = bench.main([*ARGS, "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1]) == json.loads(json.dumps(result))
    assert "| idle |" in printed and "| lag |" in printed
    assert result["seeds"] == [201, 203] and set(result["policies"]) == {"idle", "greedy", "lag"}
    for row in result["policies"].values():
        for side in ("ground_truth", "world_model"):
            assert row[side]["episodes"] == 2 and 0.0 <= row[side]["mean_max_coverage"] <= 1.0
    assert result["comparison"]["mean_max_coverage"]["policies"] == 3
    assert result["env_kwargs"]["model"] == "tiny-pusht"
    stored = json.loads((out / "results" / "world_model" / "lag.json").read_text())
    assert [e["length"] for e in stored["episodes"]] == [8, 8] and stored["timing"]["env_steps"] == 2

    stamp = (out / "results" / "world_model" / "greedy.json").stat().st_mtime_ns
    again = bench.main([*ARGS, "--out", str(out)])  # resume: everything cached
    assert (out / "results" / "world_model" / "greedy.json").stat().st_mtime_ns == stamp
    assert again["policies"] == result["policies"]

    sibling = tmp_path / "other"  # another run's folder: gym-pusht's results are reused, not rerun
    other = bench.main(["--no-world-model", *ARGS, "--policies", "idle", "--out", str(sibling)])
    assert (sibling / "results" / "ground_truth" / "greedy.json").read_text() == \
        (out / "results" / "ground_truth" / "greedy.json").read_text()
    assert other["policies"]["idle"]["ground_truth"] == result["policies"]["idle"]["ground_truth"]
    assert "world_model" not in other["policies"]["idle"] and other["comparison"] == {}


def test_seeds_and_env_arguments_parse():
    bench = load_benchmark("policy_ranking")
    assert bench.parse_seeds("200:203") == [200, 201, 202] and bench.parse_seeds("7,3") == [7, 3]
    with pytest.raises(ValueError, match="no seeds"):
        bench.parse_seeds("")
    args = bench.argparse.Namespace(env_kwargs='{"ensemble": 2}', set=["block_gate=false", "dtype=bfloat16"])
    kwargs = bench.env_kwargs(args)
    assert kwargs["ensemble"] == 2 and kwargs["block_gate"] is False and kwargs["dtype"] is bench.torch.bfloat16
    with pytest.raises(ValueError, match="KEY=VALUE"):
        bench.env_kwargs(bench.argparse.Namespace(env_kwargs="{}", set=["ensemble"]))
