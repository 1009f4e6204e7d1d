"""Files that are not PyTorch checkpoints get "not a PyTorch checkpoint" from the IRASim converter,
never the advice to unpickle them with ``--trust-pickle``."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from world_gym.cli import main
from world_gym.convert_irasim import load_official_checkpoint


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def safetensors_file(path: Path) -> None:
    save_file({"x": torch.zeros(3)}, str(path))


def text(path: Path) -> None:
    path.write_text("model: IRASim-XL/2\nsteps: 300000\n")


def empty(path: Path) -> None:
    path.write_bytes(b"")


def plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"ema": {}}))


def zip_without_data_pkl(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")


KINDS = {"random bytes": (random_bytes, "another format"), "safetensors": (safetensors_file, "safetensors file"),
         "text": (text, "text file"), "empty": (empty, "empty file"), "plain pickle": (plain_pickle, "plain pickle"),
         "zip without data.pkl": (zip_without_data_pkl, "zip archive without the data.pkl")}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_not_a_checkpoint(tmp_path: Path, kind: str) -> None:
    write, detail = KINDS[kind]
    path = tmp_path / "0300000.pt"
    write(path)
    for trust in (False, True):  # not even the opt-in unpickles what is not a checkpoint
        with pytest.raises(ValueError, match="not a PyTorch checkpoint") as err:
            load_official_checkpoint(path, trust_pickle=trust)
        assert detail in str(err.value) and "--trust-pickle" not in str(err.value)


def test_the_command_line_says_so_too(tmp_path: Path) -> None:
    path = tmp_path / "0300000.pt"
    text(path)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        main(["convert-irasim", str(path), "--dataset", "languagetable", "--out", str(tmp_path / "out"), "--vae", str(tmp_path)])


@pytest.mark.parametrize("legacy", [False, True])
def test_real_checkpoints_still_load(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "0300000.pt"
    torch.save({"ema": {"module.w": torch.ones(2)}, "args": {"model": "IRASim-XL/2"}}, path,
               _use_new_zipfile_serialization=not legacy)
    state, args = load_official_checkpoint(path)
    assert torch.equal(state["w"], torch.ones(2)) and args == {"model": "IRASim-XL/2"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_official_checkpoint(tmp_path / "absent.pt")
