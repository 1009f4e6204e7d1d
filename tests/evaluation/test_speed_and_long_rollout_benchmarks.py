"""benchmarks/long_rollout.py and the reset rows of benchmarks/speed.py, on the tiny random-weight model."""

import json

import numpy as np
import pytest
from conftest import load_benchmark

from world_gym.envs.pusht.pixels import FrameState, coverage_to_reward


def test_long_rollout_reports_every_window_and_logs_it(tmp_path, capsys):
    bench = load_benchmark("long_rollout")
    log = tmp_path / "rows.jsonl"
    result = bench.main(["--model", "tiny-pusht", "--frames", "24", "--every", "8", "--chunk-size", "4",
                         "--goal-every", "8", "--log", str(log)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["summary"] == result["summary"]
    assert [r["frame"] for r in result["rows"]] == [8, 16, 24]
    assert [json.loads(line)["frame"] for line in log.read_text().splitlines()] == [8, 16, 24]
    total = result["summary"]
    assert total["frames"] == 24 and total["all_finite"] and total["rss_first_mb"] > 0
    assert all(r["frames_read"] == 2 for r in result["rows"])  # one read per chunk of 4
    assert 0 <= total["block_seen_min"] <= 1 and total["env_frames_per_s"] > 0


def test_window_counts_a_frame_without_a_block_as_shape_error_one_and_off_the_board():
    bench = load_benchmark("long_rollout")
    window = bench.Window()
    window.add_read(FrameState(np.array([10.0, 10.0]), None))
    window.add_read(FrameState(None, np.array([256.0, 256.0, 0.0]), 0.05))
    window.add_read(FrameState(None, np.array([600.0, 256.0, 0.0]), 0.07))
    row = window.row(3)
    assert row["t_shape_mean"] == pytest.approx((1.0 + 0.05 + 0.07) / 3) and row["t_shape_max"] == 1.0
    assert row["block_seen"] == pytest.approx(2 / 3) and row["block_on_board"] == pytest.approx(1 / 3)
    assert row["agent_seen"] == pytest.approx(1 / 3)
    assert row["block_travel"] == pytest.approx(344.0)  # from (256, 256) to (600, 256); the blockless frame skipped


def test_keep_going_raises_the_success_threshold_out_of_reach():
    bench = load_benchmark("long_rollout")
    args = bench.argparse.Namespace(env="IRASim-PushT-v0", model="tiny-pusht", chunk_size=4, device="cpu",
                                    frames=16, keep_going=True)
    assert bench.make_env(args).unwrapped.reward_head.success_threshold == 1.0
    assert not coverage_to_reward(np.array([1.0]), 1.0)[1].any()  # success is coverage > threshold: never
    args.keep_going = False
    assert bench.make_env(args).unwrapped.reward_head.success_threshold == pytest.approx(0.95)
    # the pose model's head (its default) accepts it too
    args.env, args.model, args.keep_going = "PoseState-PushT-v0", None, True
    head = bench.make_env(args).unwrapped.reward_head
    assert head.name == "pusht_pose_coverage" and head.success_threshold == 1.0


def test_speed_reset_case_times_first_new_and_seen_starts():
    pytest.importorskip("gym_pusht")  # new starts are seeds beyond the shipped bank, rendered by gym-pusht
    bench = load_benchmark("speed")
    row = bench.reset_case("IRASim-PushT-v0", 2, model="tiny-pusht")
    assert row["resets_timed"] == 8 and row["first_ms"] > 0 and row["first_new_start_ms"] > 0
    assert 0 < row["warm_seen_start_ms"] and 0 < row["warm_new_start_ms"] and 0 < row["warm_bank_start_ms"]


def test_speed_profile_splits_a_step_into_parts_that_add_up(monkeypatch, capsys):
    bench = load_benchmark("speed")
    monkeypatch.setattr("sys.argv", ["speed.py", "--profile", "--model", "tiny-pusht", "--profile-steps", "2",
                                     "--chunk-size", "2", "--steps", "1", "--device", "cpu", "--threads", "1"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    parts = result["parts_ms_per_step"]
    assert sum(parts.values()) == pytest.approx(result["total_ms_per_step"], rel=1e-6)
    assert parts["backbone forward passes"] > 0 and parts["reward head network (net)"] > 0
    assert result["backbone_passes_per_step"] >= 1 and result["top_functions"]
