"""Push-T coverage read off an exact gym-pusht frame by re-rendering it (analysis by synthesis).

The ``resnet_iou`` networks read coverage to about 0.005 (standard deviation near the goal), and
near gym-pusht's 0.95 success threshold an error that size flips the success flag: a noisy expert
spends dozens of frames at 0.94-0.95 before its one success frame. A frame that gym-pusht itself
drew holds more than that. gym-pusht draws the board at 512x512 and shrinks it to 96x96, so a
frame is a deterministic function of the block pose and the agent: search the block pose until
gym-pusht's own renderer reproduces the frame pixel for pixel, then walk over the poses that
reproduce it (a plateau: block poses a fraction of a pixel apart draw the same frame) and take
their median coverage. Its flag, median > 0.95, is ``P(coverage > 0.95 | frame) > 0.5`` under a
uniform prior on the plateau: what ``benchmarks/coverage_oracle.py`` measures as the best any
reader of the frame can do, without the recorded state the oracle starts from.

It applies to exact renders only. :meth:`RenderFit.is_render` checks that most pixels around the
goal have gym-pusht's exact colours (a world model's frames do not), and a frame no pose reproduces
keeps the network's coverage. ``ResNetIoUReward`` calls :func:`refine_coverage` for the frames it
scores within ``band`` of the threshold; about 1.4 s of one CPU core per such frame.

>>> from world_gym.envs.pusht.ground_truth import GOAL_POSE, StateRenderer
>>> frame, cov = StateRenderer().render(GOAL_POSE + [3.0, -2.0, 0.01], np.array([120.0, 380.0]))
>>> fit = RenderFit().fit(frame)
>>> fit is not None and abs(fit.coverage - cov) < 0.01
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from world_gym.envs.pusht.pixels import GOAL_CROP, PUSHT_SUCCESS_THRESHOLD

#: gym-pusht's pusher disc: RoyalBlue, and the lighter fill pymunk_override draws inside it.
_AGENT_COLOURS = np.array([[65, 105, 225], [78, 126, 255]])
#: 96x96 pixels per 512x512 workspace pixel.
_SCALE = 96 / 512
#: Angle step per position step (rad per workspace px) of pose proposals: about the T's lever arm.
RAD_PER_PX = 1 / 60
#: Offsets from the goal pose (workspace px, px, rad) that restarts start from, best first.
_GRID = [np.array([dx, dy, da]) for dx in (-6, -3, 0, 3, 6) for dy in (-6, -3, 0, 3, 6)
         for da in (-0.04, -0.02, 0.0, 0.02, 0.04)]


@dataclass
class FitResult:
    """A block pose that reproduces a frame, and the coverages of the poses that do.

    Attributes:
        coverage: median coverage over the plateau walk: the head's coverage for the frame.
        p_success: fraction of the walk above the success threshold.
        pose: ``(x, y, angle)``, the pose the search found.
        plateau: coverages along the walk, ``(walk + 1,)``.
        evals: renders the search took (the walk's not counted).
    """

    coverage: float
    p_success: float
    pose: np.ndarray
    plateau: np.ndarray
    evals: int


class RenderFit:
    """Finds a block pose that gym-pusht renders into the given frame, and the coverage it implies.

    Args:
        restarts: searches until one reproduces the frame: the first from the goal pose, the others
            from the best of a 5x5x5 grid of poses around it (+-6 px, +-0.04 rad).
        evals: renders per search.
        walk: steps of the random walk over the poses that reproduce the frame.
        agent_margin: pixels (of 96) around the agent's estimated centre left out of the
            comparison: the agent is estimated from its blue pixels, not fitted.
        min_palette: fraction of the goal square's pixels that must have one of gym-pusht's
            exact colours for :meth:`is_render`.
        threshold: gym-pusht's success threshold.

    Each search is a (1+1) random search on the absolute pixel difference that accepts ties, so it
    crosses plateaus of identical frames; position steps at log-uniform scales below 4 (restarts: 3)
    workspace px, angle steps 1/60 rad per px (the T's lever arm). Each frame's random stream is
    seeded by its bytes: the same frame always gets the same answer.
    """

    def __init__(self, restarts: int = 5, evals: int = 400, walk: int = 200, agent_margin: float = 4.5,
                 min_palette: float = 0.85, threshold: float = PUSHT_SUCCESS_THRESHOLD) -> None:
        from world_gym.envs.pusht.ground_truth import GOAL_POSE, StateRenderer  # needs gym-pusht

        self.renderer = StateRenderer()
        self.goal_pose = np.asarray(GOAL_POSE, np.float64)
        self.restarts, self.evals, self.walk = restarts, evals, walk
        self.agent_margin, self.min_palette, self.threshold = agent_margin, min_palette, threshold
        # gym-pusht's colours: those of a reference frame with the block off the goal (board, walls,
        # goal, block fill and outline) and the agent in view
        ref, _ = self.renderer.render(self.goal_pose + [40.0, 30.0, 0.5], np.array([150.0, 150.0]))
        colours, counts = np.unique(ref.reshape(-1, 3), axis=0, return_counts=True)
        self.palette = {tuple(c) for c in colours[counts >= 3]} | {tuple(c) for c in _AGENT_COLOURS}

    def is_render(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` looks drawn by gym-pusht: most goal-square pixels in its exact colours."""
        top, left, size = GOAL_CROP
        crop = np.asarray(frame)[top:top + size, left:left + size].reshape(-1, 3)
        exact = sum(1 for c in map(tuple, crop) if c in self.palette)
        return exact >= self.min_palette * len(crop)

    def _mask(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The agent's estimated centre (workspace px) and the pixels the comparison keeps."""
        diff = np.abs(frame[:, :, None, :].astype(np.int32) - _AGENT_COLOURS).sum(-1).min(-1)
        ys, xs = np.nonzero(diff < 40)
        if len(xs) == 0:  # no agent in view: compare every pixel, put it off the board
            return np.array([-100.0, -100.0]), np.ones(frame.shape[:2], bool)
        centre = np.array([xs.mean(), ys.mean()])
        yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
        keep = (yy - centre[1]) ** 2 + (xx - centre[0]) ** 2 > self.agent_margin ** 2
        return (centre + 0.5) / _SCALE, keep

    def fit(self, frame: np.ndarray) -> FitResult | None:
        """Fit one uint8 ``(96, 96, 3)`` frame; None when no pose reproduces it."""
        frame = np.asarray(frame)
        seed = int.from_bytes(hashlib.blake2b(frame.tobytes(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        agent, keep = self._mask(frame)
        target = frame.astype(np.int16)

        def distance(pose: np.ndarray) -> tuple[float, float]:
            img, cov = self.renderer.render(pose, agent)
            return float((np.abs(img.astype(np.int16) - target).sum(-1) * keep).sum()), cov

        def search(pose: np.ndarray, value: float, cov: float,
                   scale: float) -> tuple[np.ndarray, float, float, int]:
            for k in range(self.evals):
                if value == 0:
                    return pose, value, cov, k
                s = scale * np.exp(rng.uniform(np.log(0.03), 0.0))
                proposal = pose + rng.normal(0.0, [s, s, s / 60])
                v, c = distance(proposal)
                if v <= value:  # ties too: the search must cross plateaus of identical frames
                    pose, value, cov = proposal, v, c
            return pose, value, cov, self.evals

        # first from the goal pose; where that stalls, from the best poses of a coarse grid around it
        best_pose, (best, cov) = self.goal_pose.copy(), distance(self.goal_pose)
        best_pose, best, cov, evals = search(best_pose, best, cov, 4.0)
        evals += 1
        if best > 0 and self.restarts > 1:
            grid = [self.goal_pose + offset for offset in _GRID]
            scored = [distance(p) for p in grid]
            evals += len(grid)
            for k in np.argsort([v for v, _ in scored], kind="stable")[:self.restarts - 1]:
                pose, value, c, n = search(grid[k], *scored[k], 3.0)
                evals += n
                if value < best:
                    best_pose, best, cov = pose, value, c
                if best == 0:
                    break
        if best > 0:
            return None

        # the plateau: every pose that draws the frame (the comparison's distance 0)
        def on_frame(pose: np.ndarray) -> tuple[bool, float]:
            v, c = distance(pose)
            return v == 0, c

        plateau = walk_plateau(best_pose, cov, on_frame, self.walk, rng)
        return FitResult(coverage=float(np.median(plateau)),
                         p_success=float(np.mean(plateau > self.threshold)),
                         pose=best_pose, plateau=plateau, evals=evals)


def walk_plateau(pose: np.ndarray, coverage: float, on_frame: Callable[[np.ndarray], tuple[bool, float]],
                 n: int, rng: np.random.Generator, scales: tuple[float, float] = (0.02, 0.5),
                 rad_per_px: float = RAD_PER_PX) -> np.ndarray:
    """Coverages along an ``n``-step random walk over the poses that draw a frame, from ``pose``
    (which does, with ``coverage``): uniform over that connected set of poses.

    Metropolis with a symmetric proposal (position offsets at log-uniform ``scales`` of workspace
    px, angle ``rad_per_px`` times that): a step that ``on_frame(pose) -> (draws the frame,
    coverage)`` refuses is not taken and the walk stays. Returns ``(n + 1,)`` coverages.
    """
    pose, chain = np.asarray(pose, np.float64), [coverage]
    for _ in range(n):
        s = np.exp(rng.uniform(np.log(scales[0]), np.log(scales[1])))
        proposal = pose + rng.normal(0.0, [s, s, s * rad_per_px])
        same, c = on_frame(proposal)
        if same:
            pose, coverage = proposal, c
        chain.append(coverage)
    return np.asarray(chain)


def refine_coverage(frames: np.ndarray, coverage: np.ndarray, fitter: RenderFit, band: float = 0.012,
                    threshold: float = PUSHT_SUCCESS_THRESHOLD,
                    progress: Callable[[Any], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace the coverage of exact renders near the threshold by :meth:`RenderFit.fit`'s.

    Args:
        frames: uint8 ``(N, 96, 96, 3)``.
        coverage: ``(N,)`` a network's coverage for them.
        fitter: the re-renderer.
        band: frames with ``|coverage - threshold| < band`` are re-rendered.
        threshold: gym-pusht's success threshold.
        progress: wraps the iteration over candidate frames (e.g. ``tqdm``).

    Returns:
        ``(coverage, fitted)``: a float32 copy with the fitted frames' coverage replaced, and a bool
        ``(N,)`` mask of those frames.
    """
    coverage = np.array(coverage, np.float32)
    fitted = np.zeros(len(coverage), bool)
    rows = np.flatnonzero(np.abs(coverage - threshold) < band)
    for i in (progress(rows) if progress else rows):
        if not fitter.is_render(frames[i]):
            continue
        result = fitter.fit(frames[i])
        if result is not None:
            coverage[i], fitted[i] = result.coverage, True
    return coverage, fitted
