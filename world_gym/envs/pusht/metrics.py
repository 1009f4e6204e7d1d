"""Fidelity metrics of imagined videos against ground truth: pixels, latents, controllability, Push-T objects.

Conventions (all functions take frames as uint8 arrays ``(..., H, W, 3)`` and return one value per
frame, so callers choose how to average; the fidelity benchmark averages per frame, then per
sequence, then over sequences, as IRASim's evaluation scripts do):

- :func:`psnr` is ``skimage.metrics.peak_signal_noise_ratio(true, pred, data_range=255)`` on the
  RGB frame: ``10 log10(255^2 / MSE)`` with the MSE over all pixels and channels in float64.
  Identical frames give ``inf``, as in skimage.
- :func:`ssim` is ``skimage.metrics.structural_similarity(true, pred, channel_axis=-1,
  data_range=255)`` with skimage's defaults: a uniform 7 x 7 window, sample covariance
  (``N / (N - 1)``), ``K1 = 0.01``, ``K2 = 0.03``, the SSIM map averaged over the window centres
  that lie ``3`` pixels inside the border, then over the three channels. (IRASim's
  ``compute_psnr_ssim.py`` calls the same function on OpenCV grayscale frames; ``gray=True``
  reproduces that variant.)
- :func:`latent_l2` is IRASim's ``compute_latent_l2``: ``F.mse_loss(pred, true)`` over the
  generated frames of one sequence (the conditioning frame excluded), i.e. a mean squared error.
- :func:`delta_psnr` is the controllability measure of Genie and HMA:
  ``PSNR(x_t, x̂_t) - PSNR(x_t, x̂'_t)`` where ``x̂`` is generated with the true actions and ``x̂'``
  with random ones.
- :func:`block_iou` and :func:`agent_error` read Push-T objects from pixels (see
  :func:`pusht_segment` for the colour model) and compare them between predicted and true frames.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_WINDOW = 7
_CHUNK = 64  # frames per batch of float64 work, to bound temporaries on long videos

# Push-T segmentation classes.
BACKGROUND, GOAL, BLOCK, AGENT = 0, 1, 2, 3
PUSHT_CLASSES = ("background", "goal", "block", "agent")

# gym-pusht's pure colours as they appear in its 96 x 96 frames (measured from rendered frames;
# they follow from pusht.py and pymunk_override.py): the canvas is white and the walls LightGray
# (211, blended towards white by the 512 -> 96 bilinear resize); the goal T is LightGreen; the block
# is LightSlateGray brightened by 1.2 inside (143, 163, 184) with a 2 px LightSlateGray outline; the
# agent is a RoyalBlue ring with a 1.2-brightened inside (78, 126, 255).
PUSHT_PALETTE: tuple[tuple[tuple[int, int, int], int], ...] = (
    ((255, 255, 255), BACKGROUND),
    ((211, 211, 211), BACKGROUND),
    ((144, 238, 144), GOAL),
    ((143, 163, 184), BLOCK),
    ((119, 136, 153), BLOCK),
    ((78, 126, 255), AGENT),
    ((65, 105, 225), AGENT),
)
PUSHT_WORKSPACE = 512.0
_PALETTE_RGB = np.array([rgb for rgb, _ in PUSHT_PALETTE], np.int32)
_PALETTE_LABEL = np.array([label for _, label in PUSHT_PALETTE], np.int8)


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {pred.shape} and {true.shape}")
    if pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"frames must be RGB arrays (..., H, W, 3), got shape {pred.shape}")
    return pred, true


def psnr(pred: np.ndarray, true: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each frame, in dB (skimage's ``peak_signal_noise_ratio``).

    Args:
        pred, true: frames ``(..., H, W, 3)`` (uint8, or floats on the scale of ``data_range``).
        data_range: the peak value range, 255 for uint8 frames.

    Returns:
        ``(...)`` float64 PSNR per frame; ``inf`` where the frames are identical.
    """
    pred, true = _check_pair(pred, true)
    x, y = pred.reshape(-1, int(np.prod(pred.shape[-3:]))), true.reshape(-1, int(np.prod(true.shape[-3:])))
    mse = np.concatenate([
        ((x[i : i + _CHUNK].astype(np.float64) - y[i : i + _CHUNK]) ** 2).mean(-1) for i in range(0, len(x), _CHUNK)
    ]) if len(x) else np.zeros(0)
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(data_range**2 / mse)).reshape(pred.shape[:-3])


def _to_gray(frames: np.ndarray) -> np.ndarray:
    # OpenCV's COLOR_RGB2GRAY on uint8, bit for bit: 0.299 R + 0.587 G + 0.114 B in 15-bit fixed point.
    f = frames.astype(np.int64)
    y = (f[..., 0] * 9798 + f[..., 1] * 19235 + f[..., 2] * 3735 + (1 << 14)) >> 15
    return y.astype(np.uint8)[..., None]


