"""The resnet_iou head and its training entry point, with random weights and a tiny dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from world_gym.reward_models import RewardContext, make_reward_head
from world_gym.reward_models.resnet_iou import (
    GOAL_CROP,
    RefinedCoverageNet,
    ResNetIoUReward,
    block_on_goal,
    build_coverage_net,
    build_refiner,
    coverage_to_reward,
    crop_goal,
    frames_to_input,
    goal_mask,
    load_coverage_net,
    save_coverage_net,
)
from world_gym.envs.pusht.ground_truth import GOAL_POSE, StateRenderer
from world_gym.envs.pusht.metrics import BLOCK, pusht_segment
from world_gym.reward_models.pusht_coverage import (
    RenderedCoverage,
    balanced_weights,
    evaluate_coverage,
    evaluate_on_world_model,
    load_coverage_frames,
)
from world_gym.commands.train_reward_head import register
from world_gym.reward_models.train_resnet_iou import (
    TrainConfig,
    augment,
    boundary_weighted_loss,
    recalibrate_batch_norm,
    train,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_coverage_net(build_coverage_net(), tmp_path_factory.mktemp("w") / "w.safetensors", {"steps": 0})


@pytest.fixture(scope="module")
def renderer() -> RenderedCoverage:
    return RenderedCoverage()


def make_dataset(root: Path, frames: np.ndarray, coverage: np.ndarray, episode_len: int = 3) -> Path:
    """A LeRobotDataset with the Push-T collector's image and coverage columns."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {"observation.image": {"dtype": "image", "shape": (96, 96, 3), "names": ["height", "width", "channel"]},
                "observation.coverage": {"dtype": "float32", "shape": (1,), "names": None},
                "action": {"dtype": "float32", "shape": (2,), "names": None}}
    ds = LeRobotDataset.create("local/pusht_tiny", fps=10, root=root, features=features, use_videos=False)
    for i, (f, c) in enumerate(zip(frames, coverage)):
        ds.add_frame({"observation.image": f, "observation.coverage": np.array([c], np.float32),
                      "action": np.array([200.0 + i, 300.0], np.float32), "task": "push"})
        if (i + 1) % episode_len == 0:
            ds.save_episode()
    ds.finalize()
    return root


def test_gym_pusht_reward_formula() -> None:
    reward, success = coverage_to_reward(np.array([0.0, 0.5, 0.95, 0.951, 1.0]))
    np.testing.assert_allclose(reward, [0.0, 0.5 / 0.95, 1.0, 1.0, 1.0], rtol=1e-6)
    assert success.tolist() == [False, False, False, True, True]


def test_head_matches_its_network(weights: Path) -> None:
    head = make_reward_head("resnet_iou", weights=str(weights))
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 96, 96, 3), dtype=np.uint8)
    out = head(frames, RewardContext())
    assert out.reward.shape == (2, 3) and out.reward.dtype == np.float32 and out.success.dtype == bool
    with torch.no_grad():
        raw = head.net(frames_to_input(frames.reshape(6, 96, 96, 3))).squeeze(1).numpy().reshape(2, 3)
    cap = block_on_goal(frames.reshape(6, 96, 96, 3)).reshape(2, 3) + head.goal_check_margin
    np.testing.assert_allclose(out.info["coverage"], np.minimum(np.clip(raw, 0, 1), cap), atol=1e-5)
    assert (out.info["goal_capped"] == (np.clip(raw, 0, 1) > cap)).all()
    reward, success = coverage_to_reward(out.info["coverage"])
    np.testing.assert_allclose(out.reward, reward)
    assert (out.success == success).all()
    assert head.metadata == {"steps": 0}


def test_missing_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-reward-head"):
        ResNetIoUReward(weights=tmp_path / "absent.safetensors")


def test_wrong_frame_size(weights: Path) -> None:
    with pytest.raises(ValueError, match=r"\(B, T, 96, 96, 3\)"):
        ResNetIoUReward(weights=weights)(np.zeros((1, 1, 64, 64, 3), np.uint8), RewardContext())


def test_rendered_labels_are_gym_pusht_coverage(renderer: RenderedCoverage) -> None:
    renderer.env.reset(options={"reset_to_state": [100, 100, 300, 300, 0.0]})
    renderer._place_block(GOAL_POSE)
    assert renderer.env._get_coverage() == pytest.approx(1.0, abs=1e-6)
    frames, coverage = renderer.sample(6, np.random.default_rng(0))
    assert frames.shape == (6, 96, 96, 3) and frames.dtype == np.uint8
    assert ((coverage >= 0) & (coverage <= 1)).all() and coverage.dtype == np.float32


