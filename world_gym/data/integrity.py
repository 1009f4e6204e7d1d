"""Integrity of a stored local LeRobotDataset: a truncated or half-written one is refused, whole.

>>> import tempfile
>>> try:
...     check_dataset(tempfile.mkdtemp())
... except DatasetIntegrityError:
...     print("refused")
refused
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from world_gym.data.lerobot_io import POLICY_LOG, SNAPSHOT, _relative_files


class DatasetIntegrityError(ValueError):
    """A stored dataset is truncated, inconsistent with its metadata, or was left mid-write."""


def _column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist()).reshape(-1)


def check_dataset(root: str | Path, decode_images: bool = False) -> dict[str, int]:
    """Verify a local LeRobotDataset before it is used, whole: never a silently partial read.

    Checks that ``meta/info.json`` parses; that no file was written after the writer's last
    snapshot (an interrupted write, which :func:`recover` rolls back); that every data and episode
    parquet file is complete (has its footer); that the rows add up to ``total_frames`` and the
    episodes to ``total_episodes``; and that each episode's rows are frames ``0 .. length - 1``
    of the length its metadata records. With ``decode_images``, every stored PNG is decoded and
    its size checked against the image feature's shape.

    Args:
        root: dataset root.
        decode_images: also decode every image (slower: reads all frames).

    Returns:
        ``{"episodes": ..., "frames": ...}``.

    Raises:
        DatasetIntegrityError: what is wrong, and with which file.
    """
    root = Path(root)
    info_path = root / "meta/info.json"
    try:
        info = json.loads(info_path.read_text())
        total_episodes, total_frames = int(info["total_episodes"]), int(info["total_frames"])
    except (OSError, ValueError, KeyError) as err:
        raise DatasetIntegrityError(f"{root}: no readable meta/info.json ({err}); not a LeRobotDataset root") from err
    if (root / SNAPSHOT).is_file():
        known = set(json.loads((root / SNAPSHOT).read_text())["files"]) | {SNAPSHOT, POLICY_LOG}
        extra = [f for f in _relative_files(root) if f not in known]
        pending = [p for p in (root / "images").rglob("*") if p.is_file()]  # PNGs of an unsaved episode
        if extra or pending:
            raise DatasetIntegrityError(
                f"{root} was left mid-write ({len(extra)} files after the last checkpoint, e.g. "
                f"{(extra or [str(p.relative_to(root)) for p in pending])[:3]}); "
                "world_gym.data.lerobot_io.recover(root) rolls it back")

    def read(path: Path, columns: list[str]) -> Any:
        try:
            return pq.read_table(path, columns=columns)
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a truncated file
            raise DatasetIntegrityError(f"{path} is truncated or corrupt: {err}") from err

    episode_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    lengths: dict[int, int] = {}
    for path in episode_files:
        table = read(path, ["episode_index", "length"])
        lengths.update(zip(_column(table, "episode_index").tolist(), _column(table, "length").tolist()))
    if sorted(lengths) != list(range(total_episodes)):
        raise DatasetIntegrityError(f"{root}: meta/episodes lists {len(lengths)} episodes, info.json "
                                    f"{total_episodes}; the metadata is incomplete")
    episode_index, frame_index = [], []
    image_key = next((k for k, f in info["features"].items() if f["dtype"] == "image"), None)
    for path in sorted((root / "data").glob("*/*.parquet")):
        table = read(path, ["episode_index", "frame_index"])
        episode_index.append(_column(table, "episode_index"))
        frame_index.append(_column(table, "frame_index"))
        if decode_images and image_key is not None:
            _check_images(path, read(path, [image_key]).column(image_key).to_pylist(), info["features"][image_key])
    rows = int(sum(len(e) for e in episode_index))
    if rows != total_frames or sum(lengths.values()) != total_frames:
        raise DatasetIntegrityError(f"{root}: data holds {rows} rows, episodes' lengths sum to "
                                    f"{sum(lengths.values())}, info.json says {total_frames} frames")
    if rows:
        episodes, frames = np.concatenate(episode_index), np.concatenate(frame_index)
        for ep, length in lengths.items():
            got = np.sort(frames[episodes == ep])
            if not np.array_equal(got, np.arange(length)):
                raise DatasetIntegrityError(f"{root}: episode {ep} has frames {got[:5].tolist()}... "
                                            f"({len(got)} rows), expected 0..{length - 1}")
    return {"episodes": total_episodes, "frames": total_frames}


def _check_images(path: Path, cells: list[Any], feature: dict[str, Any]) -> None:
    import io

    from PIL import Image

    for row, cell in enumerate(cells):
        data = cell["bytes"] if isinstance(cell, dict) else cell
        try:
            shape = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).shape
        except Exception as err:
            raise DatasetIntegrityError(f"{path}: image of row {row} does not decode: {err}") from err
        if tuple(shape) != tuple(feature["shape"]):
            raise DatasetIntegrityError(f"{path}: image of row {row} is {shape}, expected {tuple(feature['shape'])}")
