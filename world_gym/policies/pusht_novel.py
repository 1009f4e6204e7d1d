"""Push-T policies unlike the world models' training mix, acting on the 96 x 96 frame alone.

The zoo (:mod:`world_gym.policies.zoo`) grades policies whose behaviour the shipped Push-T world
models were trained on (the scripted expert, its noisy variants, play, replays), so its ranking
says little about policies a model has never seen. These are closed-loop image policies of other
kinds, from idle to competent:

==================  ======================================================================
name                what it does
==================  ======================================================================
``idle``            holds the agent where the episode starts
``greedy``          gets behind the block's centre (seen from the goal's centre) and pushes
                    straight at the goal's centre, blind to the angle
``wrong_goal``      the scripted expert pushing the T to a goal moved by ``offset`` px and
                    turned by ``rotation`` radians
``quitter``         the scripted expert for ``steps`` steps, then still
``laggard``         the scripted expert reading a frame only every ``every`` steps and
                    following its own prediction in between
``jitter``          the scripted expert with slowly drifting target noise of ``noise`` px
                    (a correlated wobble, not the white noise of the training mix)
``stress_<family>`` a stress family of :mod:`world_gym.envs.pusht.behaviours` (``sweep``,
                    ``circle``, ``side_switch``, ``wall_push``, ``near_miss``, ``park``,
                    ``bounds``) on the state read off the frame
==================  ======================================================================

Every one is a :class:`FramePolicy`: it reads the agent position and the block pose off the frame
(:class:`~world_gym.envs.pusht.pixels.PushTFrameState`, coarse fit, about 9 ms), estimates the
agent's velocity from consecutive reads, and runs an *info-reading* behaviour (``act(obs, info)``
with gym-pusht's ``pos_agent``, ``vel_agent``, ``block_pose``, ``goal_pose``) forward in a private
copy of gym-pusht's physics for a chunk of ``chunk_size`` targets. What a frame does not show comes
from the previous chunk's prediction. The env's ``info`` is never read, so a policy acts the same
in gym-pusht and in a world model. Given ``reset(seed)`` each policy is deterministic.

Spec strings (:mod:`world_gym.policies.zoo`): ``novel:greedy,chunk_size=8``,
``novel:quitter,steps=60``, ``novel:stress_circle``; :data:`NOVEL_SET` is the benchmark's set.

>>> policy = make_novel_policy("greedy", chunk_size=4)
>>> policy.reset(seed=0)
>>> policy.act(np.full((96, 96, 3), 255, np.uint8)).shape
(4, 2)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from world_gym.envs.pusht.behaviours import STRESS_FAMILIES, around_block, block_centre, make_stress_policy
from world_gym.envs.pusht.pixels import GOAL_POSE, PushTFrameState
from world_gym.policies.pusht_expert import PushTExpert, _PushSim

DT = 0.1  # gym-pusht's control period (10 Hz)
PUSH_BOUNDS = (50.0, 462.0)  # where the greedy pusher aims (off the walls by the block's width)

#: The benchmark's default set (``benchmarks/policy_ranking.py``): spec strings, idle to competent.
NOVEL_SET: list[str] = [
    "novel:idle",
    "novel:stress_near_miss",
    "novel:stress_sweep",
    "novel:stress_side_switch",
    "novel:stress_circle",
    "wrong_goal_far=novel:wrong_goal,offset=70,rotation=1.2",
    "novel:wrong_goal",
    "novel:greedy",
    "novel:quitter",
    "novel:jitter",
    "quitter_late=novel:quitter,steps=150",
    "novel:laggard",
]


class FramePolicy:
    """An info-reading behaviour run on the state read off each frame (no privileged state).

    Args:
        behaviour: any ``reset(seed)`` / ``act(obs, info) -> (2,)`` policy that reads gym-pusht's
            ``info`` (``pos_agent``, ``vel_agent``, ``block_pose``, ``goal_pose``).
        chunk_size: targets per ``act``; the behaviour runs on in a private physics copy in between.
        every: steps between frame reads (a multiple of ``chunk_size``; larger: the frames in
            between are ignored and the prediction is followed).
        goal_pose: the goal given to the behaviour (gym-pusht's fixed one).
    """

    def __init__(self, behaviour: Any, chunk_size: int = 8, every: int | None = None,
                 goal_pose: np.ndarray = GOAL_POSE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        every = chunk_size if every is None else int(every)
        if every < chunk_size or every % chunk_size:
            raise ValueError(f"every must be a positive multiple of chunk_size={chunk_size}, got {every}")
        self.behaviour = behaviour
        self.chunk_size = chunk_size
        self.every = every
        self.goal_pose = np.asarray(goal_pose, np.float64)
        self.reader = PushTFrameState(supersample=1, refine=False)
        self._sim = _PushSim()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start over; ``seed`` fixes the behaviour's random choices."""
        self.behaviour.reset(seed=seed)
        self._agent: np.ndarray | None = None
        self._block: np.ndarray | None = None
        self._read_agent: np.ndarray | None = None  # the last frame-read agent position
        self._since_read = 0  # steps since that read
        self._queue: list[np.ndarray] = []

    def _read(self, frame: np.ndarray) -> None:
        state = self.reader.estimate(frame)
        agent = state.agent_pos if state.agent_pos is not None else self._agent
        block = state.block_pose if state.block_pose is not None else self._block
        agent = np.array([256.0, 256.0]) if agent is None else np.asarray(agent, np.float64)
        block = self.goal_pose.copy() if block is None else np.asarray(block, np.float64)
        velocity = np.zeros(2)
        if state.agent_pos is not None and self._read_agent is not None and self._since_read:
            velocity = (agent - self._read_agent) / (self._since_read * DT)
        if state.agent_pos is not None:
            self._read_agent, self._since_read = agent.copy(), 0
        self._sim.place(agent, block, velocity)

    def _plan(self, steps: int) -> None:
        sim = self._sim.env
        for _ in range(steps):
            info = {"pos_agent": np.array(sim.agent.position), "vel_agent": np.array(sim.agent.velocity),
                    "block_pose": np.array([*sim.block.position, sim.block.angle]), "goal_pose": self.goal_pose}
            target = np.clip(np.asarray(self.behaviour.act(None, info), np.float64), 0.0, 512.0)
            self._queue.append(target)
            self._sim.step(target)
        self._agent = np.array(sim.agent.position)
        self._block = np.array([*sim.block.position, sim.block.angle])

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """``(chunk_size, 2)`` float32 targets (``(2,)`` when ``chunk_size`` is 1) from a uint8
        ``(96, 96, 3)`` frame; ``info`` is ignored."""
        frame = np.asarray(observation)
        if frame.dtype != np.uint8 or frame.shape != (96, 96, 3):
            raise ValueError(f"{type(self).__name__} expects a uint8 (96, 96, 3) frame, got {frame.dtype} "
                             f"{frame.shape}")
        if not self._queue:
            self._read(frame)
            self._plan(self.every)
        out = np.stack(self._queue[: self.chunk_size]).astype(np.float32)
        del self._queue[: self.chunk_size]
        self._since_read += self.chunk_size
        return out if self.chunk_size > 1 else out[0]


class Idle:
    """Holds the agent where the episode starts (the first ``pos_agent`` it sees)."""

    def reset(self, seed: int | None = None) -> None:
        self._hold: np.ndarray | None = None

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        if self._hold is None:
            self._hold = np.asarray(info["pos_agent"], np.float64).copy()
        return self._hold.astype(np.float32)


class GreedyPusher:
    """Pushes the block's centre straight at the goal's centre, blind to the angle.

    Goes (round the block) to ``standoff`` px behind the block's centre on the line from the goal's
    centre, then pushes along that line at ``speed`` px a step, re-aimed every step; goes back
    behind when the agent is more than ``tolerance`` px off the line; holds once the centres are
    within ``done`` px.

    Args:
        standoff: distance behind the block's centre where a push starts (the T reaches 76 px).
        speed: push speed, px per step.
        tolerance: lateral drift off the push line that ends a push.
        done: centre distance that counts as arrived.
    """

    def __init__(self, standoff: float = 95.0, speed: float = 10.0, tolerance: float = 30.0,
                 done: float = 8.0) -> None:
        self.standoff, self.speed, self.tolerance, self.done = standoff, speed, tolerance, done
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._waypoints: list[np.ndarray] = []
        self._pushing = False

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        pos = np.asarray(info["pos_agent"], np.float64)
        pose = np.asarray(info["block_pose"], np.float64)
        centre, goal = block_centre(pose), block_centre(np.asarray(info["goal_pose"], np.float64))
        gap = goal - centre
        if np.linalg.norm(gap) < self.done:
            self._pushing, self._waypoints = False, []
            return pos.astype(np.float32)
        d = gap / np.linalg.norm(gap)
        behind = np.clip(centre - self.standoff * d, *PUSH_BOUNDS)
        rel = pos - centre
        lateral = abs(rel[0] * d[1] - rel[1] * d[0])
        if self._pushing and (lateral > self.tolerance or rel @ d > 0):
            self._pushing = False  # off the line, or past the centre: line up again
        if not self._pushing:
            if not self._waypoints:
                self._waypoints = around_block(pos, behind, pose) + [behind]
            self._waypoints[-1] = behind  # the block may have moved: aim at where behind is now
            while len(self._waypoints) > 1 and np.linalg.norm(pos - self._waypoints[0]) < 20.0:
                self._waypoints.pop(0)
            if len(self._waypoints) == 1 and np.linalg.norm(pos - behind) < 8.0:
                self._pushing, self._waypoints = True, []
            else:
                step = self._waypoints[0] - pos
                return (pos + step * min(1.0, 40.0 / max(np.linalg.norm(step), 1e-6))).astype(np.float32)
        return np.clip(pos + self.speed * d, *PUSH_BOUNDS).astype(np.float32)


class GoalShift:
    """A behaviour given a goal moved by ``offset`` px (direction drawn per episode) and turned by
    ``rotation`` radians.

    Args:
        behaviour: the info-reading behaviour.
        offset: goal displacement in px.
        rotation: goal rotation in radians.
    """

    def __init__(self, behaviour: Any, offset: float, rotation: float) -> None:
        self.behaviour, self.offset, self.rotation = behaviour, float(offset), float(rotation)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.behaviour.reset(seed=seed)
        heading = np.random.default_rng(seed).uniform(0, 2 * np.pi)
        self._shift = np.array([self.offset * np.cos(heading), self.offset * np.sin(heading), self.rotation])

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        return self.behaviour.act(observation, {**info, "goal_pose": np.asarray(info["goal_pose"]) + self._shift})


class Quitter:
    """A behaviour for its first ``steps`` steps, then holds its last target (still)."""

    def __init__(self, behaviour: Any, steps: int) -> None:
        self.behaviour, self.steps = behaviour, int(steps)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.behaviour.reset(seed=seed)
        self._t, self._last = 0, None

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        self._t += 1
        if self._t > self.steps and self._last is not None:
            return self._last
        self._last = np.asarray(self.behaviour.act(observation, info), np.float32)
        return self._last


class Jitter:
    """A behaviour's targets plus drifting noise: ``e_t = a e_{t-1} + N(0, noise^2 (1 - a^2))``, so the
    noise has std ``noise`` px and a correlation time of ``1 / (1 - a)`` steps."""

    def __init__(self, behaviour: Any, noise: float, correlation: float = 0.8) -> None:
        if noise < 0 or not 0 <= correlation < 1:
            raise ValueError(f"need noise >= 0 and 0 <= correlation < 1, got {noise}, {correlation}")
        self.behaviour, self.noise, self.correlation = behaviour, float(noise), float(correlation)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.behaviour.reset(seed=seed)
        self._rng, self._e = np.random.default_rng(seed), np.zeros(2)

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        a = self.correlation
        self._e = a * self._e + self._rng.normal(0.0, self.noise * np.sqrt(1 - a * a), 2)
        return np.clip(np.asarray(self.behaviour.act(observation, info)) + self._e, 0.0, 512.0).astype(np.float32)


def _expert(options: dict[str, Any]) -> PushTExpert:
    return PushTExpert(noise=float(options.get("expert_noise", 0.0)))


#: Behaviours by name: ``options -> info-reading behaviour`` (plus ``stress_<family>``).
BEHAVIOURS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "idle": lambda o: Idle(),
    "greedy": lambda o: GreedyPusher(speed=float(o.get("speed", 10.0))),
    "wrong_goal": lambda o: GoalShift(_expert(o), float(o.get("offset", 40.0)), float(o.get("rotation", 0.6))),
    "quitter": lambda o: Quitter(_expert(o), int(o.get("steps", 60))),
    "laggard": _expert,
    "jitter": lambda o: Jitter(_expert(o), float(o.get("noise", 30.0)), float(o.get("correlation", 0.8))),
    **{f"stress_{family}": (lambda o, f=family: make_stress_policy(f)) for family in STRESS_FAMILIES},
}
#: The options each policy reads (besides ``chunk_size``).
OPTIONS: dict[str, set[str]] = {
    "idle": set(), "greedy": {"speed"}, "wrong_goal": {"offset", "rotation", "expert_noise"},
    "quitter": {"steps", "expert_noise"}, "laggard": {"every", "expert_noise"},
    "jitter": {"noise", "correlation", "expert_noise"}, **{f"stress_{f}": set() for f in STRESS_FAMILIES},
}


def make_novel_policy(name: str, chunk_size: int = 8, **options: Any) -> FramePolicy:
    """A fresh frame-reading policy of :data:`BEHAVIOURS`.

    Args:
        name: ``idle``, ``greedy``, ``wrong_goal``, ``quitter``, ``laggard``, ``jitter`` or
            ``stress_<family>``.
        chunk_size: targets per ``act``.
        **options: the policy's options (:data:`OPTIONS`); ``laggard``'s ``every`` (default 32,
            rounded up to a multiple of ``chunk_size``) is how often it reads a frame.

    Returns:
        The policy.
    """
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown novel policy {name!r}; known: {sorted(BEHAVIOURS)}")
    unknown = set(options) - OPTIONS[name]
    if unknown:
        raise ValueError(f"novel policy {name!r} takes options {sorted(OPTIONS[name])}, got {sorted(unknown)}")
    every = None
    if name == "laggard":
        every = -(-int(options.get("every", 32)) // chunk_size) * chunk_size
    return FramePolicy(BEHAVIOURS[name](options), chunk_size=chunk_size, every=every)
