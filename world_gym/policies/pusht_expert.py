"""Scripted Push-T policies that read gym-pusht's privileged state: a pushing expert and random play.

:class:`PushTExpert` plans one *push primitive* at a time: a contact point on the T's outline, a push
direction and a push length. It scores every candidate by simulating it in a private copy of
gym-pusht's pymunk world (same bodies, same PD controller; the block is quasi-static because
gym-pusht's space damping of 0 removes all velocity each substep) and picks the one that brings the
T's corners closest to the goal's, minus a small price on the way to get there. It then walks the
agent around the block to the contact point and pushes. ``noise`` adds Gaussian noise (pixels) to
every target and, with probability ``noise / 100`` (at most 0.5), executes a random primitive
instead of the best, which gives the failures and recoveries a world model must also learn.

:class:`PushTPlay` draws smooth random motions: waypoints anywhere in the workspace or near the
block, followed at a random speed with low-pass smoothing and short pauses.

Both follow :class:`world_gym.policies.base.Policy`: ``act(observation, info)`` returns a ``(2,)``
absolute target in ``[0, 512]^2``. They need the ``info`` of gym-pusht's reset/step.

>>> from world_gym.envs.pusht.ground_truth import make_pusht_env
>>> env, expert = make_pusht_env(), PushTExpert()
>>> obs, info = env.reset(seed=0)
>>> expert.reset(seed=0)
>>> expert.act(obs, info).shape
(2,)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely.geometry as sg
from gym_pusht.envs.pusht import PushTEnv

from world_gym.envs.pusht.ground_truth import (
    AGENT_RADIUS,
    TEE_RECTANGLES,
    block_keypoints,
    block_local_to_world,
    goal_keypoints,
    read_state,
)

WORKSPACE = (20.0, 492.0)  # keep targets off the walls at 5 and 506

# Contact points on the T's outline (block-local) with their inward normals.
_CONTACTS: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = (
    *(((x, 0.0), (0.0, 1.0)) for x in (-50.0, -25.0, 0.0, 25.0, 50.0)),  # top of the bar
    *(((x, 30.0), (0.0, -1.0)) for x in (-50.0, -30.0, 30.0, 50.0)),  # underside of the bar
    ((-60.0, 15.0), (1.0, 0.0)),  # bar ends
    ((60.0, 15.0), (-1.0, 0.0)),
    *(((-15.0, y), (1.0, 0.0)) for y in (50.0, 80.0, 110.0)),  # stem sides
    *(((15.0, y), (-1.0, 0.0)) for y in (50.0, 80.0, 110.0)),
    ((0.0, 120.0), (0.0, -1.0)),  # stem foot
)


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _block_polygon(block_pose: np.ndarray) -> sg.Polygon:
    parts = [sg.Polygon(block_local_to_world(r, block_pose)) for r in TEE_RECTANGLES]
    return parts[0].union(parts[1])


@dataclass(frozen=True)
class PushPrimitive:
    """One push: start ``standoff`` behind ``contact`` (world), move along ``direction`` by ``length``."""

    contact: np.ndarray
    direction: np.ndarray
    length: float
    standoff: float = AGENT_RADIUS + 6.0

    @property
    def start(self) -> np.ndarray:
        """Where the agent waits before the push."""
        return self.contact - self.direction * self.standoff

    def targets(self, speed: float) -> list[np.ndarray]:
        """Per-step targets from the start to the end of the push, plus two steps of hold."""
        travel = self.standoff - AGENT_RADIUS + self.length
        n = int(np.ceil(travel / speed))
        steps = [self.start + self.direction * min((k + 1) * speed, travel) for k in range(n)]
        return steps + [steps[-1], steps[-1]]


class _PushSim:
    """gym-pusht's pymunk world without rendering, for scoring push primitives."""

    def __init__(self) -> None:
        self.env = PushTEnv(obs_type="state")
        self.env._setup()

    def place(self, agent_pos: np.ndarray, block_pose: np.ndarray, agent_vel: np.ndarray = (0.0, 0.0)) -> None:
        """Put the agent at ``agent_pos`` moving at ``agent_vel`` and the block at rest at ``block_pose``."""
        agent, block = self.env.agent, self.env.block
        agent.position = (float(agent_pos[0]), float(agent_pos[1]))
        agent.velocity = (float(agent_vel[0]), float(agent_vel[1]))
        block.angle = float(block_pose[2])  # angle before position: pymunk rotates about the CoG
        block.position = (float(block_pose[0]), float(block_pose[1]))
        block.velocity = (0.0, 0.0)
        block.angular_velocity = 0.0

    def rollout(self, agent_pos: np.ndarray, block_pose: np.ndarray, targets: list[np.ndarray]) -> np.ndarray:
        """Block pose after following ``targets`` (one per 10 Hz step) from rest at ``agent_pos``."""
        self.place(agent_pos, block_pose)
        for target in targets:
            self.step(target)
        block = self.env.block
        return np.array([*block.position, block.angle])

    def step(self, target: np.ndarray) -> None:
        """One 10 Hz step of gym-pusht's PD controller towards ``target`` from the current state."""
        env, agent = self.env, self.env.agent
        tx, ty = float(target[0]), float(target[1])
        for _ in range(int(1 / (env.dt * env.control_hz))):
            (px, py), (vx, vy) = agent.position, agent.velocity
            ax = env.k_p * (tx - px) - env.k_v * vx
            ay = env.k_p * (ty - py) - env.k_v * vy
            agent.velocity = (vx + ax * env.dt, vy + ay * env.dt)
            env.space.step(env.dt)


