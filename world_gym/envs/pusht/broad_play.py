"""Broad training behaviours of gym-pusht: contact-rich play, pushes from every side, wall contacts,
planner candidates, hovering at the block and uniform random targets.

The shipped Push-T world models first learned from a narrow mix (a scripted expert, its noisy
copies, smooth play, learned policies' rollouts); a world model meets much more in a planner's
candidates and in policies it never saw. These families widen the training data. They are built
apart from the stress families of :mod:`world_gym.envs.pusht.behaviours` (other generators, other
seeds: the collector's ``train`` split), so the stress set stays a set of behaviours never trained on.

==================  ====  ==================================================================
family              code  what the agent does
==================  ====  ==================================================================
``random_targets``  4     uniform random targets on the whole action box, held 1-12 steps,
                          or glided to at 5-60 px a step
``contact_play``    5     goes to random points in and around the block (its own frame), at
                          3-30 px a step, holds a moment; now and then elsewhere on the board
``side_push``       6     from a random point of the outline, pushes inwards along the normal
                          (+-35 degrees) by 10-90 px at 3-20 px a step, backs off, goes round
``wall_contact``    7     pushes the block to a random point near a wall or corner, aimed off
                          its centre so that it turns, and keeps pressing there
``candidates``      8     the scripted expert with a smooth random offset redrawn every 16
                          steps (0-100 px): the chunks a sampling planner tries
``hover``           9     moves along rings 8 px inside to 25 px outside the block's outline,
                          pausing: near the block, now touching it, now not
``fast_play``       17    ``contact_play`` at 15-60 px a step: contacts as fast as the action
                          box allows a push (the other families push at 3-30)
==================  ====  ==================================================================

The ``--mix`` group ``broad`` is the first six (codes 4-9); ``fast_play`` is collected on its own.

Every policy acts from gym-pusht's privileged ``info`` and is deterministic given ``reset(seed=...)``.

>>> policy = make_broad_policy("side_push")
>>> policy.reset(seed=0)
>>> info = {"pos_agent": [100.0, 100.0], "vel_agent": [0.0, 0.0], "block_pose": [256.0, 256.0, 0.0]}
>>> policy.act(None, info).shape
(2,)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from world_gym.envs.pusht.behaviours import (
    AGENT_RADIUS,
    BOARD,
    BROAD_FAMILIES,
    INNER,
    PUSH,
    StressPolicy,
    around_block,
    block_centre,
    block_polygon,
)

__all__ = ["BROAD_FAMILIES", "make_broad_policy"]

_T_BOX = (np.array([-60.0, 0.0]), np.array([60.0, 120.0]))  # the T's bounding box, block-local pixels


def _outline_point(pose: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """The point at arc length fraction ``s`` of the block's outline and the outward unit normal there."""
    from shapely.geometry import Point

    polygon = block_polygon(pose)
    outline = polygon.exterior
    at = s * outline.length
    point = np.array(outline.interpolate(at).coords[0])
    tangent = np.array(outline.interpolate(at + 1.0).coords[0]) - np.array(outline.interpolate(at - 1.0).coords[0])
    normal = np.array([tangent[1], -tangent[0]]) / max(np.linalg.norm(tangent), 1e-6)
    if polygon.contains(Point(*(point + 2.0 * normal))):
        normal = -normal
    return point, normal


class RandomTargets(StressPolicy):
    """Uniform random targets on ``[0, 512]^2``: jumps held 1-12 steps (60%) or glides at 5-60 px a step."""

    guard_walls = False

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        goal = self._rng.uniform(*BOARD, 2)
        if self._rng.random() < 0.6:
            return [goal] * int(self._rng.integers(1, 13))
        return self.glide(goal, self._rng.uniform(5, 60))


class ContactPlay(StressPolicy):
    """Random points in and around the block: block-local points in the T's box grown by 40 px, reached
    at 3-30 px a step and held 0-5 steps; one time in five a random point of the board instead."""

    speeds, holds = (3.0, 30.0), 6

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        if self._rng.random() < 0.2:
            goal = self._rng.uniform(*INNER, 2)
        else:
            local = self._rng.uniform(_T_BOX[0] - 40.0, _T_BOX[1] + 40.0)
            c, s = np.cos(pose[2]), np.sin(pose[2])
            goal = pose[:2] + np.array([[c, -s], [s, c]]) @ local
        speed = self._rng.uniform(*self.speeds)
        return self.glide(goal, speed) + [goal] * int(self._rng.integers(0, self.holds))


class FastPlay(ContactPlay):
    """:class:`ContactPlay` at 15-60 px a step, holding 0-2 steps."""

    speeds, holds = (15.0, 60.0), 3


