"""Smoke test of benchmarks/fidelity.py on a tiny synthetic held-out set with a micro random model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_benchmark, micro_config, randomize
from training_data import write_tiny_dataset
from world_gym.world_model import WorldModel


@pytest.fixture(scope="module")
def fidelity():
    return load_benchmark("fidelity")


@pytest.fixture(autouse=True)
def one_thread():
    # torch's thread pool stalls on a CPU shared with other jobs; one thread is faster there
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    data = write_tiny_dataset(tmp_path / "heldout", episodes=3, length=14, size=32)
    torch.manual_seed(0)
    model_dir = randomize(WorldModel(micro_config())).save_pretrained(tmp_path / "micro")
    return data, model_dir


def test_benchmark_runs_and_reports_every_protocol(fidelity, setup, tmp_path: Path, capsys) -> None:
    data, model_dir = setup
    video = tmp_path / "side_by_side.gif"
    report = fidelity.main([
        "--data", str(data), "--model", str(model_dir), "--windows", "2", "--horizon", "5",
        "--long-min-steps", "12", "--steps", "1", "--device", "cpu", "--video", str(video), "--video-scale", "1",
    ])
    out = capsys.readouterr().out
    assert "| short (5) | copy first frame |" in out and "| micro |" in out
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    short = report["short"]["methods"]
    assert set(short) == {"copy first frame", "codec reconstruction (micro)", "micro"}
    assert short["copy first frame"]["sequences"] == 6  # 3 episodes x 2 windows
    assert short["copy first frame"]["delta_psnr"] == 0.0  # it ignores the actions
    for name in short:
        assert 0 < short[name]["psnr"] < 100 and -1 <= short[name]["ssim"] <= 1
        assert short[name]["latent_l2"] >= 0
    assert short["micro"]["frames_per_s"] > 0
    long = report["long"]
    assert long["episodes"] == 3 and long["mean_steps"] == 13
    assert len(long["methods"]["micro"]["curves"]["psnr"]) == 13
    assert long["methods"]["micro"]["frames_per_s"] > 0
    assert video.is_file() and video.stat().st_size > 0


def test_model_rollouts_are_seeded_per_sequence(fidelity, setup) -> None:
    _, model_dir = setup
    args = fidelity.parse_args(["--model", str(model_dir), "--steps", "1", "--batch-size", "2", "--device", "cpu"])
    model = fidelity.ModelRollout(str(model_dir), args)
    context = np.random.default_rng(0).integers(0, 256, (3, 1, 32, 32, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).uniform(0, 512, (3, 4, 2))
    a, _ = model.predict(context, actions, np.array([5, 6, 7]))
    b, _ = model.predict(context[1:], actions[1:], np.array([6, 7]))  # other batch split, same seeds
    c, _ = model.predict(context[1:], actions[1:], np.array([8, 9]))
    # equal up to float reduction order, which depends on the batch shape
    assert np.abs(a[1:].astype(int) - b).max() <= 2 and (a[1:] != b).mean() < 1e-3
    assert np.abs(a[1:].astype(int) - c).mean() > 1  # the seed, not the batch, sets the noise


def test_short_windows_stay_inside_episodes(fidelity) -> None:
    from world_gym.data.episodes import EpisodeArrays

    index = np.repeat([0, 1], [20, 8])
    data = EpisodeArrays(np.zeros((28, 4, 4, 3), np.uint8), np.zeros((28, 2), np.float32), index)
    starts = fidelity.short_windows(data, data.episode_rows(), windows=3, horizon=5, history=2)
    # episode 0: last conditioning row t in [1, 14]; episode 1 (rows 20-27): t in [21, 22]
    np.testing.assert_array_equal(starts, [1, 8, 14, 21, 22])


def test_chunked_rollouts_match_whole_clips_and_differ_per_frame(fidelity, setup, capsys) -> None:
    """``--chunk-size`` steps the model as an env would; with the clip's own length it must give
    exactly the whole-clip rollout, with 1 frame per pass a different one, the one the model's own
    ``frames_per_pass=1`` gives.

    Two DDIM steps, not one: the micro model samples with diffusers' default "leading" spacing, whose
    single step denoises at t=0, where the backbone moves each latent by about 1e-10 of its size; the
    two rollouts then differed by float rounding alone, and whether a PSNR told them apart depended
    on the machine's CPU kernels."""
    data, model_dir = setup
    common = ["--data", str(data), "--model", str(model_dir), "--windows", "1", "--horizon", "5", "--steps", "2",
              "--device", "cpu", "--protocols", "short", "--no-reconstruction", "--no-delta"]
    whole = WorldModel.from_pretrained(model_dir).max_new_frames
    reports = {c: fidelity.main([*common, *(["--chunk-size", str(c)] if c else [])]) for c in (None, whole, 1)}
    capsys.readouterr()
    psnr = {c: r["short"]["methods"]["micro"]["psnr"] for c, r in reports.items()}
    assert psnr[whole] == psnr[None] and psnr[1] != psnr[None]
    # the model's passes of 1 frame (--frames-per-pass) are what an env stepping 1 action gets
    passes = fidelity.main([*common, "--frames-per-pass", "1"])
    capsys.readouterr()
    assert passes["short"]["methods"]["micro"]["psnr"] == psnr[1]
    assert passes["passes"]["micro"] == {"frames_per_pass": 1, "clip_padding": None}
    assert reports[None]["passes"]["micro"]["frames_per_pass"] == whole

    # the same on the rollouts themselves, not only on a summary of their frames
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, (3, 1, 32, 32, 3), dtype=np.uint8)
    actions, seeds = rng.uniform(0, 512, (3, whole, 2)), np.array([5, 6, 7])
    latents = {}
    for name, extra in {"whole": [], "chunk": ["--chunk-size", str(whole)], "one": ["--chunk-size", "1"],
                        "passes": ["--frames-per-pass", "1"]}.items():
        args = fidelity.parse_args(["--model", str(model_dir), "--steps", "2", "--device", "cpu", *extra])
        latents[name] = fidelity.ModelRollout(str(model_dir), args).predict(context, actions, seeds)[1]
    assert torch.equal(latents["chunk"], latents["whole"]) and torch.equal(latents["passes"], latents["one"])
    # per-frame passes see their own imagined context: far more than rounding apart
    change = (latents["one"] - latents["whole"]).abs().mean() / latents["whole"].abs().mean()
    assert change > 0.01, change


