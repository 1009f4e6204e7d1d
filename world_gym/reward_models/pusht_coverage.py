"""Labelled Push-T frames for the ``resnet_iou`` head, and the head's metrics.

Frames come from LeRobotDatasets written by the Push-T collector (:func:`load_coverage_frames`)
or are rendered on demand from random states by gym-pusht itself (:class:`RenderedCoverage`);
:func:`evaluate_coverage` gives coverage MAE and the success flag's precision/recall, and
:func:`evaluate_on_world_model` the same on frames a world model imagines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world_gym.assets import bundled_model_path
from world_gym.data.episodes import load_episodes
from world_gym.reward_models.render_fit import refine_coverage
from world_gym.reward_models.resnet_iou import PUSHT_SUCCESS_THRESHOLD, frames_to_input
from world_gym.world_model import WorldModel


class RenderedCoverage:
    """Frames of random Push-T states with their true coverage, rendered by gym-pusht.

    Args:
        near_goal: fraction of block poses drawn around the goal pose (log-uniform scales from
            0.5 to 40 px and 0.005 to 0.7 rad); the rest are uniform like gym-pusht's reset.
        boundary: fraction of frames whose coverage is drawn inside ``band`` (small offsets from
            the goal, redrawn until the coverage falls in the band): the frames that decide the
            success flag's precision and recall, rare in the other two draws.
        band: ``(low, high)`` coverage of the ``boundary`` frames.
        max_offset: largest position (px of the 512 board) and angle (rad) scales of the
            ``boundary`` draws; the defaults reach coverage down to about 0.85, wider ones reach
            lower bands.
        agent_near: fraction of frames whose agent is put 18-50 px (of 512) from the goal T's outline
            instead of anywhere, as when it has just pushed the block home.
    """

    def __init__(self, near_goal: float = 0.7, boundary: float = 0.0,
                 band: tuple[float, float] = (0.93, 0.97), max_offset: tuple[float, float] = (6.0, 0.06),
                 agent_near: float = 0.0) -> None:
        from gym_pusht.envs.pusht import pymunk_to_shapely

        from world_gym.envs.pusht.ground_truth import GOAL_POSE, make_pusht_env  # needs gym-pusht

        self.env = make_pusht_env().unwrapped
        self.env.reset(seed=0)
        self.goal_pose = GOAL_POSE
        self.near_goal = near_goal
        self.boundary = boundary
        self.band = band
        self.max_offset = max_offset
        self.agent_near = agent_near
        goal = self.env.get_goal_pose_body(self.goal_pose)
        self._goal_geom = pymunk_to_shapely(goal, self.env.block.shapes)  # the goal T, for agent_near

    def _agent_beside_goal(self, rng: np.random.Generator) -> np.ndarray:
        from shapely.geometry import Point

        while True:  # about a third of the draws land in the ring
            p = self.goal_pose[:2] + rng.uniform(-140, 140, size=2)
            if 18.0 <= self._goal_geom.distance(Point(p)) <= 50.0:
                return p

    def _place_block(self, pose: np.ndarray) -> None:
        # gym-pusht's reset_to_state sets the position before the angle, and pymunk rotates about the
        # centre of gravity, so the T lands off the asked pose; place its origin exactly instead.
        block = self.env.block
        block.angle = float(pose[2])
        origin = block.local_to_world((0, 0))
        block.position = (block.position[0] + pose[0] - origin[0], block.position[1] + pose[1] - origin[1])
        self.env.space.step(self.env.dt)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Render ``n`` states.

        Args:
            n: number of frames.
            rng: source of the states.

        Returns:
            ``(frames, coverage)``: uint8 ``(n, 96, 96, 3)`` and float32 ``(n,)``.
        """
        frames, coverage = [], []
        for _ in range(n):
            agent = rng.uniform(50, 450, size=2)
            if self.agent_near > 0 and rng.random() < self.agent_near:  # off: no draw, same frames as before
                agent = self._agent_beside_goal(rng)
            if self.boundary > 0 and rng.random() < self.boundary:  # no draw when off: same frames as before
                self._sample_in_band(agent, rng)
            elif rng.random() < self.near_goal:
                s_pos, s_ang = np.exp(rng.uniform(np.log(0.5), np.log(40.0))), np.exp(rng.uniform(np.log(0.005), np.log(0.7)))
                self.env.reset(options={"reset_to_state": np.concatenate([agent, self.goal_pose])})
                self._place_block(self.goal_pose + rng.normal(0.0, [s_pos, s_pos, s_ang]))
            else:
                block = np.array([rng.uniform(100, 400), rng.uniform(100, 400), rng.uniform(-np.pi, np.pi)])
                self.env.reset(options={"reset_to_state": np.concatenate([agent, block])})
            frames.append(self.env.get_obs())
            coverage.append(self.env._get_coverage())
        return np.stack(frames), np.asarray(coverage, np.float32)

    def _sample_in_band(self, agent: np.ndarray, rng: np.random.Generator, tries: int = 200) -> None:
        # Offsets of 0.2-6 px and 0.002-0.06 rad (the default max_offset) put coverage around
        # 0.85-1: about a third of the draws land in a 0.04-wide band at 0.95, so a few draws find one.
        self.env.reset(options={"reset_to_state": np.concatenate([agent, self.goal_pose])})
        for _ in range(tries):
            s_pos = np.exp(rng.uniform(np.log(0.2), np.log(self.max_offset[0])))
            s_ang = np.exp(rng.uniform(np.log(0.002), np.log(self.max_offset[1])))
            self._place_block(self.goal_pose + rng.normal(0.0, [s_pos, s_pos, s_ang]))
            if self.band[0] <= self.env._get_coverage() <= self.band[1]:
                return
        raise RuntimeError(f"no block pose with coverage in {self.band} after {tries} draws")


