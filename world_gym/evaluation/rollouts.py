"""Run a policy for a list of start seeds in a vectorized env, keeping every sub-env busy.

A *backend* gives the runner one interface over two kinds of simulator:

- :class:`VectorEnvBackend`: a Gymnasium ``VectorEnv`` with partial resets
  (``options={"reset_mask": ...}``) and per-env reset options, such as the world model's
  ``WorldModelVectorEnv`` (one batched model call per chunk for all sub-envs). The start of
  episode ``seed`` is ``reset(seed=seed, options={"episode": seed})``.
- :class:`EnvListBackend`: N ordinary single-action envs (the ground truth, e.g. gym-pusht), each
  stepped through a whole chunk, stopping at the first ``terminated`` or ``truncated`` as
  :class:`world_gym.wrappers.ChunkedAction` does, with ``reset(seed=seed)``.

:func:`run_episodes` hands the next seed to whichever sub-env finishes, so N envs run N
episodes at a time until the list is done, and returns one :class:`EpisodeRecord` per seed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import gymnasium as gym
import numpy as np

from world_gym.policies.base import Policy


@dataclass
class EpisodeRecord:
    """What one episode did.

    Attributes:
        seed: start seed (the same start in the world model and the ground truth).
        success: the env reported success (``terminated`` with ``info["is_success"]``).
        max_coverage: largest per-frame coverage (``info["coverage"]``); NaN when the env has none.
        length: frames (primitive actions) executed.
        total_reward: sum of rewards.
        frames: the episode's frames (start frame first) when it was recorded, else None.
    """

    seed: int
    success: bool
    max_coverage: float
    length: int
    total_reward: float
    frames: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (without frames)."""
        cov = None if math.isnan(self.max_coverage) else round(float(self.max_coverage), 6)
        return {"seed": self.seed, "success": bool(self.success), "max_coverage": cov,
                "length": int(self.length), "total_reward": round(float(self.total_reward), 6)}


@dataclass
class StepOutcome:
    """One sub-env's result of one chunked step."""

    observation: np.ndarray
    frames: np.ndarray
    reward: float
    coverage: np.ndarray | None
    success: bool
    done: bool
    info: dict[str, Any]
    num_frames: int | None = None  # actions executed, when ``frames`` holds only some of them

    def __post_init__(self) -> None:
        if self.num_frames is None:
            self.num_frames = len(self.frames)


class EpisodeBackend(Protocol):
    """N sub-envs that the runner resets by seed and steps by chunk."""

    num_envs: int
    chunk_size: int
    action_space: gym.spaces.Box  # of one sub-env's chunk

    def reset(self, slots: Sequence[int], seeds: Sequence[int],
              record: Sequence[bool] | None = None) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        """Start episode ``seeds[k]`` in sub-env ``slots[k]`` (``record[k]``: every frame will be
        kept); observation and info per slot."""

    def step(self, actions: np.ndarray, active: np.ndarray) -> dict[int, StepOutcome]:
        """Step all sub-envs with ``(num_envs, chunk, action_dim)``; outcomes of the active ones."""


def _unbatch(info: dict[str, Any], i: int) -> dict[str, Any]:
    out = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        out[key] = _unbatch(value, i) if isinstance(value, dict) else value[i]
    return out


