"""What a policy did in an env, and the (features, action chunk) samples a learner fits.

A *learner* (:class:`Learner`) is a policy that can be trained: ``featurize`` turns frames into
what it reads (the frames themselves for a pixel network, a state read off them for a small
one), ``fit`` trains it from scratch on features and target chunks. Features are computed once
per frame and kept in :class:`Demonstrations`, so a loop that refits many times never re-reads a
frame.

:func:`roll_out` runs any policy in any backend of :mod:`world_gym.evaluation.rollouts` (a world
model's vector env, or the real simulator) and keeps every frame and executed action;
:func:`demonstrations` turns such episodes into samples whose targets are the actions taken
(behaviour cloning), :func:`relabel` into samples whose targets are an expert's chunk for each
frame (DAgger).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from tqdm import tqdm

from world_gym.data.episodes import chunk_targets
from world_gym.evaluation.rollouts import EpisodeBackend, run_episodes
from world_gym.policies.base import Policy


class Learner(Policy, Protocol):
    """A trainable policy: frames -> features once, then ``fit`` from scratch as often as needed."""

    def featurize(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames -> ``(N, ...)`` features."""

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
        """Train from scratch on ``features`` and target chunks ``labels`` ``(N, chunk, action_dim)``."""


@dataclass
class Episode:
    """One episode of a policy: the frames it acted on and the actions executed.

    Attributes:
        seed: start seed.
        frames: ``(T, H, W, 3)`` uint8; frame ``t`` is what the env showed before action ``t``.
        actions: ``(T, action_dim)`` float32, the actions executed.
        success: the env reported success.
        max_coverage: largest coverage of the episode (NaN when the env reports none).
    """

    seed: int
    frames: np.ndarray = field(repr=False)
    actions: np.ndarray = field(repr=False)
    success: bool
    max_coverage: float