def _window_means(x: torch.Tensor, size: int) -> torch.Tensor:
    """Means over every ``size x size`` window lying wholly inside ``(N, C, H, W)``, as float64.

    These are exactly the window centres skimage keeps after cropping ``(size - 1) // 2`` pixels from
    each border. Sums of uint8 values and their products stay below 2^24, so a float32 ``x`` holding
    them is summed exactly (and several times faster than in float64).
    """
    w = x.shape[-1] - size + 1
    rows = x[..., :w].clone()
    for k in range(1, size):  # shifted adds beat unfold().sum() several times on CPU
        rows += x[..., k : k + w]
    h = x.shape[-2] - size + 1
    sums = rows[..., :h, :].clone()
    for k in range(1, size):
        sums += rows[..., k : k + h, :]
    return sums.double() / (size * size)


def ssim(
    pred: np.ndarray, true: np.ndarray, data_range: float = 255.0, gray: bool = False, device: str = "cpu"
) -> np.ndarray:
    """Structural similarity of each frame, as skimage's ``structural_similarity`` with defaults.

    Args:
        pred, true: frames ``(..., H, W, 3)`` with ``H, W >= 7``.
        data_range: 255 for uint8 frames.
        gray: compare OpenCV-style grayscale frames (IRASim's variant) instead of RGB channels.
        device: torch device for the window sums (float64 throughout).

    Returns:
        ``(...)`` float64 mean SSIM per frame (averaged over channels).
    """
    pred, true = _check_pair(pred, true)
    if gray:
        pred, true = _to_gray(pred), _to_gray(true)
    lead, (h, w, c) = pred.shape[:-3], pred.shape[-3:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"frames must be at least {SSIM_WINDOW} x {SSIM_WINDOW} for SSIM, got {h} x {w}")
    x_all = pred.reshape(-1, h, w, c)
    y_all = true.reshape(-1, h, w, c)
    exact32 = pred.dtype == np.uint8 and true.dtype == np.uint8
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)
    out = []
    for start in range(0, len(x_all), _CHUNK):
        dtype = np.float32 if exact32 else np.float64
        x = torch.from_numpy(np.moveaxis(x_all[start : start + _CHUNK], -1, 1).astype(dtype)).to(device)
        y = torch.from_numpy(np.moveaxis(y_all[start : start + _CHUNK], -1, 1).astype(dtype)).to(device)
        stats = _window_means(torch.cat([x, y, x * x, y * y, x * y], 1), SSIM_WINDOW)
        ux, uy, uxx, uyy, uxy = stats.split(c, dim=1)
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean(dim=(2, 3)).mean(dim=1).cpu().numpy())
    return np.concatenate(out).reshape(lead) if out else np.zeros(lead)


def latent_l2(pred_latents: torch.Tensor | np.ndarray, true_latents: torch.Tensor | np.ndarray) -> np.ndarray:
    """IRASim's latent L2: the mean squared error between latents, one value per sequence.

    Args:
        pred_latents, true_latents: ``(B, L, C, h, w)`` latents of the generated frames only (the
            conditioning frame excluded, as IRASim's ``pred_latent[1:]``), in the codec's scaled units.

    Returns:
        ``(B,)`` float64 mean squared error per sequence.
    """
    p = torch.as_tensor(pred_latents).detach().to("cpu", torch.float64)
    t = torch.as_tensor(true_latents).detach().to("cpu", torch.float64)
    if p.shape != t.shape or p.dim() < 2:
        raise ValueError(f"latents must be equal-shaped (B, ...), got {tuple(p.shape)} and {tuple(t.shape)}")
    return ((p - t) ** 2).flatten(1).mean(1).numpy()


def delta_psnr(true: np.ndarray, pred_true_actions: np.ndarray, pred_random_actions: np.ndarray) -> np.ndarray:
    """Controllability (Genie's and HMA's Δ-PSNR): PSNR with the true actions minus PSNR with random ones.

    A model that ignores its actions scores 0; the more the frames depend on the actions, the higher.
    Genie evaluates it at one step ``t`` (the last generated frame of a clip); pass that frame.

    Args:
        true: ground-truth frames ``(..., H, W, 3)``.
        pred_true_actions: frames generated from the same start with the recorded actions.
        pred_random_actions: frames generated from the same start (and the same sampler noise) with
            random actions.

    Returns:
        ``(...)`` Δ-PSNR in dB.
    """
    return psnr(pred_true_actions, true) - psnr(pred_random_actions, true)


@functools.lru_cache(maxsize=1)
def _palette_lookup() -> np.ndarray:
    # Label of every 24-bit colour (16 MiB, built once) so that segmenting a frame is one table lookup.
    # Squared distances split per channel, so each palette colour costs one broadcast sum.
    axis = np.arange(256, dtype=np.int32)
    best = np.full((256, 256, 256), np.iinfo(np.int32).max, np.int32)
    table = np.zeros((256, 256, 256), np.int8)
    for (r, g, b), label in PUSHT_PALETTE:
        dist = ((axis - r) ** 2)[:, None, None] + ((axis - g) ** 2)[None, :, None] + ((axis - b) ** 2)[None, None, :]
        closer = dist < best
        best[closer] = dist[closer]
        table[closer] = label
    return table.reshape(-1)


