"""The scripted Push-T expert acting from pixels: a state estimate read off the 96x96 frame, then
:class:`~world_gym.policies.pusht_expert.PushTExpert`'s planning on that estimate.

The zoo's other strong policies are open-loop replays, which never look at the frames; its learned
image policies all fail in gym-pusht. :class:`PixelPushTExpert` is a closed-loop image policy that
succeeds: it sees only what a world model renders, so in a world model it reacts to the imagined
block (and to a smeared or vanished one), as a learned visual policy would.

:class:`~world_gym.envs.pusht.pixels.PushTFrameState` reads the state: the agent pixels' centroid,
and the pose ``(x, y, angle)`` of a rigid T fitted to the pixels of the block's colour. What a frame
does not show (no block, no agent) comes from the previous chunk's prediction.

Between frames the policy acts in chunks: it runs the expert forward in a private copy of
gym-pusht's physics from the estimated state (the expert's own planning model), so a chunk of
``chunk_size`` targets costs one frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from world_gym.envs.pusht.pixels import GOAL_POSE, FrameState, PushTFrameState
from world_gym.policies.pusht_expert import PushTExpert, _PushSim


class PixelPushTExpert:
    """:class:`PushTExpert` on the state :class:`PushTFrameState` reads off the observation frame.

    Args:
        noise: the expert's noise level (pixels of target noise; ``noise / 100`` chance of a random
            push), as :class:`PushTExpert`.
        chunk_size: targets per frame; the expert runs on in a private physics copy in between.
        goal_pose: the task's goal (gym-pusht's fixed one).
    """

    def __init__(self, noise: float = 0.0, chunk_size: int = 8, goal_pose: np.ndarray = GOAL_POSE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.expert = PushTExpert(noise=noise)
        self.reader = PushTFrameState()
        self.chunk_size = chunk_size
        self.goal_pose = np.asarray(goal_pose, np.float64)
        self._sim = _PushSim()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset(seed=seed)
        self._agent: np.ndarray | None = None
        self._block: np.ndarray | None = None
        self._velocity = np.zeros(2)
        self.last_state: FrameState | None = None

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """``(chunk_size, 2)`` targets (``(2,)`` when ``chunk_size`` is 1) from a uint8 frame; ``info``
        is ignored (no privileged state)."""
        frame = np.asarray(observation)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"PixelPushTExpert expects a uint8 (H, W, 3) frame, got {frame.dtype} "
                             f"{frame.shape}")
        state = self.reader.estimate(frame)
        self.last_state = state
        # what the frame does not show, the previous chunk's prediction stands in for
        agent = state.agent_pos if state.agent_pos is not None else self._agent
        block = state.block_pose if state.block_pose is not None else self._block
        if agent is None:
            agent = np.array([256.0, 256.0])
        if block is None:
            block = self.goal_pose.copy()
        self._sim.place(agent, block, self._velocity)
        sim = self._sim.env
        targets = []
        for _ in range(self.chunk_size):
            now = {"pos_agent": np.array(sim.agent.position), "goal_pose": self.goal_pose,
                   "block_pose": np.array([*sim.block.position, sim.block.angle])}
            target = self.expert.act(None, now)
            targets.append(target)
            self._sim.step(target)
        self._agent = np.array(sim.agent.position)
        self._block = np.array([*sim.block.position, sim.block.angle])
        self._velocity = np.array(sim.agent.velocity)
        out = np.stack(targets).astype(np.float32)
        return out if self.chunk_size > 1 else out[0]
