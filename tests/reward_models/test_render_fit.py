"""render_fit: coverage of exact gym-pusht frames by re-rendering, and the resnet_iou head's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from world_gym.envs.pusht.ground_truth import GOAL_POSE, StateRenderer
from world_gym.reward_models import RewardContext
from world_gym.reward_models.render_fit import RenderFit, refine_coverage
from world_gym.reward_models.resnet_iou import ResNetIoUReward, build_coverage_net, save_coverage_net

AGENT = np.array([120.0, 380.0])  # in view, off the goal T
Frame = tuple[np.ndarray, float]  # a frame and its true coverage


@pytest.fixture(scope="module")
def fitter() -> RenderFit:
    return RenderFit()


@pytest.fixture(scope="module")
def near_threshold() -> Frame:
    """A frame whose true coverage is under 0.95 by less than the network's errors (0.005-0.01) and
    more than the same-frame poses' spread (about 0.003): the network may call it a success, a
    reader of the frame should not."""
    renderer = StateRenderer()
    for dx in np.linspace(2.0, 8.0, 61):
        frame, cov = renderer.render(GOAL_POSE + [dx, -1.0, 0.01], AGENT)
        if 0.938 < cov < 0.943:
            return frame, cov
    raise AssertionError("no pose in the scan has coverage in (0.938, 0.943)")


def test_fit_reproduces_the_frame_and_reads_its_coverage(fitter: RenderFit, near_threshold: Frame) -> None:
    frame, cov = near_threshold
    assert fitter.is_render(frame)
    fit = fitter.fit(frame)
    assert fit is not None and fit.evals >= 1 and fit.plateau.shape == (fitter.walk + 1,)
    # the found pose draws this very frame (up to the agent's disc, which the comparison leaves out)
    redrawn, fitted_cov = fitter.renderer.render(fit.pose, AGENT)
    _, keep = fitter._mask(frame)
    assert (redrawn == frame).all(-1)[keep].all() and fitted_cov == pytest.approx(fit.plateau[0])
    assert fit.coverage == pytest.approx(float(np.median(fit.plateau)))
    assert abs(fit.coverage - cov) < 0.006 and np.ptp(fit.plateau) < 0.02
    assert fit.p_success == pytest.approx(float(np.mean(fit.plateau > 0.95)))


def test_same_frame_same_answer(fitter: RenderFit, near_threshold: Frame) -> None:
    frame, _ = near_threshold
    a, b = fitter.fit(frame), fitter.fit(frame.copy())
    assert a is not None and b is not None
    assert a.coverage == b.coverage and np.array_equal(a.plateau, b.plateau)


def test_frames_no_pose_draws_are_refused(fitter: RenderFit, near_threshold: Frame) -> None:
    frame, _ = near_threshold
    # a softened frame (as a world model's): not gym-pusht's exact colours
    soft = ((frame.astype(np.float32) * 0.9 + 12.7 + np.random.default_rng(0).normal(0, 2, frame.shape))
            .clip(0, 255).astype(np.uint8))
    assert not fitter.is_render(soft)
    # an exact render with a block-coloured square on the empty board: no block pose draws it
    odd = frame.copy()
    odd[10:14, 80:84] = frame[52, 43] if tuple(frame[52, 43]) != (255, 255, 255) else (119, 136, 153)
    quick = RenderFit(restarts=1, evals=40, walk=5)
    assert quick.is_render(odd) and quick.fit(odd) is None


def test_refine_coverage_touches_only_the_band(fitter: RenderFit, near_threshold: Frame) -> None:
    frame, cov = near_threshold
    frames = np.stack([frame, frame, frame])
    coverage, fitted = refine_coverage(frames, np.array([0.955, 0.5, 0.99]), fitter, band=0.012)
    assert fitted.tolist() == [True, False, False]
    assert coverage[1:].tolist() == pytest.approx([0.5, 0.99]) and abs(coverage[0] - cov) < 0.006
    assert coverage[0] <= 0.95  # the network's false success, corrected


def test_head_reports_render_fitted_frames(tmp_path: Path, near_threshold: Frame) -> None:
    torch.manual_seed(0)
    weights = save_coverage_net(build_coverage_net(), tmp_path / "w.safetensors")
    frame, cov = near_threshold
    soft = (frame.astype(np.float32) * 0.9 + 12.7).astype(np.uint8)
    frames = np.stack([frame, soft])[None]  # (1, 2, 96, 96, 3)
    # random weights put nothing near 0.95: a band of 1 sends every frame to the re-renderer
    head = ResNetIoUReward(weights=weights, render_fit_band=1.0)
    out = head(frames, RewardContext())
    assert out.info["render_fit"].tolist() == [[True, False]]
    assert abs(out.info["coverage"][0, 0] - cov) < 0.006 and not out.success[0, 0]
    off = ResNetIoUReward(weights=weights, render_fit=False, render_fit_band=1.0)(frames, RewardContext())
    assert not off.info["render_fit"].any()
    assert off.info["coverage"][0, 1] == pytest.approx(out.info["coverage"][0, 1])


def test_reward_heads_benchmark_times_the_render_fit(tmp_path: Path) -> None:
    from conftest import load_benchmark

    torch.manual_seed(0)
    weights = save_coverage_net(build_coverage_net(), tmp_path / "w.safetensors")
    head = ResNetIoUReward(weights=weights, render_fit_band=1.0)
    row = load_benchmark("reward_heads").time_render_fit(head, 1)
    assert row["head"] == "resnet_iou, render fit" and row["fitted"] == "1/1" and row["frames_per_s"] > 0
