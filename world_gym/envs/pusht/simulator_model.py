"""gym-pusht itself as a planner's model: the upper bound of a perfect Push-T world model.

:class:`PushTSimulator` imagines candidates in gym-pusht's own physics (the same pymunk bodies,
walls and PD controller as ``gym_pusht/PushT-v0``): the true state is copied into the simulator once
per candidate, which then follows the candidate's actions. Its latents are the pose tokens the Push-T
pose world models imagine (``token_scale * (agent x, y, block x, y, cos, sin)``, positions in
``[-1, 1]`` for ``[0, 512]``), so one objective
(:class:`~world_gym.reward_models.pusht_latent_coverage.PushTLatentCoverage`) scores both, and the
gap between a planner in a world model and the same planner here is the world model's error.

A frame does not hold the true state (the agent's velocity, the block's exact pose), so
``start(frame, info)`` reads it from ``info``: gym-pusht's ``pos_agent``, ``vel_agent`` and
``block_pose``, which gym-pusht's ``reset`` and ``step`` return. A planner with this model must be
called as ``planner.act(frame, info)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from world_gym.envs.pusht.ground_truth import StateRenderer
from world_gym.envs.pusht.pixels import WORKSPACE_SIZE
from world_gym.planning.imagination import ImaginationModel, Imagined, Start, check_actions, check_decode
from world_gym.policies.pusht_expert import _PushSim

TOKEN_SCALE = 4.0  # the shipped pose models' token_scale


class PushTSimulator(ImaginationModel):
    """``K`` copies of the true gym-pusht state, each stepped through one candidate.

    Args:
        token_scale: scale of the pose tokens it returns as latents.
        max_horizon: the longest sequence accepted (None: any).

    >>> from world_gym.envs.pusht.ground_truth import make_pusht_env
    >>> frame, info = make_pusht_env().reset(seed=0)
    >>> sim = PushTSimulator()
    >>> out = sim.imagine(sim.start(frame, info), np.full((3, 4, 2), 256.0, np.float32))
    >>> tuple(out.latents.shape)
    (3, 4, 6, 1, 1)
    """

    needs_state = True

    def __init__(self, token_scale: float = TOKEN_SCALE, max_horizon: int | None = None) -> None:
        super().__init__()
        self.token_scale = float(token_scale)
        self.max_horizon = max_horizon
        self.action_low = np.zeros(2, np.float32)
        self.action_high = np.full(2, WORKSPACE_SIZE, np.float32)
        self._sim = _PushSim()
        self._renderer: StateRenderer | None = None

    def start(self, frame: np.ndarray, info: dict[str, Any] | None = None) -> Start:
        """The true state from gym-pusht's ``info`` (``pos_agent``, ``vel_agent``, ``block_pose``).

        Raises:
            ValueError: ``info`` lacks the state (the planner was called as ``act(frame)`` alone, or
                from an env that does not report gym-pusht's privileged state).
        """
        info = dict(info or {})
        missing = [k for k in ("pos_agent", "block_pose") if k not in info]
        if missing:
            raise ValueError(f"the real-simulator model needs the true state: call planner.act(frame, info) with "
                             f"gym-pusht's info; missing {missing}")
        state = (np.asarray(info["pos_agent"], np.float64), np.asarray(info.get("vel_agent", np.zeros(2)), np.float64),
                 np.asarray(info["block_pose"], np.float64))
        return Start(frame=np.asarray(frame), latent=self._tokens(np.concatenate([state[0], state[2]])[None])[0],
                     payload=state, info=info)

    def _tokens(self, states: np.ndarray) -> torch.Tensor:
        """States ``(..., 5)`` (agent x, y, block x, y, angle; pixels, radians) -> tokens ``(..., 6, 1, 1)``."""
        half = WORKSPACE_SIZE / 2
        pos = states[..., :4] / half - 1.0
        tokens = np.concatenate([pos, np.cos(states[..., 4:5]), np.sin(states[..., 4:5])], axis=-1)
        return torch.from_numpy(self.token_scale * tokens).float()[..., None, None]

    def imagine(self, start: Start, actions: np.ndarray, decode: str = "none",
                generator: torch.Generator | None = None) -> Imagined:
        """Step a copy of the true state through each candidate ``(K, H, 2)`` (no noise: ``generator``
        is ignored)."""
        acts = check_actions(actions, 2)
        check_decode(decode)
        self.check_horizon(acts.shape[1])
        agent_pos, agent_vel, block_pose = start.payload
        env = self._sim.env
        states = np.zeros((*acts.shape[:2], 5))
        for k, candidate in enumerate(acts):
            env.agent.position = (float(agent_pos[0]), float(agent_pos[1]))
            env.agent.velocity = (float(agent_vel[0]), float(agent_vel[1]))
            env.block.angle = float(block_pose[2])  # angle first: pymunk turns the body about its CoG
            env.block.position = (float(block_pose[0]), float(block_pose[1]))
            env.block.velocity, env.block.angular_velocity = (0.0, 0.0), 0.0
            for t, target in enumerate(candidate):
                self._sim.step(target)
                states[k, t] = (*env.agent.position, *env.block.position, env.block.angle)
        self._count(acts)
        latents = self._tokens(states)
        frames = None
        if decode != "none":
            frames = self.decode(latents if decode == "all" else latents[:, -1:])
        return Imagined(latents=latents, frames=frames)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Pose tokens ``(..., 6, 1, 1)`` -> gym-pusht's own frames ``(..., 96, 96, 3)``."""
        if self._renderer is None:
            self._renderer = StateRenderer()
        flat = latents.double().numpy().reshape(-1, 6) / self.token_scale
        half = WORKSPACE_SIZE / 2
        frames = [self._renderer.render(np.array([(x + 1) * half, (y + 1) * half, np.arctan2(s, c)]),
                                        np.array([(ax + 1) * half, (ay + 1) * half]))[0]
                  for ax, ay, x, y, c, s in flat]
        return np.stack(frames).reshape(*latents.shape[:-3], *frames[0].shape)
