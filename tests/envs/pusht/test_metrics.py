"""world_gym.envs.pusht.metrics: skimage-compatible PSNR/SSIM, latent L2, Δ-PSNR, and Push-T objects read from real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world_gym.envs.pusht import metrics

# skimage 0.26.0: peak_signal_noise_ratio(b, a, data_range=255), structural_similarity(b, a,
# channel_axis=-1, data_range=255), and structural_similarity on OpenCV-grayscale frames.
SKIMAGE_REFERENCE = [
    (7.780243701090993, 0.03398968043143886, 0.05951442595232919),
    (38.131029809612464, 0.9884361136201524, 0.9956231666430112),
    (9.051322726332536, 0.02688628358773379, 0.036638619318118515),
]


def reference_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic 32 x 40 RGB images (formulas, not a random generator, so the values above hold)."""
    i, j, c = np.meshgrid(np.arange(32), np.arange(40), np.arange(3), indexing="ij")
    a = ((i * 7 + j * 13 + c * 31) % 256).astype(np.uint8)
    b = ((i * i + 3 * j + c * 17) * 5 % 256).astype(np.uint8)
    smooth = (127 + 100 * np.sin(i / 5.0 + c) * np.cos(j / 7.0)).astype(np.uint8)
    noisy = np.clip(smooth.astype(int) + ((i * 31 + j * 17 + c * 7) % 11) - 5, 0, 255).astype(np.uint8)
    return [(a, b), (smooth, noisy), (a, smooth)]


@pytest.mark.parametrize("index", range(3))
def test_psnr_ssim_match_skimage_reference(index: int) -> None:
    pred, true = reference_pairs()[index]
    want_psnr, want_ssim, want_gray = SKIMAGE_REFERENCE[index]
    assert metrics.psnr(pred, true) == pytest.approx(want_psnr, abs=1e-9)
    assert metrics.ssim(pred, true) == pytest.approx(want_ssim, abs=1e-9)
    assert metrics.ssim(pred, true, gray=True) == pytest.approx(want_gray, abs=1e-9)
    assert metrics.ssim(pred.astype(np.float64), true.astype(np.float64)) == pytest.approx(want_ssim, abs=1e-9)


def test_psnr_ssim_match_installed_skimage() -> None:
    skm = pytest.importorskip("skimage.metrics")
    for pred, true in reference_pairs():
        assert metrics.psnr(pred, true) == pytest.approx(skm.peak_signal_noise_ratio(true, pred, data_range=255))
        want = skm.structural_similarity(true, pred, channel_axis=-1, data_range=255)
        assert metrics.ssim(pred, true) == pytest.approx(want, abs=1e-9)


def test_gray_is_opencv_grayscale() -> None:
    cv2 = pytest.importorskip("cv2")
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(metrics._to_gray(frame)[..., 0], cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))


