"""Local LeRobotDatasets of episodes: schema, crash-safe appending, reading seeds back.

Frames are stored as ``image`` features (PNG bytes inside the parquet files), not ``video``
features, so nothing needs a system ffmpeg. One row per frame; an episode of ``T`` env steps has
``T + 1`` rows: row ``t < T`` holds frame ``t`` and the action taken from it, with ``next.*`` the
reward / success / done that ``env.step`` returned; the last row holds the final frame ``T`` with the
last action repeated (the agent holds its target), ``next.reward`` / ``next.success`` of frame ``T``
itself and ``next.done = True`` (one done row per episode, as in ``lerobot/pusht``).
``observation.coverage`` is the coverage of the row's own frame, so frame-level labels never depend
on the ``next.*`` convention.

Appending is checkpointed: :class:`EpisodeWriter` finalizes the parquet files every few episodes
and records a snapshot of the dataset's files; after a crash, :func:`recover` deletes what was
written after the last snapshot, so a dataset on disk is always loadable and resuming never
duplicates an episode. :func:`world_gym.data.integrity.check_dataset` verifies a stored dataset before it is used.

A dataset's columns (a LeRobot features dict), frame rate and task text come from whoever writes
it: the ground-truth collector passes the Push-T schema
(:data:`world_gym.envs.pusht.ground_truth.PUSHT_FEATURES`); world-model datasets (``world-gym
generate``, ``world-gym teleop``) use the same row layout with the columns of
:func:`world_model_features`, built from the env's frame size and action width (a world model
returns frames only, so no column read off a simulator's state). :func:`build_episode` turns one
rollout into those rows.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

REPO_ID = "world-gym/dataset"
SNAPSHOT = "meta/world_gym_snapshot.json"
POLICY_LOG = "meta/world_gym_policies.json"
"""Written by the collector beside ``policy`` rollouts (which policy played each seed);
:func:`recover` keeps it."""
SOURCE = "meta/world_gym_source.json"
"""What produced a dataset (env id, model, policy, settings), written once at creation by
:class:`EpisodeWriter` (``source=``)."""
_RESTORED = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")
LEROBOT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
"""Columns LeRobot adds to every dataset (not part of a features dict passed to the writer)."""
UNLABELED = -1
"""``episode_label`` of an episode nobody labelled (1: success, 0: failure)."""


def scalar_feature(dtype: str) -> dict[str, Any]:
    """A LeRobot feature of one value per row (shape ``(1,)``) of ``dtype``."""
    return {"dtype": dtype, "shape": (1,), "names": None}


def world_model_features(
    frame_shape: tuple[int, int, int], action_dim: int, action_names: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Columns of a dataset recorded in a world-model env (besides LeRobot's index columns).

    ``observation.image`` (the imagined frame), ``action``, ``next.reward`` / ``next.success`` /
    ``next.done`` (the reward head's, in the row layout of this module), ``episode_seed`` (the
    env's reset seed) and ``episode_label`` (1 success, 0 failure, :data:`UNLABELED` when nobody
    labelled it: the generator writes the reward head's verdict, teleop the operator's mark).

    Args:
        frame_shape: ``(H, W, 3)`` of the env's observations.
        action_dim: width of one action.
        action_names: names of the action dimensions (default ``a0, a1, ...``).

    Returns:
        A LeRobot features dict.
    """
    if len(frame_shape) != 3 or frame_shape[2] != 3:
        raise ValueError(f"frame_shape must be (H, W, 3), got {tuple(frame_shape)}")
    if action_dim < 1:
        raise ValueError(f"action_dim must be >= 1, got {action_dim}")
    names = list(action_names) if action_names else [f"a{i}" for i in range(action_dim)]
    if len(names) != action_dim:
        raise ValueError(f"got {len(names)} action names for action_dim={action_dim}")
    return {
        "observation.image": {"dtype": "image", "shape": tuple(int(v) for v in frame_shape),
                              "names": ["height", "width", "channel"]},
        "action": {"dtype": "float32", "shape": (action_dim,), "names": {"motors": names}},
        "next.reward": scalar_feature("float32"),
        "next.success": scalar_feature("bool"),
        "next.done": scalar_feature("bool"),
        "episode_seed": scalar_feature("int64"),
        "episode_label": scalar_feature("int64"),
    }


