"""world_gym.convert_irasim: official IRASim pickles -> strict, safetensors world-model directories."""

from __future__ import annotations

import fractions
import json
import time
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from irasim_release import reference_forward, release_key_shapes, release_state_dict, save_release_checkpoint
from world_gym.convert_irasim import (
    RELEASES,
    backbone_from_state,
    check_position_embeddings,
    convert,
    infer_backbone_config,
    load_official_checkpoint,
)
from world_gym.cli import main as cli_main
from world_gym.codecs.vae import tiny_vae_config
from world_gym.world_model import WorldModel

GRIDS = {"languagetable": (18, 32), "rt1": (16, 20), "bridge": (16, 20)}  # tokens of 36x64 / 32x40 latents


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AutoencoderKL with 3 downsamplings (like SDXL's), saved as a diffusers ``vae/`` subfolder."""
    root = tmp_path_factory.mktemp("sdxl_like")
    torch.manual_seed(0)
    AutoencoderKL.from_config(tiny_vae_config(4, (8, 8, 8, 8))).save_pretrained(root / "vae")
    return root


def _checkpoint(tmp_path: Path, dataset: str, variant: str, prefix: str = "", seed: int = 0) -> tuple[Path, dict]:
    state = release_state_dict(dataset, variant, depth=2, hidden=64, grid_hw=GRIDS[dataset], seed=seed)
    return save_release_checkpoint(tmp_path / "0300000.pt", dataset, variant, state, prefix), state


@pytest.mark.parametrize(
    "dataset,variant,prefix",
    [("languagetable", "frame_ada", ""), ("languagetable", "video_ada", "module."), ("rt1", "frame_ada", ""),
     ("bridge", "video_ada", "module.")],
)
def test_convert_writes_strict_world_model(
    tmp_path: Path, vae_dir: Path, dataset: str, variant: str, prefix: str
) -> None:
    ckpt, state = _checkpoint(tmp_path, dataset, variant, prefix)
    out = convert(ckpt, dataset, vae_dir, tmp_path / "out", variant=variant)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    wm = WorldModel.from_pretrained(out)
    own = wm.backbone.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(own[key], value, msg=key)  # the EMA weights, not "model" (= ema + 1)
    release = RELEASES[dataset]
    cfg = wm.config
    assert tuple(cfg.frame_size) == release.frame_size and cfg.chunk_size == 15 and cfg.history == 1
    assert wm.backbone.config.latent_size == (GRIDS[dataset][0] * 2, GRIDS[dataset][1] * 2)
    assert wm.backbone.config.conditioning == variant and wm.backbone.config.num_heads == 4  # "tiny" size
    assert cfg.action.scale == list(release.action_scale)
    assert (cfg.sampler.name, cfg.sampler.num_inference_steps) == ("pndm", 50)
    assert cfg.metadata["variant"] == variant and cfg.metadata["weights"] == "ema"


@pytest.mark.parametrize("dataset", ["languagetable", "rt1"])
def test_converted_backbone_computes_the_release_forward(tmp_path: Path, vae_dir: Path, dataset: str) -> None:
    ckpt, state = _checkpoint(tmp_path, dataset, "frame_ada")
    wm = WorldModel.from_pretrained(convert(ckpt, dataset, vae_dir, tmp_path / "out"))
    gen = torch.Generator().manual_seed(1)
    h, w = wm.backbone.config.latent_size
    x = torch.randn(1, 16, 4, h, w, generator=gen)
    t = torch.tensor([417])
    scaled = torch.randn(1, 15, len(RELEASES[dataset].action_names), generator=gen)
    expected = reference_forward(state, dataset, x, t, scaled, heads=4)
    actions = torch.cat([torch.zeros(1, 1, scaled.shape[-1]), scaled], dim=1)
    mask = torch.tensor([[False] + [True] * 15])
    with torch.no_grad():
        got = wm.backbone(x, t, actions, mask)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_cli_and_model_weights_option(tmp_path: Path, vae_dir: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt, state = _checkpoint(tmp_path, "rt1", "frame_ada")
    out = tmp_path / "raw"
    assert cli_main(["convert-irasim", str(ckpt), "--dataset", "rt1", "--variant", "frame_ada",
                     "--vae", str(vae_dir / "vae"), "--out", str(out), "--weights", "model"]) == 0
    assert "wrote" in capsys.readouterr().out
    wm = WorldModel.from_pretrained(out)
    raw = state["embed_state.fc1.weight"] + 1.0
    torch.testing.assert_close(wm.backbone.state_dict()["embed_state.fc1.weight"], raw)
    assert json.loads((out / "config.json").read_text())["metadata"]["weights"] == "model"


def test_inconsistent_arguments_are_refused(tmp_path: Path, vae_dir: Path) -> None:
    ckpt, _ = _checkpoint(tmp_path, "rt1", "frame_ada")
    with pytest.raises(ValueError, match="trained on 'rt1', not 'bridge'"):
        convert(ckpt, "bridge", vae_dir, tmp_path / "a")
    with pytest.raises(ValueError, match="those of frame_ada"):
        convert(ckpt, "rt1", vae_dir, tmp_path / "b", variant="video_ada")
    assert not any((tmp_path / d).exists() for d in "ab")


def test_position_tables_catch_a_wrong_frame_size() -> None:
    state = release_state_dict("languagetable", "frame_ada", depth=2, hidden=64, grid_hw=GRIDS["languagetable"])
    release = RELEASES["languagetable"]
    check_position_embeddings(state, infer_backbone_config(state, release, "frame_ada", (36, 64)))
    with pytest.raises(ValueError, match="has 576 positions.*give 320"):  # RT-1-sized latents
        check_position_embeddings(state, infer_backbone_config(state, release, "frame_ada", (32, 40)))
    with pytest.raises(ValueError, match="does not match the sin-cos table"):  # same count, portrait
        check_position_embeddings(state, infer_backbone_config(state, release, "frame_ada", (64, 36)))


def test_missing_unexpected_and_misshaped_keys_are_named() -> None:
    state = release_state_dict("languagetable", "frame_ada", depth=2, hidden=64, grid_hw=(4, 4))
    del state["blocks.1.attn.proj.bias"]
    state["blocks.0.attn.q_norm.weight"] = torch.zeros(64)
    state["embed_state.bias"] = torch.zeros(65)
    config = infer_backbone_config(state, RELEASES["languagetable"], "frame_ada", (8, 8))
    with pytest.raises(ValueError) as err:
        backbone_from_state(state, config, "test.pt")
    message = str(err.value)
    assert "missing keys (1): blocks.1.attn.proj.bias" in message
    assert "unexpected keys (1): blocks.0.attn.q_norm.weight" in message
    assert "embed_state.bias: expected (64,), got (65,)" in message


def test_pickles_outside_the_allow_list_need_trust(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    state = release_state_dict("rt1", "frame_ada", depth=2, hidden=64, grid_hw=(2, 2))
    torch.save({"ema": state, "args": {"dataset": "rt1"}, "odd": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match="--trust-pickle"):
        load_official_checkpoint(path)
    loaded, args = load_official_checkpoint(path, trust_pickle=True)
    assert set(loaded) == set(state) and args == {"dataset": "rt1"}


def test_full_size_xl_state_dict_loads_without_key_errors() -> None:
    """IRASim-XL/2 at Language-Table size: every release key maps onto the backbone, no copy made."""
    t0 = time.perf_counter()
    grid = (18, 32)
    shapes = release_key_shapes("languagetable", "frame_ada", depth=28, hidden=1152, grid_hw=grid)
    # torch.empty leaves pages untouched, so ~2.7 GB of weights cost almost no memory or time here.
    state = {k: torch.empty(s) for k, s in shapes.items()}
    small = release_state_dict("languagetable", "frame_ada", depth=2, hidden=1152, grid_hw=grid)
    state["pos_embed"], state["temp_embed"] = small["pos_embed"], small["temp_embed"]
    config = infer_backbone_config(state, RELEASES["languagetable"], "frame_ada", (36, 64), {"model": "IRASim-XL/2"})
    assert (config.depth, config.hidden_size, config.num_heads, config.patch_size) == (28, 1152, 16, 2)
    check_position_embeddings(state, config)
    backbone = backbone_from_state(state, config, "xl.pt")
    n_params = sum(p.numel() for p in backbone.parameters())
    assert 6.5e8 < n_params < 7.5e8, n_params
    assert backbone.blocks[27].mlp.fc2.weight.data_ptr() == state["blocks.27.mlp.fc2.weight"].data_ptr()
    assert time.perf_counter() - t0 < 20
