"""Push-T coverage from pixels: a ResNet-18 regressor that reproduces gym-pusht's reward and success.

gym-pusht scores a state by *coverage*, the area of the T block inside the goal T divided by the
goal's area, and derives ``reward = clip(coverage / 0.95, 0, 1)`` and ``success = coverage > 0.95``.
A world model has no physics state, only frames, so this head regresses coverage from a 96x96 frame
with a torchvision ResNet-18 (built with ``weights=None``; trained from scratch by
``world-gym train-reward-head``) and applies gym-pusht's two formulas to the prediction.

Near the goal a second ResNet-18, the *refiner*, decides: where the whole-frame net predicts more
than ``gate`` coverage, the refiner reads a square around the goal T upsampled 2.4x (so the first
layers' strides do not blur away the sub-pixel edges that separate 0.945 from 0.955 coverage) and
predicts the offset from the success threshold in finer units (:class:`RefinedCoverageNet`).

The trained weights ship as ``world_gym/assets/reward_heads/resnet_iou_pusht.safetensors``
(fp16), with their card in ``docs/reward_heads.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from world_gym.envs.pusht.metrics import BLOCK, palette_labels
from world_gym.envs.pusht.pixels import (  # noqa: F401  (re-exported)
    GOAL_CROP,
    PUSHT_FRAME_SIZE,
    PUSHT_SUCCESS_THRESHOLD,
    coverage_to_reward,
)
from world_gym.reward_models.base import RewardContext, RewardHead, RewardOutput
from world_gym.reward_models.render_fit import RenderFit, refine_coverage


def goal_mask(size: int = PUSHT_FRAME_SIZE) -> np.ndarray:
    """``(size, size)`` bool: the pixels whose centres lie inside gym-pusht's goal T.

    The goal never moves: pose ``(256, 256, pi / 4)`` on the 512x512 board, a 120 x 30 bar with a
    30 x 90 stem below it. 200 of the 96x96 frame's pixels. The T is written out here rather than
    taken from ``world_gym.envs.pusht.pixels`` (``inside_tee(world_to_block(centres, GOAL_POSE))``): pixel
    (42, 42)'s centre lies exactly on the bar's top edge, and that computation rounds it inside (201
    pixels), where this one, which the goal check's figures were measured with, leaves it out.
    """
    rows, cols = np.mgrid[0:size, 0:size]
    world = np.stack([cols + 0.5, rows + 0.5], -1).reshape(-1, 2) * (512 / size) - 256.0
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    local = world @ np.array([[c, -s], [s, c]])  # rotate back by the goal's angle
    bar = (np.abs(local[:, 0]) <= 60) & (local[:, 1] >= 0) & (local[:, 1] <= 30)
    stem = (np.abs(local[:, 0]) <= 15) & (local[:, 1] >= 30) & (local[:, 1] <= 120)
    return (bar | stem).reshape(size, size)


def block_on_goal(frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the goal T's pixels that :func:`world_gym.envs.pusht.metrics.pusht_segment` labels block (the
    nearest gym-pusht colour is the block's), ``(N,)`` for uint8 ``(N, 96, 96, 3)`` frames. Computed
    directly for these 200 pixels, without ``pusht_segment``'s 16 MiB lookup table (10 s to build).

    gym-pusht draws the block over the goal, so in its frames coverage exceeds this by at most 0.016
    (three held-out sets, 108,300 frames; edge pixels blend colours). A frame whose goal shows white
    board, a blue agent or green instead of the block cannot be covered.
    """
    mask = goal_mask(frames.shape[1]) if mask is None else mask
    return (palette_labels(frames[:, mask]) == BLOCK).mean(1).astype(np.float32)


def default_weights_path() -> Path:
    """Where the shipped weights live, via the installed ``world_gym.assets`` package.

    Returns:
        The path of ``resnet_iou_pusht.safetensors`` (which may not exist).
    """
    import world_gym.assets

    return Path(world_gym.assets.__file__).resolve().parent / "reward_heads" / "resnet_iou_pusht.safetensors"


def build_coverage_net() -> nn.Module:
    """A torchvision ResNet-18 with one output (coverage), random init, nothing downloaded.

    Returns:
        The network; input ``(N, 3, 96, 96)`` float from :func:`frames_to_input`, output ``(N, 1)``.
    """
    return torchvision.models.resnet18(weights=None, num_classes=1)


