"""A memoryless noisy Push-T expert reading frames: independent chunks from one frame, for planners.

A ranking planner draws many chunks from the same frame and executes one of them, so its proposal
must give a fresh, independent draw at every ``act(frame)`` and keep no plan between calls (which
:class:`~world_gym.policies.pusht_pixel_expert.PixelPushTExpert` does). :class:`PushTExpertProposal`
reads the state off the frame (:class:`~world_gym.envs.pusht.pixels.PushTFrameState`), picks one
push primitive of :class:`~world_gym.policies.pusht_expert.PushTExpert` (its best for that state
or, with probability ``noise / 100`` (at most 0.5), a random one), and follows it (the approach
around the block, the push, then holding still) for ``chunk_size`` steps in a private copy of
gym-pusht's physics, adding Gaussian noise of ``noise`` pixels to every target. The frame read and
the best primitive are computed once per frame, so many draws from one frame cost little more than
one. Acting alone, it is a stochastic base policy that replans from every frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from world_gym.envs.pusht.pixels import GOAL_POSE, PushTFrameState
from world_gym.policies.pusht_expert import PushTExpert, _PushSim


class PushTExpertProposal:
    """Independent noisy-expert chunks ``(chunk_size, 2)`` from a 96 x 96 frame (no privileged state).

    Args:
        noise: target noise std in pixels; ``noise / 100`` (at most 0.5) is the chance of a random primitive.
        chunk_size: targets per call.
        goal_pose: the task's goal (gym-pusht's fixed one).
    """

    def __init__(self, noise: float = 35.0, chunk_size: int = 8, goal_pose: np.ndarray = GOAL_POSE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.expert = PushTExpert(noise=noise)
        self.noise = float(noise)
        self.chunk_size = chunk_size
        self.goal_pose = np.asarray(goal_pose, np.float64)
        self.reader = PushTFrameState()
        self._sim = _PushSim()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.expert.reset(seed=seed)
        self.expert._rng = self.rng
        self._frame_key: bytes | None = None
        self._last_agent, self._last_block = np.array([256.0, 256.0]), self.goal_pose.copy()

    def _read(self, frame: np.ndarray) -> None:
        """State and best primitive of a new frame (what the frame does not show: the last frame's)."""
        state = self.reader.estimate(frame)
        agent = state.agent_pos if state.agent_pos is not None else self._last_agent
        block = state.block_pose if state.block_pose is not None else self._last_block
        self._agent, self._block = np.asarray(agent, np.float64), np.asarray(block, np.float64)
        self._last_agent, self._last_block = self._agent, self._block
        expert, p = self.expert, self.expert.random_primitive_prob
        expert.random_primitive_prob = 0.0
        expert._plan(self._agent, self._block, self.goal_pose)
        expert.random_primitive_prob = p
        self._best = (list(expert._waypoints), list(expert._pushes))
        self._frame_key = frame.tobytes()

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """A new random chunk ``(chunk_size, 2)`` (``(2,)`` when ``chunk_size`` is 1); ``info`` is ignored."""
        frame = np.asarray(observation)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"PushTExpertProposal expects a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        if frame.tobytes() != self._frame_key:
            self._read(frame)
        expert = self.expert
        if self.rng.random() < expert.random_primitive_prob:
            saved = expert.random_primitive_prob
            expert.random_primitive_prob = 1.0
            expert._plan(self._agent, self._block, self.goal_pose)
            expert.random_primitive_prob = saved
        else:
            expert._waypoints, expert._pushes = list(self._best[0]), list(self._best[1])
            expert._steps_on_waypoint = 0
        sim = self._sim.env
        sim.agent.position, sim.agent.velocity = tuple(self._agent), (0.0, 0.0)
        sim.block.angle = float(self._block[2])
        sim.block.position = (float(self._block[0]), float(self._block[1]))
        target = self._agent.copy()
        targets = []
        for _ in range(self.chunk_size):
            if expert._waypoints or expert._pushes:
                target = expert._next_target(np.array(sim.agent.position))
            noisy = np.clip(target + self.rng.normal(0.0, self.noise, size=2), 0.0, 512.0)
            targets.append(noisy)
            self._sim.step(noisy)
        out = np.stack(targets).astype(np.float32)
        return out if self.chunk_size > 1 else out[0]
