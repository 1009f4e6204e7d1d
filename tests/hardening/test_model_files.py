"""Broken world-model directories and weights: every error names the file (and the tensor)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from world_gym.assets import bundled_model_path
from world_gym.env import WorldModelEnv
from world_gym.world_model import CONFIG_NAME, WEIGHTS_NAME, WorldModel


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "wm"
    shutil.copytree(bundled_model_path("tiny-pusht"), path)
    return path


def edit_config(path: Path, change) -> None:
    cfg = json.loads((path / CONFIG_NAME).read_text())
    change(cfg)
    (path / CONFIG_NAME).write_text(json.dumps(cfg))


def test_invalid_json_names_the_file(model_dir: Path) -> None:
    (model_dir / CONFIG_NAME).write_text('{"backbone": "IRASim",')
    with pytest.raises(ValueError, match=f"{model_dir / CONFIG_NAME} is not valid JSON"):
        WorldModel.from_pretrained(model_dir)
    (model_dir / CONFIG_NAME).write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="not UTF-8"):
        WorldModel.from_pretrained(model_dir)
    (model_dir / CONFIG_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        WorldModel.from_pretrained(model_dir)


@pytest.mark.parametrize("key", ["action", "codec", "backbone_config", "frame_size"])
def test_a_missing_required_key_is_named(model_dir: Path, key: str) -> None:
    edit_config(model_dir, lambda cfg: cfg.pop(key))
    with pytest.raises(ValueError, match=rf"{CONFIG_NAME}: config lacks the required keys \['{key}'\]"):
        WorldModel.from_pretrained(model_dir)


def test_unknown_and_malformed_entries_name_the_file(model_dir: Path) -> None:
    edit_config(model_dir, lambda cfg: cfg.update(chunk_sise=4))
    with pytest.raises(ValueError, match=r"config.json: config has unknown keys \['chunk_sise'\]"):
        WorldModel.from_pretrained(model_dir)
    edit_config(model_dir, lambda cfg: (cfg.pop("chunk_sise"), cfg["action"].pop("dim")))
    with pytest.raises(ValueError, match="config.json"):
        WorldModel.from_pretrained(model_dir)


def test_truncated_or_missing_weights_name_the_file(model_dir: Path) -> None:
    weights = model_dir / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{weights} is not a readable safetensors file"):
        WorldModel.from_pretrained(model_dir)
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=WEIGHTS_NAME):
        WorldModel.from_pretrained(model_dir)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=f"no weights file {weights}"):
        WorldModel.from_pretrained(model_dir)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(model_dir: Path, bad: float) -> None:
    weights = model_dir / WEIGHTS_NAME
    state = load_file(str(weights))
    name = next(k for k in sorted(state) if k.startswith("backbone.") and state[k].is_floating_point())
    state[name].view(-1)[0] = bad
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=rf"{weights}.*NaN or infinite.*{name}"):
        WorldModel.from_pretrained(model_dir)


def test_non_finite_reward_head_weights_are_refused(tmp_path: Path) -> None:
    from world_gym.assets import asset_path
    from world_gym.reward_models.resnet_iou import load_coverage_net

    source = asset_path("reward_heads", "resnet_iou_pusht.safetensors")
    state = load_file(str(source))
    name = sorted(k for k in state if state[k].is_floating_point())[0]
    state[name].view(-1)[0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
    path = tmp_path / "head.safetensors"
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(ValueError, match=rf"{path}.*NaN or infinite.*{name}"):
        load_coverage_net(path)
    path.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{path} is not a readable safetensors file"):
        load_coverage_net(path)


def test_non_finite_outputs_are_caught_on_the_latents(micro_model, micro_frames) -> None:
    """Weights that turn NaN after loading (or overflow) stop the step with a clear error."""
    env = WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2)
    env.reset(seed=0)
    with torch.no_grad():
        next(p for n, p in micro_model.backbone.named_parameters() if "final_layer" in n).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite latents"):
        env.step(np.full((2, 2), 256.0, np.float32))
    with pytest.raises(FloatingPointError, match="non-finite latents"):
        micro_model.rollout(micro_frames.frames[:1], np.full((1, 2, 2), 256.0))


def test_paths_that_are_not_model_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        WorldModel.from_pretrained(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        WorldModel.from_pretrained(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        WorldModel.from_pretrained(str(tmp_path / "absent"))


@pytest.mark.parametrize("name", ["tiny-pusht", "pusht-pose-state", "pusht-irasim-pose"])
def test_shipped_names_load(name: str) -> None:
    assert WorldModel.from_pretrained(name).config.frame_size == (96, 96)