class FP32Linear(nn.Linear):
    """A linear layer that stays in float32 under autocast: bf16 keeps 8 bits of mantissa, so a
    bf16 output near 0.95 moves in steps of 0.004, the size of the errors that flip success."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def crop_goal(x: torch.Tensor) -> torch.Tensor:
    """The refiner's input: the :data:`GOAL_CROP` square of ``(N, 3, 96, 96)`` input, bilinearly
    upsampled back to 96x96."""
    top, left, size = GOAL_CROP
    crop = x[:, :, top:top + size, left:left + size]
    out = F.interpolate(crop, size=(PUSHT_FRAME_SIZE, PUSHT_FRAME_SIZE), mode="bilinear", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


class RefinedCoverageNet(nn.Module):
    """Whole-frame coverage, refined near the goal by a second ResNet-18 on :func:`crop_goal`.

    Args:
        base: whole-frame regressor (:func:`build_coverage_net`).
        refiner: a ResNet-18 with one :class:`FP32Linear` output, predicting
            ``(coverage - center) * scale``.
        gate: the refiner decides where ``base`` predicts more than this.
        center, scale: the refiner's target units.

    Input ``(N, 3, 96, 96)`` from :func:`frames_to_input`, output ``(N, 1)`` coverage, as the base net.
    """

    def __init__(self, base: nn.Module, refiner: nn.Module, gate: float = 0.75, center: float = 0.95,
                 scale: float = 20.0) -> None:
        super().__init__()
        self.base, self.refiner = base, refiner
        self.gate, self.center, self.scale = gate, center, scale

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """The refiner's coverage ``(N,)`` of whole-frame input ``x``, whatever the base says."""
        return self.center + self.refiner(crop_goal(x)).float().squeeze(1) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.base(x).float()
        near = cov[:, 0] > self.gate
        if near.any():
            cov = cov.clone()
            cov[near, 0] = self.refine(x[near])
        return cov


def build_refiner(base: nn.Module | None = None) -> nn.Module:
    """The refiner's ResNet-18 (``weights=None``), its trunk copied from ``base`` when given
    (a start that already knows the board), with a fresh :class:`FP32Linear` output."""
    net = build_coverage_net()
    if base is not None:
        net.load_state_dict(base.state_dict())
    net.fc = FP32Linear(net.fc.in_features, 1)
    return net


def frames_to_input(frames: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` frames -> float ``(N, 3, H, W)`` in [-1, 1], channels-last in memory.

    Args:
        frames: uint8 RGB frames.
        device: where the tensor goes.

    Returns:
        The network input.
    """
    x = torch.as_tensor(frames).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)


def save_coverage_net(net: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write the network's weights as fp16 safetensors, with ``metadata`` as JSON in the header.

    Args:
        net: a network from :func:`build_coverage_net`, or a :class:`RefinedCoverageNet`.
        path: destination file.
        metadata: training facts to keep beside the weights (data, steps, metrics).

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in net.state_dict().items()}
    header = {"format": "pt", "arch": "torchvision.resnet18", "num_classes": "1",
              "input": f"uint8 RGB {PUSHT_FRAME_SIZE}x{PUSHT_FRAME_SIZE} -> x/127.5-1",
              "world_gym": json.dumps(metadata or {})}
    if isinstance(net, RefinedCoverageNet):
        header["arch"] = "torchvision.resnet18 x2 (base, goal-crop refiner)"
        header["refiner"] = json.dumps({"gate": net.gate, "center": net.center, "scale": net.scale,
                                        "goal_crop": list(GOAL_CROP)})
    save_file(state, str(path), metadata=header)
    return path


def load_coverage_net(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load weights written by :func:`save_coverage_net` into a float32 network in eval mode.

    Args:
        path: the safetensors file.
        device: where the network goes.

    Returns:
        ``(net, metadata)``; ``net`` is a :class:`RefinedCoverageNet` when the file holds a refiner.

    Raises:
        FileNotFoundError: the file does not exist; the message says how to train one.
        ValueError: the file is truncated or corrupt, or holds NaN or infinite weights (the
            message names the file and the tensors).
    """
    from safetensors import SafetensorError, safe_open

    from world_gym.model_files import read_weights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"resnet_iou weights not found at {path}. Train them with `world-gym train-reward-head "
            f"--train-root data/pusht/train --heldout-root data/pusht/heldout --export {path}` "
            f"or pass reward_model_kwargs={{'weights': '/path/to/resnet_iou.safetensors'}}."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_weights(path).items()}
    net: nn.Module
    if "refiner" in header:  # two stages: keys base.* and refiner.*
        refine = json.loads(header["refiner"])
        if tuple(refine["goal_crop"]) != GOAL_CROP:
            raise ValueError(f"{path} was trained on goal crop {refine['goal_crop']}, "
                             f"this code crops {GOAL_CROP}")
        net = RefinedCoverageNet(build_coverage_net(), build_refiner(), refine["gate"], refine["center"],
                                 refine["scale"])
    else:
        net = build_coverage_net()
    net.load_state_dict(state, strict=True)
    net.to(device).to(memory_format=torch.channels_last).eval()
    return net, json.loads(header.get("world_gym", "{}"))


