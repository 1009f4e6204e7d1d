"""Scripted behaviour families of gym-pusht: the training mix and a stress set unlike it.

A behaviour family is a way of acting in gym-pusht, stored in the ``behavior`` column of a collected
dataset (:mod:`world_gym.data.collect`). The **training families** are those of the shipped Push-T
world models' data: ``expert`` (0), ``noisy`` (1), ``play`` (2), ``policy`` (3, learned policies'
rollouts; that data also held uniform random targets and jittery expert replays), and the **broad**
families of :mod:`world_gym.envs.pusht.broad_play` (codes 4-9 and 17: contact-rich play, pushes from every
side, wall contacts, planner candidates, hovering, random targets). The **stress families** act, like them, from gym-pusht's privileged state (``info``), but unlike them:

==============  ====  =====================================================================
family          code  what the agent does
==============  ====  =====================================================================
``sweep``       10    fast straight sweeps from board edge to board edge, aimed near the block
``circle``      11    circles the block's centre at 55-115 px, tracking the block (brushing it)
``side_switch`` 12    fast pushes through the block, each from a new side: contact-rich
``wall_push``   13    pushes the block into walls and corners and keeps pressing there
``near_miss``   14    traces, darts at and waits beside the block, never touching it
``bounds``      15    jumps and slides along the action bounds (0 and 512: beyond the walls)
``park``        16    parks against or pressed into the block and holds still there
==============  ====  =====================================================================

Seeds: the collector's ``stress`` split, ``[10000, 100000)``, disjoint from ``heldout`` (``[0, 10000)``)
and ``train`` (``[100000, ...)``). Family ``code`` owns the 1000 seeds from ``10000 + 1000 (code - 10)``;
its episode ``j`` is reset with the ``j``-th of them that it admits (``near_miss`` skips resets with
the agent within 10 px of the block), whatever other families a dataset holds. Every policy is
deterministic given ``reset(seed=...)``.

>>> policy = make_stress_policy("sweep")
>>> policy.reset(seed=0)
>>> info = {"pos_agent": [100.0, 100.0], "vel_agent": [0.0, 0.0], "block_pose": [256.0, 256.0, 0.0]}
>>> policy.act(None, info).shape
(2,)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

TRAINING_FAMILIES: dict[str, int] = {"expert": 0, "noisy": 1, "play": 2, "policy": 3}
"""The behaviours of the first Push-T training mix, with their ``behavior`` codes."""
BROAD_FAMILIES: dict[str, int] = {"random_targets": 4, "contact_play": 5, "side_push": 6, "wall_contact": 7,
                                  "candidates": 8, "hover": 9, "fast_play": 17}
"""The broad training families (:mod:`world_gym.envs.pusht.broad_play`), with their ``behavior`` codes."""
STRESS_FAMILIES: dict[str, int] = {"sweep": 10, "circle": 11, "side_switch": 12, "wall_push": 13,
                                   "near_miss": 14, "bounds": 15, "park": 16}
"""The stress set, with their ``behavior`` codes."""
STRESS_SEEDS = (10_000, 100_000)
"""Seed range ``[start, stop)`` of the stress families (the collector's ``stress`` split)."""
SEEDS_PER_FAMILY = 1_000
AGENT_RADIUS = 15.0
BOARD = (0.0, 512.0)  # the action bounds; the walls stand at 5 and 506
INNER = (20.0, 492.0)  # inside the walls, off them by the agent's radius
# Where targets of the pushing families stay: a kinematic agent closer to a wall than the block is thick
# (30 px) squeezes the block through it, which gym-pusht allows but is no behaviour worth imagining.
PUSH = (50.0, 462.0)
CORNER_CLEARANCE = 110.0  # and as far from a corner, where the T's ends wedge between two walls
_TEE_OUTLINE = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0],
                         [-15.0, 30.0], [-60.0, 30.0]])  # the T (pixels.TEE_RECTANGLES) as one ring
_K_P, _K_V, _DT, _SUBSTEPS = 100.0, 20.0, 0.01, 10  # gym-pusht's PD controller and physics step


