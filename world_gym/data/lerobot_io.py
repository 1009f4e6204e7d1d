"""Local LeRobotDatasets of gym-pusht episodes: schema, crash-safe appending, reading seeds back.

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
duplicates an episode.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from world_gym.envs.pusht_ground_truth import FPS, FRAME_SIZE, TASK

REPO_ID = "world-gym/pusht"
SNAPSHOT = "meta/world_gym_snapshot.json"
POLICY_LOG = "meta/world_gym_policies.json"
"""Written by the collector beside ``policy`` rollouts (which policy played each seed);
:func:`recover` keeps it."""
_RESTORED = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")


def _scalar(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": (1,), "names": None}


PUSHT_FEATURES: dict[str, dict[str, Any]] = {
    "observation.image": {
        "dtype": "image",
        "shape": (FRAME_SIZE, FRAME_SIZE, 3),
        "names": ["height", "width", "channel"],
    },
    "observation.state": {"dtype": "float32", "shape": (2,), "names": {"motors": ["x", "y"]}},
    "action": {"dtype": "float32", "shape": (2,), "names": {"motors": ["x", "y"]}},
    "observation.block_pose": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "angle"]},
    "observation.coverage": _scalar("float32"),
    "next.reward": _scalar("float32"),
    "next.success": _scalar("bool"),
    "next.done": _scalar("bool"),
    "behavior": _scalar("int64"),
    "noise_level": _scalar("float32"),
    "episode_seed": _scalar("int64"),
}
"""Columns of a world-gym Push-T dataset (besides LeRobot's index columns)."""

EPISODE_KEYS = tuple(PUSHT_FEATURES)


def episode_length(episode: dict[str, np.ndarray]) -> int:
    """Number of rows (frames) of an episode dict as :func:`validate_episode` accepts it."""
    return len(episode["observation.image"])


def validate_episode(episode: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` unless every column is present with ``(n_frames, *shape)`` and its dtype.

    Args:
        episode: column name -> array over the episode's frames.
    """
    missing = set(EPISODE_KEYS) - set(episode)
    if missing:
        raise ValueError(f"episode lacks columns {sorted(missing)}")
    n = episode_length(episode)
    for key, feature in PUSHT_FEATURES.items():
        value = np.asarray(episode[key])
        dtype = np.uint8 if feature["dtype"] == "image" else np.dtype(feature["dtype"])
        if value.shape != (n, *feature["shape"]) or value.dtype != dtype:
            raise ValueError(
                f"column {key!r}: expected shape {(n, *feature['shape'])} dtype {np.dtype(dtype)}, "
                f"got {value.shape} {value.dtype}"
            )


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

    Args:
        root: dataset root (a local folder; nothing goes to the hub).
        checkpoint_every: episodes between parquet finalizations (the most a hard crash can lose).
        repo_id: name recorded in the dataset's metadata.

    >>> import tempfile
    >>> with EpisodeWriter(tempfile.mkdtemp() + "/ds") as writer:
    ...     writer.num_episodes
    0
    """

    def __init__(self, root: str | Path, checkpoint_every: int = 10, repo_id: str = REPO_ID) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.root = Path(root)
        self.checkpoint_every = checkpoint_every
        recover(self.root)
        if (self.root / "meta/info.json").is_file():
            self.dataset = LeRobotDataset(repo_id, root=self.root)
        else:
            self.dataset = LeRobotDataset.create(
                repo_id, fps=FPS, features=PUSHT_FEATURES, root=self.root, robot_type="pusht", use_videos=False
            )
            _write_snapshot(self.root)  # marks the root as ours, with zero episodes
        self._unsaved = 0
        self._fresh = self.dataset.meta.total_episodes == 0

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far (checkpointed or not)."""
        return self.dataset.meta.total_episodes

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Save one episode (columns as in :data:`PUSHT_FEATURES`, leading axis = frames)."""
        import datasets

        validate_episode(episode)
        # Every time: lerobot's SuppressProgressBars re-enables them, and one "Map" bar per saved
        # episode would drown the collect bar.
        datasets.disable_progress_bars()
        for t in range(episode_length(episode)):
            frame = {key: np.asarray(episode[key][t]) for key in EPISODE_KEYS}
            frame["task"] = TASK
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