@dataclass
class Demonstrations:
    """Samples a learner fits: features, target chunks, the episode and the source of each.

    Attributes:
        features: ``(N, ...)`` what the learner reads (:meth:`Learner.featurize`).
        labels: ``(N, chunk, action_dim)`` float32 target chunks.
        episode: ``(N,)`` int64 episode ids, unique across sources.
        step: ``(N,)`` int64 index of the frame in its episode.
        source: ``(N,)`` str tags (``"demos"``, ``"iteration-1"``, ...).
    """

    features: np.ndarray
    labels: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    source: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.labels) == len(self.episode) == len(self.step) == len(self.source) == n):
            raise ValueError(f"features, labels, episode, step and source must have one row each, got {n}, "
                             f"{len(self.labels)}, {len(self.episode)}, {len(self.step)}, {len(self.source)}")
        if self.labels.ndim != 3:
            raise ValueError(f"labels must be (N, chunk, action_dim), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode))

    def concat(self, other: "Demonstrations") -> "Demonstrations":
        """Rows of ``self`` then ``other`` (episode ids are kept: make them disjoint)."""
        return Demonstrations.join([self, other])

    @classmethod
    def join(cls, parts: Sequence["Demonstrations"]) -> "Demonstrations":
        """The rows of ``parts`` in order, copied once (episode ids are kept: make them disjoint).

        Raises:
            ValueError: no parts, or parts whose features differ in shape.
        """
        if not parts:
            raise ValueError("no demonstrations to join")
        shapes = {p.features.shape[1:] for p in parts if len(p)}
        if len(shapes) > 1:
            raise ValueError(f"features of different shapes: {sorted(shapes)}")
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in FIELDS))

    def rows(self, index: np.ndarray) -> "Demonstrations":
        """The rows ``index``."""
        return Demonstrations(*(getattr(self, k)[index] for k in FIELDS))

    def every(self, stride: int) -> "Demonstrations":
        """The rows of frames ``0, stride, 2 * stride, ...`` of each episode: where a policy acting in
        chunks of ``stride`` decided, so each kept label is a chunk it chose from that very frame
        (a frame inside a chunk is labelled with actions chosen from an earlier one)."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        return self.rows(np.flatnonzero(self.step % stride == 0))

    def first_episodes(self, n: int) -> "Demonstrations":
        """The rows of the first ``n`` episodes (in order of appearance)."""
        _, first = np.unique(self.episode, return_index=True)
        keep = self.episode[np.sort(first)][:n]
        return self.rows(np.flatnonzero(np.isin(self.episode, keep)))

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (through a temporary file, so an interrupted save leaves the old one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **{k: getattr(self, k) for k in FIELDS[:-1]}, source=self.source.astype(str))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Demonstrations":
        """Read what :meth:`save` wrote."""
        with np.load(Path(path), allow_pickle=False) as data:
            missing = [k for k in FIELDS if k not in data]
            if missing:
                raise ValueError(f"{path} is not a saved Demonstrations file (no {missing})")
            return cls(*(data[k] for k in FIELDS))


FIELDS = ("features", "labels", "episode", "step", "source")


class _Recorder:
    """A policy wrapper that logs the chunks it returns, per start seed."""

    def __init__(self, policy: Policy, log: dict[int, list[np.ndarray]], action_dim: int) -> None:
        self.policy, self.log, self.action_dim = policy, log, action_dim
        self.seed = -1

    def reset(self, seed: int | None = None) -> None:
        self.seed = int(seed) if seed is not None else -1
        self.log[self.seed] = []
        self.policy.reset(seed=seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        chunk = self.policy.act(observation, info)
        self.log[self.seed].append(np.asarray(chunk, np.float32).reshape(-1, self.action_dim))
        return chunk


def roll_out(backend: EpisodeBackend, make_policy: Callable[[], Policy], seeds: Sequence[int],
             name: str = "policy", progress: bool = True) -> list[Episode]:
    """Run one episode per start seed and keep every frame acted on and every action executed.

    Args:
        backend: the envs (:class:`~world_gym.evaluation.rollouts.VectorEnvBackend` of a world
            model, or :class:`~world_gym.evaluation.rollouts.EnvListBackend` of the real simulator).
        make_policy: builds one policy per sub-env.
        seeds: start seeds, one episode each.
        name: the policy's name, for messages and the progress bar.
        progress: show a tqdm bar.

    Returns:
        One :class:`Episode` per seed, in order.
    """
    action_dim = int(backend.action_space.shape[-1])
    log: dict[int, list[np.ndarray]] = {}
    bar = tqdm(total=len(seeds), desc=f"{name} episodes", disable=not progress or None, leave=False)
    stats = run_episodes(backend, lambda: _Recorder(make_policy(), log, action_dim), seeds, record_seeds=seeds,
                         name=name, on_episode=lambda _: bar.update())
    bar.close()
    episodes = []
    for record in stats.episodes:
        actions = np.concatenate(log[record.seed])[: record.length]
        frames = np.asarray(record.frames)[: record.length]
        if len(actions) != record.length or len(frames) != record.length:
            raise RuntimeError(f"episode {record.seed}: {len(frames)} frames and {len(actions)} actions for "
                               f"{record.length} steps")
        episodes.append(Episode(record.seed, frames, actions, bool(record.success), float(record.max_coverage)))
    return episodes


def demonstrations(episodes: Sequence[Episode], learner: Learner, chunk_size: int, source: str = "demos",
                   first_episode: int = 0) -> Demonstrations:
    """Behaviour-cloning samples: each frame's target is the next ``chunk_size`` actions executed
    (the episode's last action repeated past its end).

    Args:
        episodes: what :func:`roll_out` returned (of the demonstrator).
        learner: featurizes the frames.
        chunk_size: actions per target.
        source: the samples' tag.
        first_episode: id of the first episode (ids must be unique across sources).
    """
    parts = []
    for k, ep in enumerate(episodes):
        index = np.zeros(len(ep.actions), np.int64)
        labels = chunk_targets(np.asarray(ep.actions, np.float32), index, chunk_size)
        parts.append(Demonstrations(learner.featurize(ep.frames), labels, index + first_episode + k,
                                    np.arange(len(index)), np.full(len(index), source)))
    if not parts:
        raise ValueError("no episodes")
    return Demonstrations.join(parts)


def from_dataset(root: str | Path, learner: Learner, chunk_size: int, source: str | None = None,
                 first_episode: int = 0) -> Demonstrations:
    """Behaviour-cloning samples from a stored LeRobotDataset (``world-gym generate``, ``world-gym
    collect``, a teleop recording): each frame's target is the next ``chunk_size`` actions of its episode.

    The dataset is checked whole first (:func:`world_gym.data.integrity.check_dataset`): a truncated
    or half-written one raises :class:`~world_gym.data.integrity.DatasetIntegrityError`, never a
    partial read. A dataset's last row of an episode (the final frame, no action of its own: its
    action column repeats the previous one) is not a sample.

    Args:
        root: dataset root.
        learner: featurizes the frames.
        chunk_size: actions per target.
        source: the samples' tag (default: the folder's name).
        first_episode: added to the dataset's episode indices.
    """
    from world_gym.data.episodes import load_episodes

    arrays = load_episodes(root, progress=False)
    rows = arrays.episode_rows()
    keep = np.concatenate([r[:-1] for r in rows]) if rows else np.zeros(0, np.int64)
    if not len(keep):
        raise ValueError(f"{root}: no episode with an action")
    index = arrays.episode_index[keep]
    labels = chunk_targets(arrays.actions[keep], index, chunk_size)
    steps = np.concatenate([np.arange(len(r) - 1) for r in rows])
    return Demonstrations(learner.featurize(np.asarray(arrays.frames[keep])), labels, index + first_episode, steps,
                          np.full(len(keep), source or Path(root).name))


def relabel(episodes: Sequence[Episode], expert: Policy, learner: Learner, chunk_size: int, source: str,
            first_episode: int = 0, limit: int | None = None, seed: int = 0,
            progress: bool = True, stride: int = 1) -> Demonstrations:
    """DAgger samples: the expert's chunk for frames the learner visited.

    The expert is ``reset`` with each episode's start seed and asked for one chunk per frame, in the
    episode's order (a memoryless expert, such as one reading the state off the frame, gives the same
    label for a frame wherever it came from).

    Args:
        episodes: the learner's episodes (:func:`roll_out`).
        expert: a policy returning ``(chunk_size, action_dim)`` for a frame.
        learner: featurizes the frames.
        chunk_size: actions per label.
        source: the samples' tag.
        first_episode: id of the first episode.
        limit: label at most this many frames, drawn uniformly at random (``seed``) from all of them:
            the same expert budget whatever the episodes' lengths.
        stride: label only frames ``0, stride, 2 * stride, ...`` of each episode (a learner acting in
            chunks of ``stride`` decides there).
        seed: the draw's seed.
        progress: show a tqdm bar.

    Raises:
        ValueError: the expert's chunk has another shape, or a label is not finite.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rows = [(k, t) for k, ep in enumerate(episodes) for t in range(0, len(ep.actions), stride)]
    if limit is not None and len(rows) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
        rows = [rows[i] for i in pick]
    if not rows:
        raise ValueError("no frames to label: the episodes are empty")
    action_dim = int(episodes[0].actions.shape[-1])
    labels, frames, index, steps = [], [], [], []
    current = None
    for k, t in tqdm(rows, desc=f"labelling {source}", disable=not progress or None, leave=False):
        if k != current:
            expert.reset(seed=episodes[k].seed)
            current = k
        frame = episodes[k].frames[t]
        chunk = np.asarray(expert.act(frame), np.float32)
        if chunk.shape != (chunk_size, action_dim):
            raise ValueError(f"the expert returned a chunk of shape {chunk.shape}; the learner needs "
                             f"({chunk_size}, {action_dim})")
        if not np.isfinite(chunk).all():
            raise ValueError(f"the expert returned a non-finite label for frame {t} of episode {episodes[k].seed}")
        labels.append(chunk)
        frames.append(frame)
        index.append(first_episode + k)
        steps.append(t)
    return Demonstrations(learner.featurize(np.stack(frames)), np.stack(labels), np.asarray(index, np.int64),
                          np.asarray(steps, np.int64), np.full(len(rows), source))


def episode_summary(episodes: Sequence[Episode]) -> dict[str, float]:
    """Success rate, mean max coverage and frames of a list of episodes."""
    cov = [e.max_coverage for e in episodes if not math.isnan(e.max_coverage)]
    return {"episodes": len(episodes), "success_rate": float(np.mean([e.success for e in episodes])) if episodes else 0.0,
            "mean_max_coverage": float(np.mean(cov)) if cov else math.nan,
            "frames": int(sum(len(e.actions) for e in episodes))}