def build_episode(
    frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, success: bool, seed: int,
    label: int = UNLABELED,
) -> dict[str, np.ndarray]:
    """Rows of :func:`world_model_features` for one rollout of ``T >= 1`` actions.

    Args:
        frames: ``(T + 1, H, W, 3)`` uint8, the start frame first.
        actions: ``(T, action_dim)``; action ``t`` led from frame ``t`` to frame ``t + 1``.
        rewards: ``(T,)``, the reward of frame ``t + 1``.
        success: the episode ended in success at its last frame.
        seed: the reset seed.
        label: the episode's label (1, 0 or :data:`UNLABELED`).

    Returns:
        Column -> ``(T + 1, ...)`` array, in the layout described at the top of this module.
    """
    frames = np.asarray(frames)
    actions = np.asarray(actions, np.float32)
    rewards = np.asarray(rewards, np.float32).reshape(-1)
    t = len(actions)
    if t < 1 or actions.ndim != 2:
        raise ValueError(f"actions must be (T >= 1, action_dim), got {actions.shape}")
    if frames.shape[0] != t + 1 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T + 1 = {t + 1}, H, W, 3), got {frames.shape} {frames.dtype}")
    if rewards.shape != (t,):
        raise ValueError(f"rewards must be ({t},), one per imagined frame, got {rewards.shape}")
    next_success = np.zeros((t + 1, 1), bool)
    next_success[t - 1:] = bool(success)
    return {
        "observation.image": frames,
        "action": np.concatenate([actions, actions[-1:]]),
        "next.reward": np.append(rewards, rewards[-1]).astype(np.float32)[:, None],
        "next.success": next_success,
        "next.done": (np.arange(t + 1) == t)[:, None],
        "episode_seed": np.full((t + 1, 1), int(seed), np.int64),
        "episode_label": np.full((t + 1, 1), int(label), np.int64),
    }


def episode_length(episode: dict[str, np.ndarray]) -> int:
    """Number of rows (frames) of an episode dict as :func:`validate_episode` accepts it."""
    return len(episode["observation.image"] if "observation.image" in episode else episode["action"])


def validate_episode(episode: dict[str, np.ndarray], features: dict[str, dict[str, Any]]) -> None:
    """Raise ``ValueError`` unless every column is present with ``(n_frames, *shape)`` and its dtype.

    Args:
        episode: column name -> array over the episode's frames.
        features: the dataset's columns.
    """
    missing = set(features) - set(episode)
    if missing:
        raise ValueError(f"episode lacks columns {sorted(missing)}")
    n = episode_length(episode)
    for key, feature in features.items():
        value = np.asarray(episode[key])
        dtype = np.uint8 if feature["dtype"] == "image" else np.dtype(feature["dtype"])
        if value.shape != (n, *feature["shape"]) or value.dtype != dtype:
            raise ValueError(
                f"column {key!r}: expected shape {(n, *feature['shape'])} dtype {np.dtype(dtype)}, "
                f"got {value.shape} {value.dtype}"
            )


def _feature_signature(features: dict[str, dict[str, Any]]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {k: (str(v["dtype"]), tuple(int(d) for d in v["shape"])) for k, v in sorted(features.items())}


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) inside the block and raise ``KeyboardInterrupt`` after it.

    Only in the main thread (the only one Python delivers signals to); elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous is not signal.SIG_IGN:
        if callable(previous):
            previous(*caught[0])
        else:
            raise KeyboardInterrupt


def _relative_files(root: Path) -> list[str]:
    files = [p for sub in ("data", "meta") for p in (root / sub).rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(root)) for p in files)


def _write_snapshot(root: Path) -> None:
    files = [f for f in _relative_files(root) if f != SNAPSHOT]
    copies = {f: (root / f).read_bytes().hex() for f in _RESTORED if (root / f).is_file()}
    tmp = root / (SNAPSHOT + ".tmp")
    tmp.write_text(json.dumps({"files": files, "copies": copies}))
    tmp.replace(root / SNAPSHOT)  # atomic: a snapshot is either the old or the new one