def family_name(code: int) -> str:
    """Name of a ``behavior`` code (training, broad or stress family); ``"code <n>"`` for an unknown one."""
    names = {c: n for n, c in {**TRAINING_FAMILIES, **BROAD_FAMILIES, **STRESS_FAMILIES}.items()}
    return names.get(int(code), f"code {int(code)}")


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _to_world(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return pose[:2] + np.asarray(points) @ np.array([[c, -s], [s, c]]).T


def block_polygon(pose: np.ndarray) -> Any:
    """The block's outline (a shapely polygon) at a pose ``(x, y, angle)`` as in ``info["block_pose"]``."""
    from shapely.geometry import Polygon

    return Polygon(_to_world(_TEE_OUTLINE, np.asarray(pose, np.float64)))


def block_centre(pose: np.ndarray) -> np.ndarray:
    """The block's centre of gravity (block-local ``(0, 45)``) in world pixels."""
    return _to_world(np.array([[0.0, 45.0]]), np.asarray(pose, np.float64))[0]


def agent_path(pos: np.ndarray, vel: np.ndarray, target: np.ndarray, steps: int = 1) -> np.ndarray:
    """Agent centres at every physics substep of ``steps`` 10 Hz steps towards ``target``, as gym-pusht
    moves its kinematic agent (PD control, semi-implicit Euler), shape ``(10 * steps, 2)``."""
    p, v, out = np.array(pos, np.float64), np.array(vel, np.float64), []
    for _ in range(_SUBSTEPS * steps):
        v = v + (_K_P * (target - p) - _K_V * v) * _DT
        p = p + v * _DT
        out.append(p)
    return np.array(out)


def agent_velocity(prev_pos: np.ndarray, pos: np.ndarray, prev_target: np.ndarray) -> np.ndarray:
    """gym-pusht's agent velocity (px/s) at ``pos`` after one 10 Hz step from ``prev_pos`` towards
    ``prev_target``: exact, as its PD control is linear (what a frame and the one before it tell of the
    agent's speed). Arrays of shape ``(..., 2)``.

    >>> path = agent_path(np.array([100.0, 100.0]), np.array([30.0, -20.0]), np.array([400.0, 50.0]), steps=2)
    >>> v = agent_velocity(path[9], path[19], np.array([400.0, 50.0]))  # frames 1 and 2 of the same target
    >>> np.allclose(v, (path[19] - path[18]) / 0.01)
    True
    """
    ends = [agent_path(np.array([p, 0.0]), np.array([v, 0.0]), np.array([a, 0.0]))[-2:, 0] for p, v, a in np.eye(3)]
    (cp, dp), (cv, dv), (ca, da) = ((end[1], (end[1] - end[0]) / _DT) for end in ends)
    prev_pos, pos, prev_target = (np.asarray(x, np.float64) for x in (prev_pos, pos, prev_target))
    speed_before = (pos - cp * prev_pos - ca * prev_target) / cv
    return dp * prev_pos + dv * speed_before + da * prev_target


def clearance(points: np.ndarray, pose: np.ndarray) -> float:
    """Smallest gap (pixels) between the agent's disc at any of ``points`` and the block at ``pose``."""
    from shapely.geometry import MultiPoint

    return float(block_polygon(pose).distance(MultiPoint(np.asarray(points)))) - AGENT_RADIUS


def off_walls(target: np.ndarray) -> np.ndarray:
    """``target`` moved into :data:`PUSH` and :data:`CORNER_CLEARANCE` px from the board's corners."""
    target = np.clip(target, *PUSH)
    corner = np.where(target < 256.0, 5.0, 506.0)
    gap = target - corner
    distance = np.linalg.norm(gap)
    if distance < CORNER_CLEARANCE:
        target = corner + gap / max(distance, 1e-6) * CORNER_CLEARANCE
    return target


def around_block(start: np.ndarray, goal: np.ndarray, pose: np.ndarray, step: float = 60.0
                 ) -> list[np.ndarray]:
    """Waypoints (at most ``step`` px apart) from ``start`` round the block to ``goal``'s side of it,
    along the shorter way on a ring 20 px outside its hull; ``[]`` if the straight way is clear."""
    from shapely.geometry import LineString, Point

    hull = block_polygon(pose).convex_hull
    if not LineString([start, goal]).intersects(hull.buffer(AGENT_RADIUS + 3.0)):
        return []
    ring = hull.buffer(AGENT_RADIUS + 20.0).exterior
    a, b = ring.project(Point(start)), ring.project(Point(goal))
    forward = (b - a) % ring.length
    span, sign = (forward, 1.0) if forward <= ring.length - forward else (ring.length - forward, -1.0)
    n = max(1, int(np.ceil(span / step)))
    return [np.clip(np.array(ring.interpolate((a + sign * span * k / n) % ring.length).coords[0]), *PUSH)
            for k in range(1, n + 1)]


class StressPolicy:
    """Base of the stress families: ``reset(seed)`` then ``act(observation, info)`` -> a ``(2,)``
    float32 absolute target in ``[0, 512]^2``, read from gym-pusht's privileged ``info``;
    ``guard_walls``: targets pass :func:`off_walls`."""

    guard_walls = True

    def __init__(self) -> None:
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start over; ``seed`` fixes every random choice."""
        self._rng = np.random.default_rng(seed)
        self._target: np.ndarray | None = None
        self._plan: list[np.ndarray] = []

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """Next target.

        Args:
            observation: ignored (the behaviour reads privileged state).
            info: gym-pusht's info with ``pos_agent``, ``vel_agent`` and ``block_pose``.

        Returns:
            ``(2,)`` float32 target in ``[0, 512]^2``.
        """
        if info is None or not {"pos_agent", "block_pose"} <= set(info):
            raise ValueError(f"{type(self).__name__} needs gym-pusht's info with pos_agent and block_pose")
        pos = np.asarray(info["pos_agent"], np.float64)
        vel = np.asarray(info.get("vel_agent", np.zeros(2)), np.float64)
        pose = np.asarray(info["block_pose"], np.float64)
        self._target = pos.copy() if self._target is None else self._target
        if not self._plan:
            self._plan = [np.asarray(t, np.float64) for t in self.plan(pos, vel, pose)]
        self._target = self.filter(pos, vel, pose, self._plan.pop(0))
        if self.guard_walls:
            self._target = off_walls(self._target)
        return np.clip(self._target, *BOARD).astype(np.float32)

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        """The next targets of the behaviour, one per step (at least one)."""
        raise NotImplementedError

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The target actually sent (subclasses may veto a planned one)."""
        return target

    def glide(self, goal: np.ndarray, speed: float, start: np.ndarray | None = None) -> list[np.ndarray]:
        """Targets from ``start`` (the last target) to ``goal`` at ``speed`` pixels per step."""
        start = self._target if start is None else start
        n = max(1, int(np.ceil(np.linalg.norm(goal - start) / speed)))
        return [start + (goal - start) * (k + 1) / n for k in range(n)]


class Sweep(StressPolicy):
    """Fast straight sweeps, each from where the last ended to the board's edge, through a point near
    the block (70%) or anywhere, at 25-50 pixels per step."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        start = np.clip(self._target, *PUSH)
        for _ in range(20):
            near = self._rng.random() < 0.7
            aim = block_centre(pose) + self._rng.normal(0, 40, 2) if near else self._rng.uniform(*PUSH, 2)
            d = (aim - start) / max(np.linalg.norm(aim - start), 1e-6)
            wall = np.where(d > 0, PUSH[1], PUSH[0])
            t = min((wall[i] - start[i]) / d[i] for i in range(2) if abs(d[i]) > 1e-9)
            if t > 100 and np.linalg.norm(aim - start) > 30:
                return self.glide(start + t * d, self._rng.uniform(25, 50), start)
        return self.glide(np.array([256.0, 256.0]), 30.0, start)


class Circle(StressPolicy):
    """Circles the block's centre at a radius of 55-115 px (the T reaches 76 px from it, so small
    circles brush and turn it), 0.15-0.45 rad a step, for 30-90 steps per circle."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        radius, omega = self._rng.uniform(55, 115), self._rng.uniform(0.15, 0.45) * self._rng.choice([-1, 1])
        self._circle = (radius, omega, np.arctan2(*(pos - block_centre(pose))[::-1]))
        return [np.zeros(2)] * int(self._rng.integers(30, 91))  # placeholders, aimed in filter()

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        radius, omega, phase = self._circle
        self._circle = (radius, omega, phase + omega)
        return np.clip(block_centre(pose) + radius * _unit(phase + omega), *PUSH)


