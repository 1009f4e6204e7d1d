"""Replay manifests: gym-pusht episodes packed as seeds + actions and replayed into the same frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from world_gym.data.replay import pack_manifest, register, replay_manifest
from world_gym.data.episodes import load_episodes


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    import world_gym.data.collect as col

    tmp = tmp_path_factory.mktemp("replay")
    col.collect(tmp / "a", 2, "heldout", "expert=1", workers=1, progress=False, max_steps=6)
    col.collect(tmp / "b", 1, "train", "play=1", workers=1, progress=False, max_steps=5)
    return [tmp / "a", tmp / "b"]


def test_replay_reproduces_every_stored_frame(tmp_path: Path, roots: list[Path]) -> None:
    manifest = pack_manifest(roots, tmp_path / "m.npz")
    m = np.load(manifest)
    stored = [load_episodes(r, progress=False) for r in roots]
    assert len(m["seeds"]) == 3 and m["lengths"].sum() == sum(len(s) for s in stored)
    assert list(m["roots"]) == [str(r) for r in roots]
    replayed = replay_manifest(manifest, workers=1, progress=False)
    np.testing.assert_array_equal(replayed.frames, np.concatenate([s.frames for s in stored]))
    np.testing.assert_array_equal(replayed.actions, np.concatenate([s.actions for s in stored]))
    # episodes keep their own indices across roots, as load_training_episodes numbers them
    assert replayed.episode_index.tolist() == np.repeat([0, 1, 2], m["lengths"]).tolist()
    first = replay_manifest(manifest, workers=2, episodes=1, progress=False)  # worker processes too
    np.testing.assert_array_equal(first.frames, stored[0].frames[stored[0].episode_index == 0])


def test_replay_notices_another_simulator(tmp_path: Path, roots: list[Path]) -> None:
    manifest = pack_manifest(roots[:1], tmp_path / "m.npz")
    m = dict(np.load(manifest))
    m["final_coverage"] = m["final_coverage"] + np.array([0.01, 0.0])  # recorded by another physics
    np.savez(tmp_path / "bad.npz", **m)
    with pytest.raises(RuntimeError, match="1 replayed episodes end elsewhere"):
        replay_manifest(tmp_path / "bad.npz", progress=False)


def test_cli_pack_and_check(tmp_path: Path, roots: list[Path], capsys: pytest.CaptureFixture) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "m.npz"
    args = parser.parse_args(["replay", "pack", "--root", str(roots[0]), "--root", str(roots[1]),
                              "--out", str(out)])
    assert args.func(args) == 0 and "3 episodes" in capsys.readouterr().out
    args = parser.parse_args(["replay", "check", "--manifest", str(out), "--root", str(roots[0]),
                              "--episodes", "2"])
    assert args.func(args) == 0 and "differ from" in capsys.readouterr().out and out.is_file()


def test_encode_from_a_manifest(tmp_path: Path, roots: list[Path]) -> None:
    import json

    import torch

    from world_gym.codecs.vae import LatentCodec, tiny_vae_config
    from world_gym.training.common import compose
    from world_gym.training.train_codec import encode_dataset

    codec = tmp_path / "codec"  # a random-weight tiny codec, as `train codec` lays one out
    torch.manual_seed(0)
    LatentCodec.from_config(tiny_vae_config()).vae.save_pretrained(codec / "vae")
    (codec / "codec.json").write_text(json.dumps({"scaling_factor": 1.0}))
    manifest = pack_manifest(roots, tmp_path / "m.npz")

    cfg = compose("train_codec", [f"out_dir={codec}", "trainer.threads=1", f"data.replay_manifest={manifest}",
                                  "data.train_root=/nonexistent"])
    encode_dataset(cfg)
    latents = np.load(codec / "latents.npy")
    assert len(latents) == np.load(manifest)["lengths"].sum() and latents.dtype == np.float16
    assert torch.isfinite(torch.from_numpy(latents.astype(np.float32))).all()
    np.testing.assert_array_equal(np.load(codec / "actions.npy"), np.load(manifest)["actions"])
    record = json.loads((codec / "latents.json").read_text())
    assert record["roots"] == [f"replay:{manifest}", *map(str, roots)] and record["episodes"] == 3