def recover(root: str | Path) -> bool:
    """Roll a dataset back to its last snapshot, deleting anything an interrupted writer left.

    Args:
        root: dataset root.

    Returns:
        True when something had to be undone (or the root was removed because it held no
        checkpointed episode), False when the dataset was already consistent or absent.

    Raises:
        FileNotFoundError: ``root`` exists but was not written by :class:`EpisodeWriter`.
    """
    root = Path(root)
    snapshot_path = root / SNAPSHOT
    if not root.exists():
        return False
    if not snapshot_path.is_file():
        raise FileNotFoundError(
            f"{root} exists but has no {SNAPSHOT}: not written by world-gym's EpisodeWriter; refusing to touch it"
        )
    snapshot = json.loads(snapshot_path.read_text())
    keep = set(snapshot["files"]) | {SNAPSHOT, POLICY_LOG}
    changed = False
    for rel in _relative_files(root):
        if rel not in keep:
            (root / rel).unlink()
            changed = True
    for rel, hexdata in snapshot["copies"].items():
        data = bytes.fromhex(hexdata)
        if not (root / rel).is_file() or (root / rel).read_bytes() != data:
            (root / rel).write_bytes(data)
            changed = True
    if (root / "images").exists():  # PNGs of an unsaved episode
        shutil.rmtree(root / "images")
        changed = True
    if json.loads((root / "meta/info.json").read_text())["total_episodes"] == 0:
        shutil.rmtree(root)
        return True
    return changed


def stored_seeds(root: str | Path) -> list[int]:
    """``episode_seed`` of every episode stored under ``root`` (after :func:`recover`), in order.

    Reads only that column of the parquet files, not the images.
    """
    root = Path(root)
    seeds: list[int] = []
    for path in sorted((root / "data").glob("*/*.parquet")):
        table = pq.read_table(path, columns=["episode_seed", "frame_index"])
        column = np.asarray(table.column("episode_seed").to_pylist()).reshape(-1)
        first = np.asarray(table.column("frame_index").to_pylist()).reshape(-1) == 0
        seeds.extend(int(s) for s in column[first])
    return seeds