def test_boundary_frames_fall_in_the_band() -> None:
    renderer = RenderedCoverage(boundary=1.0, band=(0.94, 0.96))
    frames, coverage = renderer.sample(8, np.random.default_rng(2))
    assert frames.shape == (8, 96, 96, 3)
    assert ((coverage >= 0.94) & (coverage <= 0.96)).all()
    # and the coverage is the rendered state's: the last frame is the env's current observation
    assert renderer.env._get_coverage() == pytest.approx(float(coverage[-1]))
    assert np.array_equal(renderer.env.get_obs(), frames[-1])


def test_boundary_weighted_loss() -> None:
    target = torch.tensor([0.0, 0.5, 0.95, 0.96])
    pred = target + torch.tensor([0.05, -0.05, 0.05, -0.05])
    plain = torch.nn.functional.smooth_l1_loss(pred, target, beta=0.01)
    assert boundary_weighted_loss(pred, target, 0.0) == pytest.approx(plain.item())
    # equal per-frame errors: the weighted mean of equal terms is that term
    assert boundary_weighted_loss(pred, target, 4.0) == pytest.approx(plain.item())
    # one error of 0.2: it costs far more at the threshold than at coverage 0
    pred_far_wrong = target + torch.tensor([0.2, 0.0, 0.0, 0.0])
    pred_near_wrong = target + torch.tensor([0.0, 0.0, 0.2, 0.0])
    far = boundary_weighted_loss(pred_far_wrong, target, 4.0)
    assert boundary_weighted_loss(pred_near_wrong, target, 4.0) > 3 * far
    assert boundary_weighted_loss(pred_near_wrong, target, 0.0) == pytest.approx(
        boundary_weighted_loss(pred_far_wrong, target, 0.0).item())


def test_balanced_weights_equalise_bins() -> None:
    coverage = np.array([0.0] * 90 + [0.5] * 9 + [0.97])
    p = balanced_weights(coverage)
    assert p.sum() == pytest.approx(1.0)
    assert p[:90].sum() == pytest.approx(1 / 3) and p[99] == pytest.approx(1 / 3)


