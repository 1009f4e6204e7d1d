"""Frames and actions of a local LeRobotDataset as in-memory arrays, cached as ``.npy`` files.

The image column of a LeRobotDataset with image features holds PNG bytes in parquet; decoding
every frame on each epoch would dominate CPU training, so the decoded arrays are cached once per
dataset version (keyed by the parquet files' names, sizes and modification times).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

IMAGE_KEY = "observation.image"
CACHE_DIR = "world_gym_cache"


def clip_starts(episode_index: np.ndarray, length: int) -> np.ndarray:
    """Rows ``t`` such that rows ``t .. t + length - 1`` of ``episode_index`` (sorted by episode)
    belong to one episode."""
    if length > len(episode_index):
        return np.zeros(0, np.int64)
    return np.flatnonzero(episode_index[: len(episode_index) - length + 1] == episode_index[length - 1 :])


def chunk_targets(actions: np.ndarray, episode_index: np.ndarray, chunk_size: int) -> np.ndarray:
    """For each row ``t``, actions ``t .. t + chunk_size - 1`` of its episode (the last one repeated)."""
    n = len(actions)
    idx = np.arange(n)[:, None] + np.arange(chunk_size)[None, :]
    last_row = np.zeros(n, np.int64)
    for rows in np.split(np.arange(n), np.flatnonzero(np.diff(episode_index)) + 1):
        last_row[rows] = rows[-1]
    return actions[np.minimum(idx, last_row[:, None])]


@dataclass
class EpisodeArrays:
    """Rows of a dataset sorted by episode then frame.

    Attributes:
        frames: ``(N, H, W, 3)`` uint8 (``(N, 0, 0, 3)`` when read with ``images=False``).
        actions: ``(N, A)`` float32; row ``t``'s action leads from frame ``t`` to frame ``t + 1``.
        episode_index: ``(N,)`` int64.
        extras: other requested columns, ``(N, ...)``.
    """

    frames: np.ndarray
    actions: np.ndarray
    episode_index: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.episode_index)

    @property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode_index))

    def clip_starts(self, length: int) -> np.ndarray:
        """Rows ``t`` such that rows ``t .. t + length - 1`` belong to one episode."""
        return clip_starts(self.episode_index, length)

    def episode_rows(self) -> list[np.ndarray]:
        """Row indices of each episode, in order."""
        bounds = np.flatnonzero(np.diff(self.episode_index)) + 1
        return np.split(np.arange(len(self)), bounds)


def _parquet_files(root: Path, allow_partial: bool) -> list[Path]:
    """The dataset's data parquet files. Unless ``allow_partial``, the dataset is first checked whole
    (:func:`world_gym.data.integrity.check_dataset`): a truncated or half-written one raises. With
    ``allow_partial`` a file still being written (no footer yet) is skipped with a warning, so training
    can start on a dataset that a collector is still growing."""
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files under {root / 'data'}: not a LeRobotDataset root")
    if not allow_partial:
        from world_gym.data.integrity import check_dataset

        check_dataset(root)
        return files
    readable = []
    for path in files:
        try:
            pq.read_metadata(path)
            readable.append(path)
        except Exception as err:  # pyarrow raises ArrowInvalid for a file without its footer
            warnings.warn(f"skipping unfinished parquet file {path}: {err}", stacklevel=3)
    if not readable:
        raise FileNotFoundError(f"no finished parquet file under {root / 'data'} yet")
    return readable


def _cache_key(files: list[Path], columns: tuple[str, ...]) -> str:
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha1(json.dumps([stamp, columns]).encode()).hexdigest()[:16]


def _decode(cell: dict | bytes) -> np.ndarray:
    data = cell["bytes"] if isinstance(cell, dict) else cell
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


def load_episodes(
    root: str | Path, extra_columns: tuple[str, ...] = (), cache: bool = True, progress: bool = True,
    images: bool = True, allow_partial: bool = False,
) -> EpisodeArrays:
    """Read frames, actions and ``extra_columns`` of the dataset at ``root`` (a local LeRobotDataset).

    With ``images=False`` the frames are not decoded (``frames`` is empty), which makes reading
    state columns such as the privileged poses a matter of seconds; a cache written with the
    images serves such a call too.

    Raises:
        world_gym.data.integrity.DatasetIntegrityError: the dataset is truncated, corrupt or was left
            mid-write (never read in part), unless ``allow_partial`` is set: then unfinished parquet
            files are skipped with a warning (reading a dataset a collector is still writing).
    """
    root = Path(root)
    files = _parquet_files(root, allow_partial)
    columns = ("episode_index", "frame_index", "action", *extra_columns)
    cache_dir = root / CACHE_DIR / _cache_key(files, columns)
    if cache and (cache_dir / "done").is_file():
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in cache_dir.glob("*.npy")}
        return _assemble(arrays, extra_columns, images)
    if not images:
        cache_dir = root / CACHE_DIR / _cache_key(files, (*columns, "<no images>"))
        if cache and (cache_dir / "done").is_file():
            return _assemble({p.stem: np.load(p, mmap_mode="r") for p in cache_dir.glob("*.npy")}, extra_columns, False)

    read = [*columns, IMAGE_KEY] if images else list(columns)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in read}
    for path in tqdm(files, desc=f"{'decoding' if images else 'reading'} {root.name}", disable=not progress):
        table = pq.read_table(path, columns=read)
        for key in columns:
            parts[key].append(np.asarray(table.column(key).to_pylist()))
        if images:
            parts[IMAGE_KEY].append(np.stack([_decode(c) for c in table.column(IMAGE_KEY).to_pylist()]))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.lexsort((arrays["frame_index"].reshape(-1), arrays["episode_index"].reshape(-1)))
    arrays = {k: v[order] for k, v in arrays.items()}
    if cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for key, value in arrays.items():
            np.save(cache_dir / f"{key}.npy", value)
        (cache_dir / "done").write_text("ok\n")
    return _assemble(arrays, extra_columns, images)


def _assemble(arrays: dict[str, np.ndarray], extra_columns: tuple[str, ...], images: bool = True) -> EpisodeArrays:
    n = len(arrays["episode_index"])
    return EpisodeArrays(
        frames=np.asarray(arrays[IMAGE_KEY]) if images else np.zeros((n, 0, 0, 3), np.uint8),
        actions=np.asarray(arrays["action"], np.float32),
        episode_index=np.asarray(arrays["episode_index"]).reshape(-1).astype(np.int64),
        extras={k: np.asarray(arrays[k]) for k in extra_columns},
    )


def load_training_episodes(roots: str | Path | list, progress: bool = True) -> EpisodeArrays:
    """Frames and actions of one or several dataset roots, as one set of episodes.

    Episode indices of later roots are shifted past those of earlier ones, so every episode keeps
    its own index (clips never cross from one root's episode into another's).

    Args:
        roots: a root, or a list of them (e.g. the collector's behaviour mix and rollouts of
            learned policies, ``data.train_root`` + ``data.extra_train_roots``).
        progress: show decoding progress.
    """
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if not roots:
        raise ValueError("no dataset root given")
    parts = [load_episodes(r, progress=progress) for r in roots]
    if len(parts) == 1:
        return parts[0]
    offset, index = 0, []
    for part in parts:
        index.append(part.episode_index + offset)
        offset = int(index[-1].max()) + 1 if len(part) else offset
    frames = np.concatenate([p.frames for p in parts])
    return EpisodeArrays(frames, np.concatenate([p.actions for p in parts]), np.concatenate(index))