class SideSwitch(StressPolicy):
    """Pushes through the block from a side at least 60 degrees from the last (and not towards a near
    wall, back towards the middle when the block is near one): round the block in jumps of up to 60 px
    to 95 px off its centre (2-4 steps), then a jump to 30 px past it (3-6 steps). Fast and
    contact-rich."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._side = 0.0

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        centre = block_centre(pose)
        for _ in range(20):  # a side whose push keeps the block off the walls
            side = self._side + self._rng.uniform(np.pi / 3, 5 * np.pi / 3)
            if np.all(np.abs(centre + 60 * _unit(side) - 256.0) < 176.0):
                break
        if np.any(np.abs(centre - 256.0) > 160.0):  # near a wall: push it back towards the middle
            side = np.arctan2(256.0 - centre[1], 256.0 - centre[0]) + self._rng.uniform(-0.5, 0.5)
        self._side, u = side, _unit(side)
        start, end = np.clip(centre - 95 * u, *PUSH), np.clip(centre + 30 * u, *PUSH)
        around = around_block(self._target, start, pose)
        return around + [start] * int(self._rng.integers(2, 5)) + [end] * int(self._rng.integers(3, 7))


class WallPush(StressPolicy):
    """Pushes the block towards a point on a wall (a corner 40% of the time): gets 95 px behind the
    block, then pushes at 12-25 px a step, re-aimed every step, and keeps pressing 15-40 steps (the
    agent stays 50 px off the walls: the block is pressed against them, not through)."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        goal = self._rng.uniform(30.0, 482.0, 2)
        goal[self._rng.integers(2)] = self._rng.choice([30.0, 482.0])
        if self._rng.random() < 0.4:  # a corner
            goal = self._rng.choice([30.0, 482.0], 2)
        self._goal, self._speed = goal, self._rng.uniform(12, 25)
        d = goal - block_centre(pose)
        behind = np.clip(block_centre(pose) - 95 * d / max(np.linalg.norm(d), 1e-6), *PUSH)
        return self.glide(behind, 40.0) + [np.full(2, np.nan)] * int(self._rng.integers(15, 41))

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        if not np.isnan(target).any():
            return target
        d = self._goal - block_centre(pose)
        return np.clip(pos + self._speed * d / max(np.linalg.norm(d), 1e-6), *PUSH)