def test_random_protocol_scores_against_gym_pusht(fidelity, tmp_path: Path, capsys) -> None:
    """Random targets from held-out starts: the truth is gym-pusht playing the same targets from
    the episode's own reset seed, and every method is scored on it."""
    import world_gym.data.collect as col
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    root = tmp_path / "heldout"
    col.collect(root, 2, "heldout", "expert=1", workers=1, progress=False, max_steps=6)
    args = fidelity.parse_args(["--data", str(root), "--random-horizon", "4", "--seed", "3"])
    args.action_low, args.action_high = np.zeros(2, np.float32), np.full(2, 512.0, np.float32)
    from world_gym.data.episodes import load_episodes

    data = load_episodes(root, ("episode_seed",), progress=False)
    frames, actions, seeds = fidelity.random_action_episodes(data, data.episode_rows(), args)
    assert frames.shape == (2, 5, 96, 96, 3) and actions.shape == (2, 4, 2)
    assert np.array_equal(frames[:, 0], data.frames[[rows[0] for rows in data.episode_rows()]])
    env = make_pusht_env()
    env.reset(seed=int(seeds[1]))
    replay = [env.step(a)[0] for a in actions[1]]
    assert np.array_equal(np.stack(replay), frames[1, 1:])
    assert (actions[0] != actions[1]).all()  # each episode draws its own targets

    from world_gym.assets import bundled_model_path

    report = fidelity.main(["--data", str(root), "--protocols", "random", "--random-horizon", "4", "--model",
                            str(bundled_model_path("tiny-pusht")), "--steps", "1", "--device", "cpu", "--shape"])
    out = capsys.readouterr().out
    assert "| random (4) | copy first frame |" in out and "| random (4) | tiny-pusht |" in out
    methods = report["random"]["methods"]
    assert report["random"]["episodes"] == 2 and set(methods) == {
        "copy first frame", "codec reconstruction (tiny-pusht)", "tiny-pusht"}
    assert all(m["sequences"] == 2 and len(m["curves"]["psnr"]) == 4 for m in methods.values())
    assert methods["tiny-pusht"]["frames_per_s"] > 0 and "frames_per_s" not in methods["copy first frame"]
    # --shape: gym-pusht's own (first) frame shows a rigid T; an untrained model's frames do not
    assert methods["copy first frame"]["t_shape"] < 0.15 < methods["tiny-pusht"]["t_shape"]
    assert "T shape err" in out