def pusht_segment(frames: np.ndarray) -> np.ndarray:
    """Label each pixel of Push-T frames as background, goal, block or agent by its nearest palette colour.

    gym-pusht draws flat colours, then shrinks the 512 x 512 canvas to 96 x 96 bilinearly, so every
    pixel is a pure :data:`PUSHT_PALETTE` colour or a blend of two (object edges). The nearest
    palette colour (Euclidean RGB) gives a blended edge pixel to the object that covers most of it.
    The block is drawn over the goal T, so where they overlap the frame shows the block; the goal
    colour is far from the block's (RGB distance 85), so goal pixels never count as block and a
    block/goal edge goes to whichever covers more. Imagined frames with drifting colours are read the
    same way: a pixel belongs to the object whose colour it is closest to.

    Args:
        frames: uint8 ``(..., H, W, 3)``.

    Returns:
        ``(..., H, W)`` int8 labels: :data:`BACKGROUND`, :data:`GOAL`, :data:`BLOCK`, :data:`AGENT`.
    """
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be RGB arrays (..., H, W, 3), got shape {frames.shape}")
    flat = frames.reshape(-1, 3)
    if flat.dtype != np.uint8:
        raise ValueError(f"Push-T segmentation reads uint8 frames, got {flat.dtype}")
    code = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    out = _palette_lookup()[code]
    return out.reshape(frames.shape[:-1])


def palette_labels(pixels: np.ndarray) -> np.ndarray:
    """:func:`pusht_segment`'s labels computed directly (nearest :data:`PUSHT_PALETTE` colour, the
    first one on a tie), for ``(..., 3)`` pixels: no 16 MiB lookup table to build (10 s), so the
    cheaper way for a few hundred pixels or a frame at a time."""
    pixels = np.asarray(pixels, np.int32)[..., None, :]
    return _PALETTE_LABEL[((pixels - _PALETTE_RGB) ** 2).sum(-1).argmin(-1)]


def block_mask(frames: np.ndarray) -> np.ndarray:
    """Boolean ``(..., H, W)`` mask of the visible T block in Push-T frames."""
    return pusht_segment(frames) == BLOCK


def mask_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Intersection over union of boolean masks ``(..., H, W)``; 1 where both are empty."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    inter = (pred & true).sum((-2, -1))
    union = (pred | true).sum((-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def block_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU of the T block's pixel masks between predicted and true Push-T frames, one value per frame."""
    pred, true = _check_pair(pred, true)
    return mask_iou(block_mask(pred), block_mask(true))


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    """Mean pixel centre ``(x, y)`` of boolean masks ``(..., H, W)``, shape ``(..., 2)``; ``nan`` where empty.

    Pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, so coordinates run from 0 to the frame's width.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape[-2:]
    count = mask.sum((-2, -1))
    xs = (mask * (np.arange(w) + 0.5)).sum((-2, -1))
    ys = (mask * (np.arange(h)[:, None] + 0.5)).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.stack([xs / count, ys / count], -1)
    centre[count == 0] = np.nan
    return centre


def agent_centroid(frames: np.ndarray) -> np.ndarray:
    """Centre ``(x, y)`` of the agent (blue disc) in frame pixels, ``(..., 2)``; ``nan`` where none is visible.

    The mean of the agent pixels' centres (see :func:`mask_centroid`). Multiply by ``512 / W`` for
    gym-pusht workspace units.
    """
    return mask_centroid(pusht_segment(frames) == AGENT)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``(..., H, W)`` boolean masks grown by ``pixels`` (4-neighbourhood steps)."""
    out = np.asarray(mask, bool).copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[..., 1:, :] |= out[..., :-1, :]
        grown[..., :-1, :] |= out[..., 1:, :]
        grown[..., :, 1:] |= out[..., :, :-1]
        grown[..., :, :-1] |= out[..., :, 1:]
        out = grown
    return out


def block_centre_error(pred: np.ndarray, true: np.ndarray, margin: int = 2) -> np.ndarray:
    """Distance in frame pixels between the block's centres in predicted and true Push-T frames.

    Each centre is the mean of the block's pixels (:func:`mask_centroid`) that lie more than ``margin``
    pixels from the agent in *either* frame, so an agent passing by (its blended edge pixels) moves
    neither centre: a block that stays put scores 0 whatever the agent does (an untouched block's
    drift); a block that moved reads somewhat less while the agent is at its side. Multiply by
    ``512 / W`` for gym-pusht workspace units.

    Returns:
        ``(...)`` float64; ``nan`` where either frame shows no block away from the agent.
    """
    pred, true = _check_pair(pred, true)
    labels_pred, labels_true = pusht_segment(pred), pusht_segment(true)
    free = ~_grow((labels_pred == AGENT) | (labels_true == AGENT), margin)
    centres = [mask_centroid((labels == BLOCK) & free) for labels in (labels_pred, labels_true)]
    return np.linalg.norm(centres[0] - centres[1], axis=-1)


def agent_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Distance in frame pixels between the agent centres of predicted and true frames.

    Returns:
        ``(...)`` float64; ``nan`` where either frame shows no agent (callers report how often).
    """
    pred, true = _check_pair(pred, true)
    return np.linalg.norm(agent_centroid(pred) - agent_centroid(true), axis=-1)