class NearMiss(StressPolicy):
    """Moves close to the block but never touches it, so the block never moves: traces its outline at
    4-20 px, darts at it and waits beside it, stands still, roams. A target whose next two steps
    (gym-pusht's agent simulated) come within ``margin`` px of the block gives way to braking or
    backing away."""

    guard_walls = False

    def __init__(self, margin: float = 2.0) -> None:
        self.margin = margin
        super().__init__()

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        mode = self._rng.choice(["trace", "dart", "still", "roam"], p=[0.4, 0.25, 0.15, 0.2])
        ring = block_polygon(pose).buffer(AGENT_RADIUS + self._rng.uniform(4, 20)).exterior
        if mode == "trace":
            from shapely.geometry import Point
            a, step = ring.project(Point(pos)), self._rng.uniform(4, 10) * self._rng.choice([-1, 1])
            return [np.array(ring.interpolate((a + step * (k + 1)) % ring.length).coords[0])
                    for k in range(int(self._rng.integers(20, 61)))]
        if mode == "dart":
            goal = np.array(ring.interpolate(self._rng.uniform(0, ring.length)).coords[0])
            return self.glide(goal, self._rng.uniform(6, 15)) + [goal] * int(self._rng.integers(10, 51))
        if mode == "still":
            return [self._target.copy()] * int(self._rng.integers(10, 41))
        return self.glide(self._rng.uniform(*INNER, 2), self._rng.uniform(8, 20))

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        target = np.clip(target, *INNER)
        from shapely.geometry import Point
        from shapely.ops import nearest_points

        away = pos - np.array(nearest_points(block_polygon(pose), Point(pos))[0].coords[0])
        away = away / max(np.linalg.norm(away), 1e-6)
        candidates = [target, pos, pos + 40 * away, pos + 80 * away]
        gaps = [clearance(agent_path(pos, vel, c, steps=2), pose) for c in candidates]
        best = next((i for i, g in enumerate(gaps) if g >= self.margin), int(np.argmax(gaps)))
        if best:
            self._plan = []  # the planned motion ran into the block: plan afresh next step
        return candidates[best]