class ResNetIoUReward(RewardHead):
    """gym-pusht's reward and success, computed from predicted coverage.

    Args:
        weights: safetensors file; default the shipped ``resnet_iou_pusht.safetensors``.
        device: where the network runs.
        batch_size: frames per forward pass.
        success_threshold: coverage above which a frame counts as success (gym-pusht: 0.95).
        render_fit: for frames the network scores within ``render_fit_band`` of the threshold and
            that gym-pusht drew itself (exact colours; a world model's frames are not), read coverage
            by re-rendering instead (:mod:`~world_gym.reward_models.render_fit`; needs gym-pusht,
            about 1.4 s of one core per such frame). Off where gym-pusht is not installed.
        render_fit_band: see ``render_fit``.
        goal_check: cap the predicted coverage at the block's share of the goal T's pixels
            (:func:`block_on_goal`) plus ``goal_check_margin``. The network learned gym-pusht's
            frames, where green missing from the goal means the block covers it; a world model that
            erases the goal (or smears it white or blue) gets no coverage for that.
        goal_check_margin: see ``goal_check``.

    Raises:
        FileNotFoundError: no weights at ``weights`` (or none shipped).

    ``info["coverage"]`` holds the predicted coverage, ``(B, T)`` float32, clipped to [0, 1],
    ``info["render_fit"]`` (bool, ``(B, T)``) marks the frames whose coverage came from re-rendering,
    and ``info["goal_capped"]`` those whose coverage the goal check lowered.
    """

    name = "resnet_iou"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        success_threshold: float = PUSHT_SUCCESS_THRESHOLD,
        render_fit: bool = True,
        render_fit_band: float = 0.012,
        goal_check: bool = True,
        goal_check_margin: float = 0.05,
    ) -> None:
        self.weights = Path(weights) if weights is not None else default_weights_path()
        self.net, self.metadata = load_coverage_net(self.weights, device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.success_threshold = success_threshold
        self.render_fit, self.render_fit_band = render_fit, render_fit_band
        self.goal_check, self.goal_check_margin = goal_check, goal_check_margin
        self._goal_mask = goal_mask()
        self._fitter: Any = None

    def to(self, device: str | torch.device) -> "ResNetIoUReward":
        """Move the network to ``device``."""
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def predict_coverage(self, frames: np.ndarray) -> np.ndarray:
        """Coverage of each frame.

        Args:
            frames: uint8 ``(N, 96, 96, 3)``.

        Returns:
            float32 ``(N,)`` in [0, 1].
        """
        return self._predict(frames)[0]

    @torch.no_grad()
    def _predict(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coverage ``(N,)``, which frames' coverage came from re-rendering ``(N,)`` and which the
        goal check lowered ``(N,)``."""
        out = [self.net(frames_to_input(frames[i:i + self.batch_size], self.device)).squeeze(1).float().cpu()
               for i in range(0, len(frames), self.batch_size)]
        cov = np.clip(torch.cat(out).numpy() if out else np.zeros(0, np.float32), 0.0, 1.0).astype(np.float32)
        capped = np.zeros(len(cov), bool)
        if self.goal_check and len(cov):
            cap = block_on_goal(frames, self._goal_mask) + self.goal_check_margin
            capped = cov > cap
            cov = np.where(capped, cap, cov).astype(np.float32)
        fitted = np.zeros(len(cov), bool)
        near = np.abs(cov - self.success_threshold) < self.render_fit_band
        if self.render_fit and near.any() and self._get_fitter() is not None:
            cov, fitted = refine_coverage(frames, cov, self._fitter, self.render_fit_band, self.success_threshold)
        return cov, fitted, capped & ~fitted

    def _get_fitter(self) -> Any:
        if self._fitter is None:
            try:
                self._fitter = RenderFit(threshold=self.success_threshold)
            except ImportError as e:  # gym-pusht (the renderer) is an optional dependency
                warnings.warn(f"resnet_iou: render_fit needs gym-pusht ({e}); using the network alone")
                self.render_fit = False
        return self._fitter

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        """Score ``(B, T, 96, 96, 3)`` uint8 frames.

        Args:
            frames: imagined (or real) Push-T frames.
            context: unused; coverage needs the frame alone.

        Returns:
            gym-pusht's reward and success per frame, predicted coverage in ``info["coverage"]``.
        """
        frames = np.asarray(frames)
        s = PUSHT_FRAME_SIZE
        if frames.ndim != 5 or frames.shape[2:] != (s, s, 3) or frames.dtype != np.uint8:
            raise ValueError(f"resnet_iou scores uint8 frames of shape (B, T, {s}, {s}, 3), "
                             f"got {frames.dtype} {frames.shape}")
        b, t = frames.shape[:2]
        coverage, fitted, capped = (x.reshape(b, t) for x in self._predict(frames.reshape(b * t, s, s, 3)))
        reward, success = coverage_to_reward(coverage, self.success_threshold)
        return RewardOutput(reward=reward, success=success,
                            info={"coverage": coverage, "render_fit": fitted, "goal_capped": capped})