class Constant(torch.nn.Module):
    """A stand-in whole-frame net that predicts fixed coverages, one per input row."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor(values).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values[: len(x)]


def test_evaluate_precision_recall() -> None:
    truth = np.array([0.0, 0.96, 0.99, 0.5], np.float32)
    m = evaluate_coverage(Constant([0.1, 0.97, 0.9, 0.96]), np.zeros((4, 96, 96, 3), np.uint8), truth)
    assert m["mae"] == pytest.approx((0.1 + 0.01 + 0.09 + 0.46) / 4, abs=1e-6)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5) and m["n_success"] == 2
    swept = evaluate_coverage(Constant([0.1, 0.97, 0.9, 0.96]), np.zeros((4, 96, 96, 3), np.uint8), truth,
                              sweep=(0.85, 0.965))["sweep"]
    # at 0.85 every frame but the first is called a success; at 0.965 only the second
    assert swept["0.850"] == pytest.approx({"precision": 2 / 3, "recall": 1.0})
    assert swept["0.965"] == pytest.approx({"precision": 1.0, "recall": 0.5})


def test_train_resume_export_on_tiny_dataset(tmp_path: Path, renderer: RenderedCoverage) -> None:
    frames, coverage = renderer.sample(6, np.random.default_rng(1))
    root = make_dataset(tmp_path / "train", frames, coverage)
    got_frames, got_cov = load_coverage_frames(root)
    assert np.array_equal(got_frames, frames) and np.allclose(got_cov, coverage)

    cfg = TrainConfig(out=str(tmp_path / "run"), train_root=[str(root)], heldout_root=str(root), steps=2,
                      batch_size=4, eval_every=2, eval_frames=6, warmup=1, export=str(tmp_path / "w.safetensors"))
    result = train(cfg)
    assert result["state"]["step"] == 2 and result["eval"]["heldout"]["n"] == 6
    cfg.steps = 3  # resume from the checkpoint for one more step
    assert train(cfg)["state"]["step"] == 3
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    head = ResNetIoUReward(weights=tmp_path / "w.safetensors")
    assert head.metadata["state"]["frames_seen"] > 0
    assert head(frames[None], RewardContext()).reward.shape == (1, 6)


def test_interrupt_saves_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import world_gym.reward_models.train_resnet_iou as trainer

    def interrupt(*args: object, **kwargs: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "evaluate_coverage", interrupt)
    cfg = TrainConfig(out=str(tmp_path / "run"), steps=3, batch_size=2, eval_every=1, checkpoint_every=100, warmup=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["state"]["step"] == 1


def test_world_model_evaluation_path(tmp_path: Path, renderer: RenderedCoverage, weights: Path) -> None:
    frames, coverage = renderer.sample(6, np.random.default_rng(2))
    root = make_dataset(tmp_path / "heldout", frames, coverage)
    net = ResNetIoUReward(weights=weights).net
    result = evaluate_on_world_model(net, "tiny-pusht", root, episodes=2, horizon=2)
    # one window per episode (3 rows, horizon 2: first and last window coincide), 2 imagined steps each
    assert result["world_model"]["n"] == 4 and result["ground_truth"]["n"] == 4
    assert np.isfinite(result["world_model"]["mae"])


def test_cli_registration() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train-reward-head", "--train-root", "a", "--train-root", "b", "--steps", "5", "--no-bf16"])
    assert args.train_root == ["a", "b"] and args.steps == 5 and not args.bf16 and callable(args.func)


def test_refiner_decides_only_above_the_gate() -> None:
    torch.manual_seed(0)
    refiner = build_refiner()
    net = RefinedCoverageNet(Constant([0.2, 0.8, 0.74, 0.99]), refiner.eval(), gate=0.75, center=0.95,
                             scale=20.0)
    x = frames_to_input(np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8))
    with torch.no_grad():
        out = net(x)[:, 0]
        refined = 0.95 + refiner(crop_goal(x))[:, 0] / 20.0
    assert out.shape == (4,)
    assert out[0] == pytest.approx(0.2) and out[2] == pytest.approx(0.74)  # below the gate: the base's
    torch.testing.assert_close(out[[1, 3]], refined[[1, 3]])


def test_goal_crop_holds_the_goal_t(renderer: RenderedCoverage) -> None:
    # The block far away, the agent in a corner: the only green is the goal T, and all of it is in the crop.
    renderer.env.reset(options={"reset_to_state": [460, 460, 80, 80, 0.0]})
    frame = renderer.env.get_obs().astype(int)
    green = (frame[..., 1] - frame[..., 0] > 30) & (frame[..., 2] < 200)
    green[85:] = green[:, 85:] = False  # the board's border
    top, left, size = GOAL_CROP
    assert green.sum() > 150 and green[top:top + size, left:left + size].sum() == green.sum()
    x = frames_to_input(frame[None].astype(np.uint8))
    crop = crop_goal(x)
    assert crop.shape == (1, 3, 96, 96)
    # the crop's centre pixel is the frame's, interpolated
    centre = x[0, :, top + size // 2, left + size // 2]
    assert torch.allclose(crop[0, :, 48, 48], centre, atol=0.15)


def test_goal_mask_is_gym_pusht_goal(renderer: RenderedCoverage) -> None:
    renderer.env.reset(options={"reset_to_state": [460, 460, 80, 80, 0.0]})  # block and agent far away
    frame = renderer.env.get_obs().astype(int)
    green = (frame[..., 1] - frame[..., 0] > 30) & (frame[..., 2] < 200)
    green[85:] = green[:, 85:] = False  # the board's border
    mask = goal_mask()
    # every mask pixel is drawn green; the green outside it is the T's anti-aliased outline
    assert mask.sum() == 200 and (mask & green).sum() == 200 and (green & ~mask).sum() < 40
    assert block_on_goal(frame[None].astype(np.uint8))[0] == 0.0
    # the block on the goal covers the mask: block_on_goal is at least the coverage, less edge pixels
    home, cov = StateRenderer().render(GOAL_POSE + [2.0, -1.0, 0.01], np.array([100.0, 400.0]))
    assert cov > 0.95 and block_on_goal(home[None])[0] > cov - 0.01
    # the same labels as the fidelity benchmark's segmentation, on real and arbitrary colours
    noise = np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    for frames in (home[None], noise):
        expected = (pusht_segment(frames[:, mask]) == BLOCK).mean(1)
        np.testing.assert_allclose(block_on_goal(frames), expected)


def test_goal_check_caps_a_goal_without_the_block() -> None:
    # a world model's failure: the goal T erased to white board, the block elsewhere. The network
    # learned that green missing from the goal means the block covers it; the check says it cannot.
    far, far_cov = StateRenderer().render(np.array([420.0, 120.0, 1.0]), np.array([100.0, 400.0]))
    home, home_cov = StateRenderer().render(GOAL_POSE + [2.0, -1.0, 0.01], np.array([100.0, 400.0]))
    erased = far.copy()
    erased[goal_mask()] = 255
    frames = np.stack([far, erased, home])[None]
    plain = ResNetIoUReward(render_fit=False, goal_check=False)(frames, RewardContext()).info["coverage"][0]
    out = ResNetIoUReward(render_fit=False)(frames, RewardContext())
    assert far_cov == 0.0 and home_cov > 0.95
    assert plain[1] > 0.1  # what the network alone reads into the erased goal
    assert out.info["goal_capped"][0].tolist() == [False, True, False]
    assert out.info["coverage"][0, 1] <= 0.05 + 1e-6
    np.testing.assert_allclose(out.info["coverage"][0, [0, 2]], plain[[0, 2]])


def test_refiner_output_stays_float32_under_autocast() -> None:
    refiner = build_refiner()
    x = torch.randn(2, 3, 96, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert refiner(x).dtype == torch.float32


def test_two_stage_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = build_coverage_net()
    net = RefinedCoverageNet(base, build_refiner(base), gate=0.7).eval()
    path = save_coverage_net(net, tmp_path / "two.safetensors", {"stage": "refiner"})
    loaded, meta = load_coverage_net(path)
    assert isinstance(loaded, RefinedCoverageNet) and loaded.gate == 0.7 and meta == {"stage": "refiner"}
    x = frames_to_input(np.random.default_rng(1).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8))
    with torch.no_grad():  # fp16 storage: close, not equal
        torch.testing.assert_close(loaded.refine(x), net.refine(x), atol=2e-2, rtol=0)
    head = ResNetIoUReward(weights=path)
    assert head(np.zeros((1, 2, 96, 96, 3), np.uint8), RewardContext()).reward.shape == (1, 2)


def test_refiner_training_keeps_the_base(tmp_path: Path, renderer: RenderedCoverage, weights: Path) -> None:
    frames, coverage = RenderedCoverage(boundary=1.0, band=(0.6, 1.0), max_offset=(25.0, 0.25)).sample(
        6, np.random.default_rng(3))
    root = make_dataset(tmp_path / "train", frames, coverage)
    cfg = TrainConfig(out=str(tmp_path / "run"), train_root=[str(root)], heldout_root=str(root), steps=2,
                      batch_size=4, eval_every=2, eval_frames=6, warmup=1, refine_from=str(weights),
                      bn_recalibrate=2, export=str(tmp_path / "two.safetensors"))
    result = train(cfg)
    assert result["state"]["step"] == 2 and result["eval"]["heldout_near"]["n"] == 6
    base, _ = load_coverage_net(weights)
    two, meta = load_coverage_net(tmp_path / "two.safetensors")
    assert isinstance(two, RefinedCoverageNet) and meta["train"]["refine_from"] == str(weights)
    for (k, a), b in zip(base.state_dict().items(), two.base.state_dict().values()):
        assert torch.equal(a, b), k  # frozen, batch-norm statistics included
    with pytest.raises(ValueError, match="already has a refiner"):
        train(TrainConfig(out=str(tmp_path / "run2"), steps=1, batch_size=2,
                          refine_from=str(tmp_path / "two.safetensors")))


def test_agent_beside_goal_leaves_a_gap() -> None:
    from shapely.geometry import Point

    renderer = RenderedCoverage(agent_near=1.0)
    rng = np.random.default_rng(0)
    points = [renderer._agent_beside_goal(rng) for _ in range(20)]
    assert all(18.0 <= renderer._goal_geom.distance(Point(p)) <= 50.0 for p in points)


def test_augment_fraction_picks_how_many_frames_blur() -> None:
    x = frames_to_input(np.random.default_rng(0).integers(0, 256, (200, 96, 96, 3), dtype=np.uint8))

    def changed(fraction: float) -> float:
        out = augment(x, torch.Generator().manual_seed(1), fraction)
        return (out != x).flatten(1).any(1).float().mean().item()

    shares = {f: changed(f) for f in (0.0, 0.25, 1.0)}
    assert shares[0.0] == 0.0 and shares[1.0] == 1.0 and 0.15 < shares[0.25] < 0.35


def test_recalibrated_batch_norm_is_the_plain_average() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).eval()
    batches = [torch.randn(8, 3, 5, 5) + i for i in range(3)]
    recalibrate_batch_norm(net, batches)
    with torch.no_grad():
        means = torch.stack([net[0](b).mean(dim=(0, 2, 3)) for b in batches])
    torch.testing.assert_close(net[1].running_mean, means.mean(0), atol=1e-5, rtol=1e-5)
    assert net[1].momentum == 0.1 and net.training  # momentum restored; left in train mode