class Bounds(StressPolicy):
    """Lives on the action bounds: jumps to a corner or an edge point of ``[0, 512]^2`` (beyond the
    walls, where the kinematic agent goes through them) or slides along an edge at 10-30 px a step,
    then holds 0-15 steps; near a block by a wall it keeps off the walls."""

    guard_walls = False

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        point = self._rng.uniform(*BOARD, 2) if self._rng.random() < 0.7 else self._rng.choice(BOARD, 2)
        point[self._rng.integers(2)] = self._rng.choice(BOARD)
        hold = [point] * int(self._rng.integers(0, 16))
        if np.isin(self._target, BOARD).any() and self._rng.random() < 0.5:  # slide along the current edge
            point = self._target.copy()
            point[1 - int(np.isin(self._target, BOARD).argmax())] = self._rng.uniform(*BOARD)
            return self.glide(point, self._rng.uniform(10, 30)) + [point] * int(self._rng.integers(1, 16))
        return [point, *hold]

    def filter(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray, target: np.ndarray) -> np.ndarray:
        centre = block_centre(pose)  # a block near a wall and near the target would be squeezed through
        near_wall = np.min(np.minimum(centre - 5.0, 506.0 - centre)) < 100.0
        return off_walls(target) if near_wall and np.linalg.norm(target - centre) < 150.0 else target


class Park(StressPolicy):
    """Parks the agent against the block (a third of the time) or pressed 5-30 px into it from a
    random point of its outline, and holds still there for 20-80 steps."""

    def plan(self, pos: np.ndarray, vel: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        from shapely.geometry import Point

        outline = block_polygon(pose).exterior
        s = self._rng.uniform(0, outline.length)
        point = np.array(outline.interpolate(s).coords[0])
        tangent = np.array(outline.interpolate(s + 1.0).coords[0]) - point
        normal = np.array([tangent[1], -tangent[0]]) / max(np.linalg.norm(tangent), 1e-6)
        if block_polygon(pose).contains(Point(*(point + normal))):
            normal = -normal  # outward
        depth = 0.0 if self._rng.random() < 1 / 3 else self._rng.uniform(5, 30)
        standoff = np.clip(point + normal * (AGENT_RADIUS + 12), *BOARD)
        parked = point + normal * (AGENT_RADIUS - depth)
        return (self.glide(standoff, 30.0) + self.glide(parked, 8.0, standoff)
                + [parked] * int(self._rng.integers(20, 81)))


_POLICIES: dict[str, type[StressPolicy]] = {
    "sweep": Sweep, "circle": Circle, "side_switch": SideSwitch, "wall_push": WallPush,
    "near_miss": NearMiss, "bounds": Bounds, "park": Park,
}


def make_stress_policy(name: str, noise: float = 0.0) -> StressPolicy:
    """A fresh policy of stress family ``name`` (``noise`` is unused: the collector's factory signature)."""
    if name not in _POLICIES:
        raise ValueError(f"unknown stress family {name!r}; known: {sorted(_POLICIES)}")
    return _POLICIES[name]()


@functools.lru_cache(maxsize=4096)
def admits(name: str, seed: int) -> bool:
    """Whether family ``name`` plays gym-pusht's episode reset with ``seed`` (``near_miss``: only if the
    agent starts at least 10 px clear of the block, so the block cannot move)."""
    if name != "near_miss":
        return True
    from world_gym.envs.pusht.ground_truth import PushTEnv  # gym-pusht, its import notices silenced

    _, info = PushTEnv(obs_type="state").reset(seed=int(seed))
    return clearance(np.asarray(info["pos_agent"])[None], np.asarray(info["block_pose"])) >= 10.0


def family_seeds(name: str, episodes: int) -> list[int]:
    """gym-pusht reset seeds of the first ``episodes`` episodes of stress family ``name``.

    Args:
        name: a key of :data:`STRESS_FAMILIES`.
        episodes: how many.

    Returns:
        Seeds in the family's block ``[10000 + 1000 (code - 10), ... + 1000)``, increasing.
    """
    if name not in STRESS_FAMILIES:
        raise ValueError(f"the stress split plays stress families only, got {name!r}; "
                         f"known: {sorted(STRESS_FAMILIES)}")
    start = STRESS_SEEDS[0] + SEEDS_PER_FAMILY * (STRESS_FAMILIES[name] - 10)
    seeds: list[int] = []
    for seed in range(start, start + SEEDS_PER_FAMILY):
        if len(seeds) < episodes and admits(name, seed):
            seeds.append(seed)
    if len(seeds) < episodes:
        raise ValueError(f"family {name!r} has only {len(seeds)} admitted seeds, asked for {episodes}")
    return seeds