class SidePush(StressPolicy):
    """Short pushes from random points of the outline: round the block to 10-40 px outside the point,
    then inwards along its normal turned by up to 35 degrees, 10-90 px at 3-20 px a step, then back
    off 20-50 px."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        point, normal = _outline_point(pose, self._rng.uniform())
        turn = self._rng.uniform(-0.6, 0.6)
        c, s = np.cos(turn), np.sin(turn)
        inward = -np.array([[c, -s], [s, c]]) @ normal
        start = np.clip(point + normal * (AGENT_RADIUS + self._rng.uniform(10, 40)), *PUSH)
        end = np.clip(start + inward * (self._rng.uniform(10, 90) + AGENT_RADIUS), *PUSH)
        back = np.clip(end - inward * self._rng.uniform(20, 50), *PUSH)
        speed = self._rng.uniform(3, 20)
        return (around_block(self._target, start, pose) + self.glide(start, 25.0)
                + self.glide(end, speed, start) + self.glide(back, 10.0, end))


class WallContact(StressPolicy):
    """Pushes the block towards a random point 40-90 px off a wall (a corner a third of the time), aimed
    up to 30 px off its centre so that it turns, at 5-15 px a step for 20-60 steps, re-aimed each step."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        goal = self._rng.uniform(60.0, 452.0, 2)
        if self._rng.random() < 1 / 3:
            goal = np.array([self._rng.choice([60.0, 452.0]), self._rng.choice([60.0, 452.0])])
        else:
            goal[self._rng.integers(2)] = self._rng.choice([self._rng.uniform(45, 95), self._rng.uniform(417, 467)])
        self._goal, self._speed, self._aim = goal, self._rng.uniform(5, 15), self._rng.uniform(-30, 30)
        centre = block_centre(pose)
        d = (goal - centre) / max(np.linalg.norm(goal - centre), 1e-6)
        behind = np.clip(centre - 100 * d, *PUSH)
        return (around_block(self._target, behind, pose) + self.glide(behind, 30.0)
                + [np.full(2, np.nan)] * int(self._rng.integers(20, 61)))

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        if not np.isnan(target).any():
            return target
        centre = block_centre(pose)
        d = (self._goal - centre) / max(np.linalg.norm(self._goal - centre), 1e-6)
        aim = centre + self._aim * np.array([-d[1], d[0]])
        toward = (aim - pos) / max(np.linalg.norm(aim - pos), 1e-6)
        return np.clip(pos + self._speed * (0.5 * toward + 0.5 * d), *PUSH)


class Candidates(StressPolicy):
    """The scripted expert (``PushTExpert``) plus a smooth offset: every 16 steps a new scale of 0-100 px
    and a random walk of that scale's steps, as a sampling planner perturbs a proposal's chunk."""

    guard_walls = False

    def reset(self, seed: int | None = None) -> None:
        from world_gym.policies.pusht_expert import PushTExpert

        super().reset(seed)
        self._expert = PushTExpert()
        self._expert.reset(seed=seed)
        self._offsets: list[np.ndarray] = []

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        target = np.asarray(self._expert.act(observation, info), np.float64).reshape(-1, 2)[0]
        if not self._offsets:
            scale = self._rng.choice([0.0, 10.0, 30.0, 60.0, 100.0])
            walk = np.cumsum(self._rng.normal(0.0, scale / 4.0, (16, 2)), axis=0)
            self._offsets = list(walk + self._rng.normal(0.0, scale / 2.0, 2))
        return np.clip(target + self._offsets.pop(0), *BOARD).astype(np.float32)


class Hover(StressPolicy):
    """Along rings round the block's outline, 8 px inside to 25 px outside its reach, at 2-15 px a step for
    10-50 steps, then a pause of 0-20 steps: the block is touched lightly now and then."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        from shapely.geometry import Point

        ring = block_polygon(pose).buffer(AGENT_RADIUS + self._rng.uniform(-8, 25)).exterior
        a, step = ring.project(Point(pos)), self._rng.uniform(2, 15) * self._rng.choice([-1, 1])
        path = [np.array(ring.interpolate((a + step * (k + 1)) % ring.length).coords[0])
                for k in range(int(self._rng.integers(10, 51)))]
        return path + [path[-1]] * int(self._rng.integers(0, 21))


_POLICIES: dict[str, type[StressPolicy]] = {
    "random_targets": RandomTargets, "contact_play": ContactPlay, "side_push": SidePush,
    "wall_contact": WallContact, "candidates": Candidates, "hover": Hover, "fast_play": FastPlay,
}


def make_broad_policy(name: str, noise: float = 0.0) -> StressPolicy:
    """A fresh policy of broad family ``name`` (``noise`` is unused: the collector's factory signature)."""
    if name not in _POLICIES:
        raise ValueError(f"unknown broad training family {name!r}; known: {sorted(_POLICIES)}")
    return _POLICIES[name]()