def load_coverage_frames(root: str | Path, max_frames: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read ``observation.image`` and ``observation.coverage`` of a LeRobotDataset root.

    Uses :func:`world_gym.data.episodes.load_episodes` (parquet read directly, decoded frames
    cached beside the dataset), far faster than indexing ``LeRobotDataset`` frame by frame.

    Args:
        root: dataset root (holding ``meta/info.json`` and ``data/``).
        max_frames: keep at most this many frames, drawn at random (all if None).
        seed: seed of that draw.

    Returns:
        ``(frames, coverage)``: uint8 ``(N, 96, 96, 3)`` and float32 ``(N,)``.
    """
    data = load_episodes(root, ("observation.coverage",), progress=False)
    coverage = np.asarray(data.extras["observation.coverage"], np.float32).reshape(-1)
    keep = np.arange(len(coverage))
    if max_frames is not None and max_frames < len(keep):
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_frames, replace=False))
    return np.asarray(data.frames[keep]), coverage[keep]


@torch.no_grad()
def evaluate_on_world_model(net: torch.nn.Module, model_dir: str, root: str | Path, episodes: int = 16,
                            horizon: int = 16, batch: int = 8, seed: int = 0,
                            render_fit: Any = None) -> dict[str, dict[str, float]]:
    """Coverage error on frames a world model imagines for held-out episodes' own actions.

    From each episode, two windows (its first ``horizon`` steps and its last, where the expert
    episodes reach the goal): the world model starts from the window's first true frame, takes the
    recorded actions, and the head's coverage of each imagined frame is compared with gym-pusht's
    coverage of the true frame at the same step. The head on the true frames is scored beside it.

    Args:
        net: coverage regressor.
        model_dir: a world model directory, Hub id or bundled name (e.g. ``"tiny-pusht"``).
        root: held-out LeRobotDataset root.
        episodes: episodes used (the first ones).
        horizon: imagined steps per window.
        batch: windows per rollout call.
        seed: noise seed of the rollouts.
        render_fit: passed to :func:`evaluate_coverage` for both sets of frames.

    Returns:
        ``{"world_model": metrics, "ground_truth": metrics}`` over the same steps (see
        :func:`evaluate_coverage`).
    """
    if not Path(model_dir).is_dir() and "/" not in str(model_dir):
        model_dir = str(bundled_model_path(str(model_dir)))  # a model shipped in the package, e.g. "tiny-pusht"
    model = WorldModel.from_pretrained(model_dir).eval()
    data = load_episodes(root, ("observation.coverage",), progress=False)
    ep = data.episode_index
    starts = []
    for e in np.unique(ep)[:episodes]:
        rows = np.flatnonzero(ep == e)
        if len(rows) > horizon:
            starts += sorted({int(rows[0]), int(rows[-1] - horizon)})
    if not starts:
        raise ValueError(f"no episode in {root} is longer than horizon={horizon}")
    actions = data.actions
    coverage = np.asarray(data.extras["observation.coverage"], np.float32).reshape(-1)
    imagined, true_frames, true_cov = [], [], []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(starts), batch):
        s = starts[i:i + batch]
        initial = np.asarray(data.frames[s])
        acts = np.stack([actions[j:j + horizon] for j in s])
        imagined.append(model.rollout(initial, acts, generator=gen).frames.reshape(-1, 96, 96, 3))
        steps = [j + k for j in s for k in range(1, horizon + 1)]
        true_frames.append(np.asarray(data.frames[steps]))
        true_cov.append(coverage[steps])
    cov = np.concatenate(true_cov)
    return {"world_model": evaluate_coverage(net, np.concatenate(imagined), cov, render_fit=render_fit),
            "ground_truth": evaluate_coverage(net, np.concatenate(true_frames), cov, render_fit=render_fit)}


def balanced_weights(coverage: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Sampling probabilities that give every coverage bin (zero coverage its own bin) equal mass.

    Args:
        coverage: ``(N,)`` labels in [0, 1].
        n_bins: bins of equal width over (0, 1].

    Returns:
        ``(N,)`` float64 probabilities summing to 1.
    """
    bins = np.where(coverage <= 1e-6, 0, 1 + np.minimum((coverage * n_bins).astype(int), n_bins - 1))
    counts = np.bincount(bins, minlength=n_bins + 1)
    w = 1.0 / counts[bins]
    return w / w.sum()


@torch.no_grad()
def evaluate_coverage(net: torch.nn.Module, frames: np.ndarray, coverage: np.ndarray, batch_size: int = 256,
                      threshold: float = PUSHT_SUCCESS_THRESHOLD,
                      sweep: tuple[float, ...] = (), render_fit: Any = None,
                      render_fit_band: float = 0.012) -> dict[str, Any]:
    """Coverage error and success-flag precision/recall of a network on labelled frames.

    Args:
        net: coverage regressor.
        frames: uint8 ``(N, 96, 96, 3)``.
        coverage: ``(N,)`` true coverage.
        batch_size: frames per forward pass.
        threshold: success is coverage above it, for truth and prediction alike.
        sweep: other decision thresholds for the predicted coverage (the truth stays at
            ``threshold``); their precision/recall go to ``result["sweep"]``.
        render_fit: a :class:`~world_gym.reward_models.render_fit.RenderFit`: score as
            ``ResNetIoUReward`` does, re-rendering the exact gym-pusht frames the network puts within
            ``render_fit_band`` of ``threshold`` (``result["render_fitted"]`` counts them).
        render_fit_band: see ``render_fit``.

    Returns:
        ``mae``, ``mae_covered`` (frames with true coverage > 0), ``precision``, ``recall``,
        ``n``, ``n_success`` (true successes); precision/recall are NaN when undefined.
    """
    was_training = net.training
    net.eval()
    pred = torch.cat([net(frames_to_input(frames[i:i + batch_size])).squeeze(1)
                      for i in range(0, len(frames), batch_size)]).clamp(0, 1).numpy()
    net.train(was_training)
    fitted = None
    if render_fit is not None:
        pred, fitted = refine_coverage(frames, pred, render_fit, render_fit_band, threshold,
                                       progress=lambda rows: tqdm(rows, desc="render fit", mininterval=30))
    err = np.abs(pred - coverage)
    ts = coverage > threshold

    def flag(decision: float) -> tuple[float, float]:
        ps = pred > decision
        tp = float(np.sum(ps & ts))
        return tp / ps.sum() if ps.any() else math.nan, tp / ts.sum() if ts.any() else math.nan

    precision, recall = flag(threshold)
    covered = coverage > 0
    result: dict[str, Any] = {
        "mae": float(err.mean()), "mae_covered": float(err[covered].mean()) if covered.any() else math.nan,
        "precision": precision, "recall": recall, "n": int(len(frames)), "n_success": int(ts.sum())}
    if fitted is not None:
        result["render_fitted"] = int(fitted.sum())
    if sweep:
        result["sweep"] = {f"{d:.3f}": dict(zip(("precision", "recall"), flag(d))) for d in sweep}
    return result