def test_by_family_reports_each_family_and_the_untouched_block_drift(fidelity, tmp_path: Path, capsys) -> None:
    """--by-family on a tiny stress set collected in gym-pusht: a row per family and method, the mean
    over families, and the drift of near_miss's untouched block (none for copying the first frame)."""
    pytest.importorskip("lerobot")
    import world_gym.data.collect as col
    from world_gym.assets import bundled_model_path

    root = tmp_path / "stress"
    col.collect(root, 3, "stress", "near_miss,side_switch,sweep", workers=1, progress=False, max_steps=12)
    report = fidelity.main(["--data", str(root), "--model", str(bundled_model_path("tiny-pusht")), "--by-family",
                            "--windows", "2", "--horizon", "4", "--long-horizon", "10", "--drift-steps", "12",
                            "--steps", "1", "--device", "cpu", "--no-delta", "--no-latent", "--no-reconstruction"])
    out = capsys.readouterr().out
    assert "| near_miss | 1 | copy first frame |" in out and "| side_switch | 1 | tiny-pusht |" in out
    assert "| mean over families | 3 | tiny-pusht |" in out and "untouched block (near_miss, 1 episodes" in out
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    families = report["by_family"]["families"]
    assert list(families) == ["sweep", "side_switch", "near_miss"]  # in code order
    for res in families.values():
        assert res["episodes"] == 1 and set(res["short"]) == set(res["long"]) == {"copy first frame", "tiny-pusht"}
        assert res["short"]["tiny-pusht"]["sequences"] == 2 and res["long"]["tiny-pusht"]["sequences"] == 1
    near = families["near_miss"]
    assert near["short"]["copy first frame"]["block_iou"] > 0.95  # the block never moves in gym-pusht
    mean = report["by_family"]["mean_over_families"]["copy first frame"]["long"]["block_iou"]
    assert mean == pytest.approx(np.mean([f["long"]["copy first frame"]["block_iou"] for f in families.values()]))
    drift = report["by_family"]["drift"]
    assert drift["episodes"] == 1 and drift["steps"] == [12]
    # the true block stays still in this near miss: its episode counts for the imagined block's drift
    assert drift["true_motion_last"] == [0.0] and drift["still"] == [True]
    assert "stays still (1 of 1)" in out
    copy, tiny = drift["methods"]["copy first frame"], drift["methods"]["tiny-pusht"]
    assert copy["centre_drift_last"][0] == 0.0 and copy["centre_drift_max"][0] == 0.0
    assert copy["own_motion_last"] == [0.0]  # the copied block never moves
    assert copy["block_iou_last"][0] > 0.95
    assert tiny["block_iou_last"][0] < 0.5  # an untrained model does not keep the block
    with pytest.raises(SystemExit, match="no episodes of families"):
        fidelity.main(["--data", str(root), "--by-family", "--families", "park", "--device", "cpu"])


def test_block_gate_flag_switches_a_pose_codecs_gate_and_needs_one(fidelity, setup) -> None:
    from world_gym.assets import bundled_model_path

    data, model_dir = setup
    base = ["--data", str(data), "--device", "cpu", "--no-delta", "--no-latent", "--no-reconstruction"]
    args = fidelity.parse_args([*base, "--block-gate", "on"])
    rollout = fidelity.ModelRollout(str(bundled_model_path("pusht-pose-state")), args)
    assert rollout.model.codec.block_gate is True
    assert fidelity.parse_args(base).block_gate is None  # the model's own setting
    with pytest.raises(SystemExit, match="--block-gate needs a pose codec"):
        fidelity.ModelRollout(str(model_dir), args)
    walls = fidelity.parse_args([*base, "--block-gate-walls", "on"])
    assert fidelity.ModelRollout(str(bundled_model_path("pusht-pose-state")), walls).model.codec.block_gate_walls is True
    assert rollout.model.codec.block_gate_walls is False and fidelity.parse_args(base).block_gate_walls is None
    with pytest.raises(SystemExit, match="--block-gate-walls needs a pose codec"):
        fidelity.ModelRollout(str(model_dir), walls)


def test_simulator_from_a_models_reading_scores_the_long_protocol_only(fidelity, tmp_path: Path, capsys) -> None:
    """--simulator-reading: gym-pusht from the poses the first model's pose codec reads off each start
    frame, a row of the long protocol (a reset start, the agent at rest), none of the short one; close
    to the truth over a few steps. A model without a pose codec cannot read poses."""
    pytest.importorskip("lerobot")
    import world_gym.data.collect as col
    from world_gym.assets import bundled_model_path

    root = tmp_path / "stress"
    col.collect(root, 2, "stress", "sweep,wall_push", workers=1, progress=False, max_steps=12)
    name = "gym-pusht from pusht-pose-state's reading"
    report = fidelity.main(["--data", str(root), "--model", str(bundled_model_path("pusht-pose-state")),
                            "--simulator-reading", "--windows", "2", "--horizon", "4", "--long-min-steps", "10",
                            "--long-horizon", "10", "--device", "cpu", "--no-delta", "--no-latent",
                            "--no-reconstruction"])
    assert name not in report["short"]["methods"] and name in report["long"]["methods"]
    reading = report["long"]["methods"][name]
    assert reading["sequences"] == 2 and reading["block_iou"] > 0.9 and reading["agent_error"] < 2
    assert "latent_l2" not in reading
    assert f"| {name} |" in capsys.readouterr().out
    by_family = fidelity.main(["--data", str(root), "--model", str(bundled_model_path("pusht-pose-state")),
                               "--simulator-reading", "--by-family", "--windows", "2", "--horizon", "4",
                               "--long-horizon", "10", "--drift-family", "", "--device", "cpu", "--no-delta",
                               "--no-latent", "--no-reconstruction"])
    assert f"| sweep | 1 | {name} | - / " in capsys.readouterr().out  # its long column in each family's row
    assert name in by_family["by_family"]["families"]["wall_push"]["long"]
    with pytest.raises(SystemExit, match="needs a pose codec"):
        fidelity.main(["--data", str(root), "--model", str(bundled_model_path("tiny-pusht")), "--simulator-reading",
                       "--protocols", "long", "--long-min-steps", "10", "--device", "cpu", "--steps", "1"])
