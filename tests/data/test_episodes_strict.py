"""load_episodes never uses a truncated dataset in part unless asked to."""

from __future__ import annotations

import numpy as np
import pytest

from training_data import write_tiny_dataset
from world_gym.data.episodes import load_episodes
from world_gym.data.integrity import DatasetIntegrityError


def _second_file(root):
    """Move episode 1 into a second data file, as a writer that rolls files over would."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    keep = pc.equal(table["episode_index"], 0)
    pq.write_table(table.filter(keep), path)
    second = path.with_name("file-001.parquet")
    pq.write_table(table.filter(pc.invert(keep)), second)
    return second


def test_whole_dataset_reads(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", episodes=2, length=5)
    _second_file(root)
    assert load_episodes(root, cache=False, progress=False).episode_index.tolist() == [0] * 5 + [1] * 5


def test_truncated_file_raises_naming_it(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", episodes=2, length=5)
    second = _second_file(root)
    second.write_bytes(second.read_bytes()[:-40])  # no footer: a file cut short
    with pytest.raises(DatasetIntegrityError, match="file-001.parquet"):
        load_episodes(root, cache=False, progress=False)
    with pytest.warns(UserWarning, match="skipping unfinished parquet file"):
        part = load_episodes(root, cache=False, progress=False, allow_partial=True)
    assert np.unique(part.episode_index).tolist() == [0]


def test_missing_episode_raises(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", episodes=2, length=5)
    _second_file(root).unlink()  # a whole data file lost: the rows no longer add up
    with pytest.raises(DatasetIntegrityError, match="rows"):
        load_episodes(root, cache=False, progress=False)