class PushTExpert:
    """Scripted pushing expert for gym-pusht (privileged state from ``info``).

    Args:
        noise: noise level in pixels: std of Gaussian noise on every target, and 100x the
            probability of executing a random primitive instead of the planned one. 0 is the expert.
        push_lengths: candidate push lengths in pixels.
        push_angles: candidate deviations (radians) of the push from the contact's inward normal.
        push_speed: target speed during a push, pixels per step.
        travel_cost: cost per pixel of the approach path, in keypoint-error pixels.
    """

    def __init__(
        self,
        noise: float = 0.0,
        push_lengths: tuple[float, ...] = (3.0, 8.0, 20.0, 45.0),
        push_angles: tuple[float, ...] = (0.0, -0.45, 0.45),
        push_speed: float = 12.0,
        travel_cost: float = 0.02,
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0 pixels, got {noise}")
        self.noise = float(noise)
        self.random_primitive_prob = min(0.5, self.noise / 100.0)
        self.push_lengths = push_lengths
        self.push_angles = push_angles
        self.push_speed = push_speed
        self.travel_cost = travel_cost
        self._sim = _PushSim()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the current plan; ``seed`` fixes the noise."""
        self._rng = np.random.default_rng(seed)
        self._waypoints: list[np.ndarray] = []  # approach, reached one by one
        self._pushes: list[np.ndarray] = []  # push targets, one per step
        self._planned_keypoints: np.ndarray | None = None
        self._steps_on_waypoint = 0

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """Next absolute target ``(2,)`` float32 for the agent.

        Args:
            observation: ignored (the expert reads privileged state).
            info: gym-pusht's info with ``pos_agent``, ``block_pose``, ``goal_pose``.

        Returns:
            Target in ``[0, 512]^2``.
        """
        if info is None:
            raise ValueError("PushTExpert needs gym-pusht's info dict (pos_agent, block_pose, goal_pose)")
        state = read_state(info)
        keypoints = block_keypoints(state.block_pose)
        moved = self._planned_keypoints is not None and np.abs(keypoints - self._planned_keypoints).max() > 3.0
        if not self._waypoints and not self._pushes or (self._waypoints and moved):
            self._plan(state.agent_pos, state.block_pose, state.goal_pose)
        target = self._next_target(state.agent_pos)
        if self.noise > 0:
            target = target + self._rng.normal(0.0, self.noise, size=2)
        return np.clip(target, 0.0, 512.0).astype(np.float32)

    def _next_target(self, agent_pos: np.ndarray) -> np.ndarray:
        while self._waypoints:
            waypoint = self._waypoints[0]
            tolerance = 4.0 if len(self._waypoints) == 1 else 20.0
            if np.linalg.norm(agent_pos - waypoint) > tolerance and self._steps_on_waypoint < 10:
                self._steps_on_waypoint += 1
                return waypoint
            self._waypoints.pop(0)
            self._steps_on_waypoint = 0
        return self._pushes.pop(0)

    def _candidates(self, block_pose: np.ndarray) -> list[PushPrimitive]:
        rotation = _rot(block_pose[2])
        out = []
        for (point, normal), angle, length in itertools.product(_CONTACTS, self.push_angles, self.push_lengths):
            contact = block_local_to_world(np.array([point]), block_pose)[0]
            direction = rotation @ _rot(angle) @ np.array(normal)
            out.append(PushPrimitive(contact, direction, length))
        return out

    def _plan(self, agent_pos: np.ndarray, block_pose: np.ndarray, goal_pose: np.ndarray) -> None:
        goal = goal_keypoints(goal_pose)
        obstacle = _block_polygon(block_pose)
        lo, hi = WORKSPACE
        candidates = [
            c for c in self._candidates(block_pose) if np.all((c.start >= lo) & (c.start <= hi))
        ]
        if not candidates:  # a block against a wall (or misread off the board): targets get clipped
            candidates = self._candidates(block_pose)
        if self._rng.random() < self.random_primitive_prob:
            best = candidates[self._rng.integers(len(candidates))]
        else:
            best, best_cost = candidates[0], np.inf
            for primitive in candidates:
                final = self._sim.rollout(primitive.start, block_pose, primitive.targets(self.push_speed))
                error = np.linalg.norm(block_keypoints(final) - goal, axis=1).mean()
                cost = error + self.travel_cost * np.linalg.norm(primitive.start - agent_pos)
                if cost < best_cost:
                    best, best_cost = primitive, cost
        self._waypoints = self._approach(agent_pos, best.start, obstacle)
        self._pushes = best.targets(self.push_speed)
        self._planned_keypoints = block_keypoints(block_pose)
        self._steps_on_waypoint = 0

    @staticmethod
    def _approach(agent_pos: np.ndarray, start: np.ndarray, obstacle: sg.Polygon) -> list[np.ndarray]:
        """Waypoints to ``start`` that go around the block instead of through it."""
        clearance = obstacle.buffer(AGENT_RADIUS + 3.0)
        if not sg.LineString([agent_pos, start]).intersects(clearance):
            return [start]
        ring = obstacle.convex_hull.buffer(AGENT_RADIUS + 25.0).exterior
        a, b = ring.project(sg.Point(agent_pos)), ring.project(sg.Point(start))
        forward = (b - a) % ring.length
        backward = (a - b) % ring.length
        span, sign = (forward, 1.0) if forward <= backward else (backward, -1.0)
        n = max(1, int(np.ceil(span / 50.0)))
        lo, hi = WORKSPACE
        points = [
            np.clip(np.array(ring.interpolate((a + sign * span * k / n) % ring.length).coords[0]), lo, hi)
            for k in range(n + 1)
        ]
        return [*points, start]


class PushTPlay:
    """Smooth random 'play' motions that sometimes hit the block.

    Args:
        block_prob: probability that a new waypoint lies near the block rather than anywhere.
        speed_range: range of target speeds (pixels per step) drawn per segment.
        pause_prob: probability of pausing a few steps on reaching a waypoint.
        smoothing: low-pass factor on the target velocity (0 = no smoothing).
    """

    def __init__(
        self,
        block_prob: float = 0.5,
        speed_range: tuple[float, float] = (4.0, 25.0),
        pause_prob: float = 0.15,
        smoothing: float = 0.7,
    ) -> None:
        self.block_prob = block_prob
        self.speed_range = speed_range
        self.pause_prob = pause_prob
        self.smoothing = smoothing
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start a new motion; ``seed`` makes it repeatable."""
        self._rng = np.random.default_rng(seed)
        self._target: np.ndarray | None = None
        self._velocity = np.zeros(2)
        self._waypoint: np.ndarray | None = None
        self._speed = 0.0
        self._pause = 0

    def _new_waypoint(self, block_pose: np.ndarray) -> None:
        lo, hi = WORKSPACE
        if self._rng.random() < self.block_prob:
            center = block_local_to_world(np.array([[0.0, 45.0]]), block_pose)[0]
            self._waypoint = np.clip(center + self._rng.normal(0.0, 45.0, size=2), lo, hi)
        else:
            self._waypoint = self._rng.uniform(lo, hi, size=2)
        self._speed = self._rng.uniform(*self.speed_range)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """Next absolute target ``(2,)`` float32.

        Args:
            observation: ignored.
            info: gym-pusht's info (agent and block positions).

        Returns:
            Target in ``[0, 512]^2``.
        """
        if info is None:
            raise ValueError("PushTPlay needs gym-pusht's info dict (pos_agent, block_pose)")
        state = read_state(info)
        if self._target is None:
            self._target = state.agent_pos.copy()
        if self._waypoint is None:
            self._new_waypoint(state.block_pose)
        if self._pause > 0:
            self._pause -= 1
            desired = np.zeros(2)
        else:
            offset = self._waypoint - self._target
            distance = np.linalg.norm(offset)
            if distance < self._speed:
                if self._rng.random() < self.pause_prob:
                    self._pause = int(self._rng.integers(1, 6))
                self._new_waypoint(state.block_pose)
            desired = offset / max(distance, 1e-6) * min(self._speed, distance)
        self._velocity = self.smoothing * self._velocity + (1.0 - self.smoothing) * desired
        self._target = np.clip(self._target + self._velocity, *WORKSPACE)
        return self._target.astype(np.float32)