class EpisodeWriter:
    """Appends episodes to a local LeRobotDataset, checkpointing every ``checkpoint_every`` episodes.

    Opening recovers the dataset (see :func:`recover`) and creates it when absent. Use as a context
    manager, or call :meth:`close`; an exception inside the ``with`` block still checkpoints what was
    saved so far.

    ``add_episode`` holds back Ctrl-C (SIGINT, in the main thread) until the episode is saved, so
    an interrupt never leaves half an episode in the open files.

    Args:
        root: dataset root (a local folder; nothing goes to the hub).
        checkpoint_every: episodes between parquet finalizations (the most a hard crash can lose).
        repo_id: name recorded in the dataset's metadata.
        features: the columns of a new dataset (required to create one; world-model envs:
            :func:`world_model_features`, gym-pusht: ``world_gym.envs.pusht.ground_truth.PUSHT_FEATURES``);
            an existing dataset keeps its own, and a different ``features`` raises ``ValueError``.
        fps: frames per second of a new dataset (required to create one).
        robot_type: recorded in a new dataset's metadata.
        task: the task text stored with every frame (or given to each :meth:`add_episode`).
        source: JSON-ready description of what produces the episodes (env, model, policy),
            written to :data:`SOURCE` when the dataset is created.

    >>> import tempfile
    >>> features = world_model_features((96, 96, 3), action_dim=2)
    >>> with EpisodeWriter(tempfile.mkdtemp() + "/ds", features=features, fps=10, task="push") as writer:
    ...     writer.num_episodes
    0
    """

    def __init__(self, root: str | Path, checkpoint_every: int = 10, repo_id: str = REPO_ID,
                 features: dict[str, dict[str, Any]] | None = None, fps: int | None = None,
                 robot_type: str | None = None, task: str | None = None,
                 source: dict[str, Any] | None = None) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.root = Path(root)
        self.checkpoint_every = checkpoint_every
        self.task = task
        recover(self.root)
        if (self.root / "meta/info.json").is_file():
            self.dataset = LeRobotDataset(repo_id, root=self.root)
            stored = {k: v for k, v in self.dataset.meta.features.items() if k not in LEROBOT_COLUMNS}
            if features is not None and _feature_signature(features) != _feature_signature(stored):
                raise ValueError(f"{self.root} holds a dataset with columns {_feature_signature(stored)}, "
                                 f"not the requested {_feature_signature(features)}; use another root")
            self.features = stored
        else:
            if features is None or fps is None:
                raise ValueError(f"creating a dataset at {self.root} needs its columns (features=) and frame rate "
                                 f"(fps=), got features={features is not None} fps={fps!r}")
            self.features = dict(features)
            self.dataset = LeRobotDataset.create(
                repo_id, fps=int(fps), features=self.features, root=self.root, robot_type=robot_type,
                use_videos=False,
            )
            if source is not None:
                (self.root / SOURCE).write_text(json.dumps(source, indent=1, default=str))
            _write_snapshot(self.root)  # marks the root as ours, with zero episodes
        self._unsaved = 0
        self._fresh = self.dataset.meta.total_episodes == 0

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far (checkpointed or not)."""
        return self.dataset.meta.total_episodes

    def add_episode(self, episode: dict[str, np.ndarray], task: str | None = None) -> None:
        """Save one episode (columns as in the writer's ``features``, leading axis = frames).

        Args:
            episode: column -> ``(n_frames, *shape)`` array.
            task: this episode's task text (default: the writer's).
        """
        validate_episode(episode, self.features)
        task = task or self.task
        if not task:
            raise ValueError("an episode needs a task text: pass task= to the writer or to add_episode")
        with _sigint_deferred():
            self._save(episode, task)

    def _save(self, episode: dict[str, np.ndarray], task: str) -> None:
        import datasets

        # Every time: lerobot's SuppressProgressBars re-enables them, and one "Map" bar per saved
        # episode would drown the collect bar.
        datasets.disable_progress_bars()
        for t in range(episode_length(episode)):
            frame = {key: np.asarray(episode[key][t]) for key in self.features}
            frame["task"] = task
            self.dataset.add_frame(frame)
        with warnings.catch_warnings():
            # lerobot's stats cast the bool columns to uint8 for histograms and says so every episode
            warnings.filterwarnings("ignore", message="Converting input from bool", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="Conversion of an array with ndim", category=DeprecationWarning)
            self.dataset.save_episode()
        self._unsaved += 1
        if self._unsaved >= self.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Finalize the open parquet files and snapshot the dataset; later writes go to new files."""
        if self._unsaved == 0:
            return
        with _sigint_deferred():
            self._checkpoint()

    def _checkpoint(self) -> None:
        self.dataset.finalize()
        # lerobot 0.4.4 re-opens the *same* parquet file after finalize() and would overwrite it;
        # these two flags make data and episode metadata continue in new files, as a fresh
        # LeRobotDataset(root=...) would, without re-reading all frames.
        from lerobot.datasets.utils import load_episodes

        self.dataset._writer_closed_for_reading = True
        self.dataset.meta.latest_episode = None
        self.dataset.meta.episodes = load_episodes(self.root)
        _write_snapshot(self.root)
        self._unsaved = 0
        self._fresh = False

    def close(self) -> None:
        """Checkpoint and close; an empty new dataset is removed."""
        self.checkpoint()
        self.dataset.finalize()
        if self._fresh and self.num_episodes == 0 and self.root.exists():
            shutil.rmtree(self.root)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dataset_summary(root: str | Path) -> dict[str, Any]:
    """Episodes, frames and success rate per (behaviour, noise level) of a stored dataset.

    Reads only the scalar columns. Success is ``next.success`` on an episode's last row.

    Args:
        root: dataset root written by :class:`EpisodeWriter`.

    Returns:
        ``{"episodes", "frames", "success_rate", "per_behavior": {"<code>@<noise>": {...}}}``.
    """
    columns = ["behavior", "noise_level", "next.success", "next.done"]
    rows: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for path in sorted((Path(root) / "data").glob("*/*.parquet")):
        table = pq.read_table(path, columns=columns)
        for c in columns:
            rows[c].append(np.asarray(table.column(c).to_pylist()).reshape(-1))
    if not rows["behavior"]:
        return {"episodes": 0, "frames": 0, "success_rate": None, "per_behavior": {}}
    data = {c: np.concatenate(v) for c, v in rows.items()}
    last = data["next.done"].astype(bool)
    per: dict[str, dict[str, float]] = {}
    for code, noise in sorted(set(zip(data["behavior"][last].tolist(), data["noise_level"][last].tolist()))):
        episodes = last & (data["behavior"] == code) & (data["noise_level"] == noise)
        frames = (data["behavior"] == code) & (data["noise_level"] == noise)
        per[f"{code}@{noise:g}"] = {
            "episodes": int(episodes.sum()),
            "frames": int(frames.sum()),
            "success_rate": round(float(data["next.success"][episodes].mean()), 3),
        }
    return {
        "episodes": int(last.sum()),
        "frames": int(len(last)),
        "success_rate": round(float(data["next.success"][last].mean()), 3),
        "per_behavior": per,
    }