class VectorEnvBackend:
    """A ``VectorEnv`` with partial resets and per-env ``episode`` reset options (world models).

    Args:
        env: e.g. ``gym.make_vec("IRASim-PushT-v0", num_envs=N, vectorization_mode="vector_entry_point",
            chunk_size=k)``; its single action space must be ``(k, action_dim)`` (or ``(action_dim,)``
            for ``k = 1``).
        chunk_size: ``k``.
    """

    def __init__(self, env: gym.vector.VectorEnv, chunk_size: int) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.chunk_size = chunk_size
        self.action_space = env.single_action_space

    def reset(self, slots: Sequence[int], seeds: Sequence[int],
              record: Sequence[bool] | None = None) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        mask = np.zeros(self.num_envs, bool)
        episode = np.zeros(self.num_envs, np.int64)
        env_seeds: list[int | None] = [None] * self.num_envs
        for slot, seed in zip(slots, seeds):
            mask[slot], episode[slot], env_seeds[slot] = True, int(seed), int(seed)
        # every frame of a world-model chunk comes back anyway, so ``record`` needs nothing here
        obs, info = self.env.reset(seed=env_seeds, options={"reset_mask": mask, "episode": episode})
        return {int(s): (obs[s], _unbatch(info, int(s))) for s in slots}

    def step(self, actions: np.ndarray, active: np.ndarray) -> dict[int, StepOutcome]:
        batch = actions.reshape(self.num_envs, *self.action_space.shape).astype(self.action_space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(batch)
        out = {}
        for i in np.flatnonzero(active):
            env_info = _unbatch(info, int(i))
            n = int(env_info.get("num_frames", len(env_info.get("frames", [None]))))
            frames = np.asarray(env_info["frames"])[:n] if "frames" in env_info else obs[i][None]
            coverage = np.asarray(env_info["coverage"], np.float64).reshape(-1)[:n] if "coverage" in env_info else None
            out[int(i)] = StepOutcome(obs[i], frames, float(reward[i]), coverage,
                                      bool(env_info.get("is_success", terminated[i])) and bool(terminated[i]),
                                      bool(terminated[i] or truncated[i]), env_info)
        return out


class EnvListBackend:
    """N single-action envs (ground truth), each stepped through a chunk action by action.

    Args:
        make_env: builds one env (with its own time limit), e.g. ``make_pusht_env``.
        num_envs: how many to build.
        chunk_size: actions per step.
        render: ``env -> frame`` for envs built with a cheap non-image observation: the frame is
            rendered only where it is used (the last action of a chunk, which the policy sees, and
            every action of a recorded episode). gym-pusht renders its 96 x 96 observation on every
            step, about three quarters of a step's time (profiled); rendering once per chunk of 8
            makes a step about 3x faster with the same pixels. None: the env's own observations are
            the frames.
    """

    def __init__(self, make_env: Callable[[], gym.Env], num_envs: int, chunk_size: int,
                 render: Callable[[gym.Env], np.ndarray] | None = None) -> None:
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_envs = num_envs
        self.chunk_size = chunk_size
        self.render = render
        self.recording = np.zeros(num_envs, bool)
        inner = self.envs[0].action_space
        self.action_space = gym.spaces.Box(np.tile(inner.low, (chunk_size, 1)), np.tile(inner.high, (chunk_size, 1)),
                                           dtype=inner.dtype) if chunk_size > 1 else inner

    def _frame(self, env: gym.Env, obs: Any) -> np.ndarray:
        if self.render is not None:
            return self.render(env)
        return obs if isinstance(obs, np.ndarray) else obs["pixels"]

    def reset(self, slots: Sequence[int], seeds: Sequence[int],
              record: Sequence[bool] | None = None) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        out = {}
        for k, (s, seed) in enumerate(zip(slots, seeds)):
            obs, info = self.envs[s].reset(seed=int(seed))
            self.recording[s] = bool(record[k]) if record is not None else False
            out[int(s)] = (self._frame(self.envs[s], obs), info)
        return out

    def step(self, actions: np.ndarray, active: np.ndarray) -> dict[int, StepOutcome]:
        out = {}
        for i in np.flatnonzero(active):
            env = self.envs[i]
            frames, coverage, total = [], [], 0.0
            terminated = truncated = False
            obs, info = None, {}
            chunk = actions[i].reshape(self.chunk_size, -1)
            for k, action in enumerate(chunk):
                obs, reward, terminated, truncated, info = env.step(action.astype(env.action_space.dtype))
                coverage.append(info.get("coverage", math.nan))
                total += float(reward)
                last = terminated or truncated or k == len(chunk) - 1
                if last or self.render is None or self.recording[i]:
                    frames.append(self._frame(env, obs))
                if terminated or truncated:
                    break
            cov = np.asarray(coverage, np.float64)
            out[int(i)] = StepOutcome(frames[-1], np.stack(frames), total, None if np.isnan(cov).all() else cov,
                                      bool(terminated and info.get("is_success", True)), terminated or truncated,
                                      info, num_frames=len(coverage))
        return out

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


@dataclass
class RunStats:
    """Episodes of one policy in one env, with the time they took."""

    episodes: list[EpisodeRecord]
    wall_s: float
    policy_s: float
    env_s: float
    env_steps: int


def _as_chunk(action: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(action, np.float32)
    if arr.shape != shape and arr.size == int(np.prod(shape)) and arr.shape in ((shape[-1],), (1, shape[-1])):
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise ValueError(f"policy {name!r} returned an action of shape {arr.shape}; the env steps {shape} "
                         "(set the policy spec's chunk_size to what its act() returns)")
    return arr


def run_episodes(
    backend: EpisodeBackend,
    make_policy: Callable[[], Policy],
    seeds: Sequence[int],
    record_seeds: Sequence[int] = (),
    name: str = "policy",
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> RunStats:
    """Run one episode per seed, ``backend.num_envs`` at a time.

    Args:
        backend: the envs.
        make_policy: builds one policy per sub-env; each is ``reset(seed)`` at the start of its episode.
        seeds: start seeds, one episode each.
        record_seeds: seeds whose frames are kept in the records (for videos).
        name: the policy's name, for error messages.
        on_episode: called with each finished episode (progress bars).

    Returns:
        The episodes in the order of ``seeds`` and the time split between policy and env.
    """
    start = time.perf_counter()
    policy_s = env_s = 0.0
    n = backend.num_envs
    shape = backend.action_space.shape
    idle_action = ((backend.action_space.low + backend.action_space.high) / 2).astype(np.float32)
    policies = [make_policy() for _ in range(n)]
    pending = deque(int(s) for s in seeds)
    record = {int(s) for s in record_seeds}
    slot_seed: list[int | None] = [None] * n
    obs: list[Any] = [None] * n
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    tallies: list[dict[str, Any]] = [{} for _ in range(n)]
    records: dict[int, EpisodeRecord] = {}
    env_steps = 0

    def start_episodes(slots: list[int]) -> None:
        nonlocal env_s
        seeds_now = [pending.popleft() for _ in slots]
        t0 = time.perf_counter()
        started = backend.reset(slots, seeds_now, [seed in record for seed in seeds_now])
        env_s += time.perf_counter() - t0
        for slot, seed in zip(slots, seeds_now):
            obs[slot], infos[slot] = started[slot]
            slot_seed[slot] = seed
            policies[slot].reset(seed=seed)
            tallies[slot] = {"length": 0, "reward": 0.0, "coverage": -math.inf, "frames": [obs[slot]] if seed in record else None}

    start_episodes(list(range(min(n, len(pending)))))
    while any(s is not None for s in slot_seed):
        active = np.array([s is not None for s in slot_seed])
        actions = np.broadcast_to(idle_action, (n, *shape)).copy()
        t0 = time.perf_counter()
        for i in np.flatnonzero(active):
            actions[i] = _as_chunk(policies[i].act(obs[i], infos[i]), shape, name)
        t1 = time.perf_counter()
        outcomes = backend.step(actions, active)
        env_s += time.perf_counter() - t1
        policy_s += t1 - t0
        env_steps += 1
        finished = []
        for i, outcome in outcomes.items():
            tally = tallies[i]
            tally["length"] += outcome.num_frames
            tally["reward"] += outcome.reward
            if outcome.coverage is not None and len(outcome.coverage):
                tally["coverage"] = max(tally["coverage"], float(np.nanmax(outcome.coverage)))
            if tally["frames"] is not None:
                tally["frames"].extend(outcome.frames)
            obs[i], infos[i] = outcome.observation, outcome.info
            if outcome.done:
                seed = slot_seed[i]
                frames = np.stack(tally["frames"]) if tally["frames"] is not None else None
                cov = tally["coverage"] if math.isfinite(tally["coverage"]) else math.nan
                records[seed] = EpisodeRecord(seed, outcome.success, cov, tally["length"], tally["reward"], frames)
                if on_episode is not None:
                    on_episode(records[seed])
                slot_seed[i] = None
                finished.append(i)
        if finished and pending:
            start_episodes(finished[: len(pending)])
    return RunStats([records[int(s)] for s in seeds], time.perf_counter() - start, policy_s, env_s, env_steps)
