"""Precomputed start-frame encodings in a model directory (world_gym.start_encodings)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from world_gym.assets import bundled_model_path
from world_gym.env import WorldModelEnv
from world_gym.initial_states import FrameBank
from world_gym.start_encodings import (
    START_ENCODINGS_NAME,
    frame_digest,
    read_start_encodings,
    write_start_encodings,
)
from world_gym.world_model import WorldModel


@pytest.fixture
def bank() -> FrameBank:
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)
    return FrameBank(frames, {"seed": np.arange(4)})


@pytest.fixture
def model_dir(tmp_path: Path, bank: FrameBank) -> Path:
    """A copy of the shipped tiny model with the encodings of ``bank``'s frames."""
    path = tmp_path / "wm"
    shutil.copytree(bundled_model_path("tiny-pusht"), path)
    write_start_encodings(path, bank.frames[[0, 1, 2, 2, 3]], progress=False)  # a repeated frame is stored once
    return path


def test_file_round_trips_exactly_what_a_cold_encode_gives(model_dir: Path, bank: FrameBank) -> None:
    model = WorldModel.from_pretrained(model_dir)
    assert model.start_encodings is not None and len(model.start_encodings) == 4
    entries = model.start_encodings.entries(model)
    cold = WorldModel.from_pretrained(model_dir, start_encodings=False)
    assert cold.start_encodings is None
    for frame in bank.frames:
        assert torch.equal(entries[frame_digest(frame)], cold.encode(frame[None])[0])
    assert (model_dir / START_ENCODINGS_NAME).stat().st_size < 64 * 2**10


def test_a_fresh_envs_reset_from_a_bank_frame_does_not_encode(model_dir: Path, bank: FrameBank,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model = WorldModel.from_pretrained(model_dir)
    calls: list[int] = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda frames: calls.append(len(frames)) or encode(frames))
    env = WorldModelEnv(model=model, initial_states=bank, device="cpu", chunk_size=2, reward_model="zero")
    env.reset(seed=0, options={"episode": 2})
    env.reset(seed=1)
    assert calls == []
    env.reset(seed=0, options={"initial_frame": 255 - bank.frames[0]})
    assert calls == [1]
    cold = WorldModelEnv(model=model, initial_states=bank, device="cpu", chunk_size=2, reward_model="zero")
    cold.unwrapped._episodes.start_encodings.clear()
    env.reset(seed=7, options={"episode": 3})
    cold.reset(seed=7, options={"episode": 3})
    actions = np.full((2, 2), 256.0, np.float32)
    np.testing.assert_array_equal(env.step(actions)[0], cold.step(actions)[0])


def test_a_file_of_another_model_is_ignored_with_a_warning(model_dir: Path, tmp_path: Path, bank: FrameBank) -> None:
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    state = load_file(str(other / "model.safetensors"))
    name = next(k for k in sorted(state) if k.startswith("codec.") and state[k].is_floating_point())
    state[name] = state[name] + 0.01
    save_file(state, str(other / "model.safetensors"))
    with pytest.warns(UserWarning, match=rf"ignoring {other / START_ENCODINGS_NAME}: the model's codec"):
        model = WorldModel.from_pretrained(other)
    assert model.start_encodings is None
    calls: list[int] = []
    encode = model.encode
    model.encode = lambda frames: calls.append(len(frames)) or encode(frames)  # type: ignore[method-assign]
    WorldModelEnv(model=model, initial_states=bank, device="cpu", reward_model="zero").reset(options={"episode": 0})
    assert calls == [1]


def test_encodings_are_not_used_once_the_codec_changes(model_dir: Path, bank: FrameBank) -> None:
    def pinned(**kwargs) -> int:
        env = WorldModelEnv(initial_states=bank, device="cpu", reward_model="zero", **kwargs)
        return len(env.unwrapped._episodes.start_encodings)

    assert pinned(model=model_dir) == 4
    assert pinned(model=model_dir, codec_dtype=torch.bfloat16) == 0
    model = WorldModel.from_pretrained(model_dir)
    with torch.no_grad():
        next(model.codec.parameters()).add_(0.01)  # weights changed after loading: the entries are stale
    assert pinned(model=model) == 0


def test_latents_of_another_shape_are_refused(model_dir: Path) -> None:
    path = model_dir / START_ENCODINGS_NAME
    encodings = read_start_encodings(path)
    encodings.latents = encodings.latents[:, :2]
    encodings.save(path)
    with pytest.warns(UserWarning, match=r"latents of shape \(2, 24, 24\), the model's are \(4, 24, 24\)"):
        assert WorldModel.from_pretrained(model_dir).start_encodings is None


def test_malformed_files_name_the_file(model_dir: Path) -> None:
    path = model_dir / START_ENCODINGS_NAME
    save_file({"latents": torch.zeros(2, 4, 24, 24)}, str(path), metadata={"format": "other"})
    with pytest.raises(ValueError, match=rf"{path} is not a start-encodings file: metadata format"):
        WorldModel.from_pretrained(model_dir)
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=f"{path} is not a readable safetensors file"):
        WorldModel.from_pretrained(model_dir)
    write_start_encodings(model_dir, np.zeros((1, 96, 96, 3), np.uint8), progress=False)  # rewrites a broken file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(WorldModel.from_pretrained(model_dir).start_encodings) == 1


def test_save_pretrained_keeps_matching_encodings_only(model_dir: Path, tmp_path: Path) -> None:
    model = WorldModel.from_pretrained(model_dir)
    assert len(WorldModel.from_pretrained(model.save_pretrained(tmp_path / "copy")).start_encodings) == 4
    with torch.no_grad():
        next(model.codec.parameters()).add_(0.01)
    assert not (model.save_pretrained(tmp_path / "changed") / START_ENCODINGS_NAME).exists()


@pytest.mark.parametrize("name", ["pusht-irasim-pose", "pusht-pose-state"])
def test_shipped_pose_models_hold_the_encodings_of_every_bank_frame(name: str) -> None:
    from world_gym.envs.pusht.family import load_initial_states

    model = WorldModel.from_pretrained(name)
    assert model.start_encodings is not None and model.start_encodings.mismatch(model) is None
    entries = model.start_encodings.entries(model)
    frames = load_initial_states().frames
    assert all(frame_digest(frame) in entries for frame in frames)
    torch.testing.assert_close(entries[frame_digest(frames[3])], model.encode(frames[3:4])[0], rtol=0, atol=1e-5)


def test_the_command_writes_the_file_for_an_npz_of_frames(tmp_path: Path, bank: FrameBank) -> None:
    from world_gym.cli import main

    path = tmp_path / "wm"
    shutil.copytree(bundled_model_path("tiny-pusht"), path)
    bank.save_npz(tmp_path / "bank.npz")
    assert main(["start-encodings", str(path), "--frames", str(tmp_path / "bank.npz")]) == 0
    assert len(read_start_encodings(path / START_ENCODINGS_NAME)) == len(bank)