def test_psnr_ssim_per_frame_shapes_and_edge_cases() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    pred = true + np.uint8(1)
    np.testing.assert_allclose(metrics.psnr(pred, true), 10 * np.log10(255.0**2), rtol=1e-12)
    assert metrics.ssim(pred, true).shape == (2, 3)
    assert np.isinf(metrics.psnr(true, true)).all()
    np.testing.assert_allclose(metrics.ssim(true, true), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(pred[:1], true)
    with pytest.raises(ValueError, match="at least 7"):
        metrics.ssim(true[..., :5, :5, :], true[..., :5, :5, :])


def test_latent_l2_is_irasim_mse_per_sequence() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, true = torch.randn(3, 4, 2, 5, 5, generator=gen), torch.randn(3, 4, 2, 5, 5, generator=gen)
    got = metrics.latent_l2(pred, true)
    want = [torch.nn.functional.mse_loss(pred[i], true[i]).item() for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_delta_psnr_zero_for_action_blind_model_positive_for_controllable() -> None:
    rng = np.random.default_rng(1)
    true = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    blind = np.clip(true.astype(int) + 20, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(metrics.delta_psnr(true, blind, blind), 0.0)
    close = np.clip(true.astype(int) + 2, 0, 255).astype(np.uint8)
    assert (metrics.delta_psnr(true, close, blind) > 0).all()


# --- Push-T objects on real gym-pusht frames ------------------------------------------------------

@pytest.fixture(scope="module")
def pusht_env():
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    env = make_pusht_env()
    yield env
    env.close()


def render(env, agent: tuple[float, float], block: tuple[float, float, float]) -> np.ndarray:
    obs, _ = env.reset(options={"reset_to_state": [*agent, *block]})
    return np.asarray(obs)


def test_segmentation_matches_simulator_geometry(pusht_env) -> None:
    shapely = pytest.importorskip("shapely")
    from gym_pusht.envs.pusht import pymunk_to_shapely

    yy, xx = np.mgrid[0:96, 0:96]
    centres = (np.stack([xx, yy], -1).reshape(-1, 2) + 0.5) * 512 / 96
    ious, errors = [], []
    for seed in range(6):
        obs, _ = pusht_env.reset(seed=seed)
        base = pusht_env.unwrapped
        polygon = pymunk_to_shapely(base.block, base.block.shapes)
        geometric = shapely.contains_xy(polygon, centres[:, 0], centres[:, 1]).reshape(96, 96)
        ious.append(metrics.mask_iou(metrics.block_mask(obs), geometric))
        errors.append(np.linalg.norm(metrics.agent_centroid(obs) * 512 / 96 - np.array(base.agent.position)))
    # edge pixels are half block, and the block's 2 px outline widens it a little: IoU is not 1
    assert min(ious) > 0.7 and np.mean(ious) > 0.8, ious
    assert max(errors) < 5.0, errors  # workspace pixels, i.e. < 1 frame pixel


def test_goal_is_not_block_and_identical_frames_score_perfectly(pusht_env) -> None:
    frame = render(pusht_env, (100, 100), (400, 400, 0.0))  # block far from the goal T
    labels = metrics.pusht_segment(frame)
    goal_colour = (frame == np.array([144, 238, 144], np.uint8)).all(-1)
    assert goal_colour.sum() > 100 and (labels[goal_colour] == metrics.GOAL).all()
    assert (labels == metrics.BLOCK).sum() > 100 and (labels == metrics.AGENT).sum() > 10
    assert metrics.block_iou(frame, frame) == 1.0
    assert metrics.agent_error(frame, frame) == 0.0


def test_shifted_agent_gives_its_distance(pusht_env) -> None:
    block = (300.0, 300.0, 0.5)
    a = render(pusht_env, (100.0, 120.0), block)
    b = render(pusht_env, (160.0, 200.0), block)  # 100 workspace px away
    assert metrics.agent_error(a, b) * 512 / 96 == pytest.approx(100.0, abs=4.0)
    assert metrics.block_iou(a, b) == 1.0  # the block did not move


def test_block_iou_falls_with_shift(pusht_env) -> None:
    agent = (60.0, 60.0)
    base = render(pusht_env, agent, (250.0, 250.0, 0.0))
    ious = [metrics.block_iou(render(pusht_env, agent, (250.0 + dx, 250.0, 0.0)), base) for dx in (0, 8, 24, 200)]
    assert ious[0] == 1.0 and ious[0] > ious[1] > ious[2] > ious[3]
    assert ious[3] == 0.0


def test_agent_error_is_nan_without_agent() -> None:
    white = np.full((2, 96, 96, 3), 255, np.uint8)
    assert np.isnan(metrics.agent_error(white, white)).all()
    assert (metrics.block_iou(white, white) == 1.0).all()  # both empty: nothing to get wrong


def test_palette_labels_are_the_segmentation_without_its_table() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    palette = np.array([rgb for rgb, _ in metrics.PUSHT_PALETTE], np.uint8)
    pixels[0, :7] = palette[:, None]  # the exact palette colours too
    np.testing.assert_array_equal(metrics.palette_labels(pixels), metrics.pusht_segment(pixels))
    assert metrics.palette_labels(pixels[0, :7, 0]).tolist() == [label for _, label in metrics.PUSHT_PALETTE]


def test_block_centre_error_ignores_a_passing_agent_and_reads_a_shift(pusht_env) -> None:
    block = (250.0, 250.0, 0.0)  # the bar spans x 190-310, y 250-280
    far = render(pusht_env, (60.0, 60.0), block)
    beside = render(pusht_env, (173.0, 265.0), block)  # 2 px off the bar's end: their edge pixels meet
    plain = np.linalg.norm(metrics.mask_centroid(metrics.block_mask(far))
                           - metrics.mask_centroid(metrics.block_mask(beside)))
    assert plain > 0  # the plain centre of the block's pixels moves with the agent
    assert metrics.block_centre_error(far, beside) == 0.0  # this one does not
    for dx in (16.0, 48.0):
        shifted = render(pusht_env, (60.0, 60.0), (250.0 + dx, 250.0, 0.0))
        assert metrics.block_centre_error(shifted, far) * 512 / 96 == pytest.approx(dx, abs=1.5)
        assert metrics.block_centre_error(shifted, beside) > 0
    white = np.full((96, 96, 3), 255, np.uint8)
    assert np.isnan(metrics.block_centre_error(white, far))
