"""The training pipeline end to end on a tiny dataset: codec, encode, dynamics (resume, DDP), export."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training_data import training_overrides, write_tiny_dataset
from world_gym.data.episodes import load_episodes
from world_gym.training.common import compose
from world_gym.training.train_codec import (
    codec_from_model,
    encode_dataset,
    finetune_decoder,
    attach_fast_decoder,
    load_codec,
    main_codec_from_model,
    train_fast_decoder,
)
from world_gym.training.train_dynamics import export_world_model, train_dynamics
from world_gym.assets import bundled_model_path
from world_gym.world_model import WorldModel


def test_reader_restores_order_and_caches(tmp_path):
    write_tiny_dataset(tmp_path / "ds", episodes=2, length=6)
    first = load_episodes(tmp_path / "ds", ("observation.coverage",), progress=False)
    assert first.frames.shape == (12, 32, 32, 3) and first.actions.shape == (12, 2)
    assert first.episode_index.tolist() == [0] * 6 + [1] * 6
    np.testing.assert_allclose(first.extras["observation.coverage"][:6, 0], np.arange(6) / 6, rtol=1e-6)
    assert first.clip_starts(5).tolist() == [0, 1, 6, 7]
    cached = load_episodes(tmp_path / "ds", ("observation.coverage",), progress=False)
    np.testing.assert_array_equal(cached.frames, first.frames)


def test_codec_stage_outputs(pipeline):
    codec = pipeline / "codec"
    assert (codec / "vae" / "config.json").is_file() and (codec / "codec.json").is_file()
    latents = np.load(codec / "latents.npy")
    assert latents.shape == (36, 4, 16, 16) and latents.dtype == np.float16
    with open(codec / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["2", "3"] and float(rows[-1]["heldout_psnr"]) > 0


def test_encode_adds_extra_training_roots(tmp_path, pipeline):
    import shutil

    codec = tmp_path / "codec"
    shutil.copytree(pipeline / "codec", codec)
    overrides = [o for o in training_overrides(pipeline) if o.startswith(("data.", "codec."))]
    cfg = compose("train_codec", [*overrides, f"out_dir={codec}", "trainer.threads=1",
                                  f"data.extra_train_roots=[{pipeline / 'heldout'}]"])
    encode_dataset(cfg)
    extra = load_episodes(pipeline / "heldout", progress=False)
    latents, episodes = np.load(codec / "latents.npy"), np.load(codec / "episode_index.npy")
    assert len(latents) == len(episodes) == 36 + len(extra)
    np.testing.assert_array_equal(latents[:36], np.load(pipeline / "codec" / "latents.npy"))
    # the extra root's episode follows the three of train_root under its own index
    assert episodes[:36].max() == 2 and set(episodes[36:]) == {3}
    np.testing.assert_array_equal(np.load(codec / "actions.npy")[36:], extra.actions)
    import json

    record = json.loads((codec / "latents.json").read_text())
    roots = [str(pipeline / "train"), str(pipeline / "heldout")]
    assert record == {"roots": roots, "frames": 36 + len(extra), "episodes": 4}


def test_reader_skips_images_when_asked(tmp_path):
    write_tiny_dataset(tmp_path / "ds", episodes=2, length=6)
    cols = ("observation.coverage",)
    bare = load_episodes(tmp_path / "ds", cols, progress=False, images=False)  # no cache yet: reads the columns
    assert len(bare) == 12 and bare.frames.shape == (12, 0, 0, 3) and bare.clip_starts(5).tolist() == [0, 1, 6, 7]
    full = load_episodes(tmp_path / "ds", cols, progress=False)
    assert full.frames.shape == (12, 32, 32, 3)  # the column-only cache does not stand in for the images
    np.testing.assert_array_equal(bare.actions, full.actions)
    np.testing.assert_array_equal(bare.extras["observation.coverage"], full.extras["observation.coverage"])
    assert len(list((tmp_path / "ds").rglob("done"))) == 2  # one cache with the images, one without
    again = load_episodes(tmp_path / "ds", cols, progress=False, images=False)  # from a cache
    np.testing.assert_array_equal(again.episode_index, full.episode_index)


def test_decoder_finetuning_keeps_the_encoder_and_latents(tmp_path, pipeline):
    import shutil

    from diffusers import AutoencoderKL

    codec = tmp_path / "codec"
    shutil.copytree(pipeline / "codec", codec)
    overrides = [o for o in training_overrides(pipeline) if o.startswith(("data.", "codec."))]
    cfg = compose("train_codec", [*overrides, f"out_dir={codec}", "trainer.decoder_steps=2",
                                  "trainer.decoder_batch_size=2", "trainer.eval_every=1", "trainer.threads=1"])
    before = AutoencoderKL.from_pretrained(codec / "vae").state_dict()
    finetune_decoder(cfg)
    after = AutoencoderKL.from_pretrained(codec / "vae").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    with open(codec / "decoder_log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["0", "1", "2"]
    cfg = compose("train_codec", [*overrides, f"out_dir={codec}", "trainer.decoder_steps=3",
                                  "trainer.decoder_batch_size=2", "trainer.eval_every=1", "trainer.threads=1"])
    finetune_decoder(cfg)  # resumes at step 2
    with open(codec / "decoder_log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["0", "1", "2", "3"]


def test_dynamics_trains_resumes_and_exports(pipeline):
    cfg = compose("train_dynamics", [*training_overrides(pipeline), "trainer.steps=2"])
    train_dynamics(cfg)
    cfg = compose("train_dynamics", [*training_overrides(pipeline), "trainer.steps=4"])
    train_dynamics(cfg)
    with open(pipeline / "dyn" / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3", "4"]
    path = export_world_model(cfg, pipeline / "wm")
    model = WorldModel.from_pretrained(path)
    assert model.history == 2 and model.config.chunk_size == 3 and model.config.metadata["steps"] == 4
    assert model.config.metadata["latents"]["roots"] == [str(pipeline / "train")]
    # the card keeps the training run's settings, not those of the export command
    export_cfg = compose("train_dynamics", [*training_overrides(pipeline), "trainer.steps=4",
                                            "trainer.history_noise=0.3"])
    card = WorldModel.from_pretrained(export_world_model(export_cfg, pipeline / "wm2")).config.metadata
    assert card["train_config"]["trainer"]["history_noise"] == 0.0
    assert model.config.frames_per_pass is None and model.config.clip_padding is None
    # the export sets the rollout's passes and the dtype the backbone is stored in
    options = ["export.frames_per_pass=2", "export.clip_padding=repeat_last",
               "export.backbone_dtype=bfloat16"]
    passes = compose("train_dynamics", [*training_overrides(pipeline), "trainer.steps=4", *options])
    padded = WorldModel.from_pretrained(export_world_model(passes, pipeline / "wm3"))
    assert padded.frames_per_pass == 2 and padded.config.clip_padding == "repeat_last"
    size = {name: (pipeline / name / "model.safetensors").stat().st_size for name in ("wm", "wm3")}
    assert size["wm3"] < size["wm"]
    wrong = compose("train_dynamics", [*training_overrides(pipeline), "export.backbone_dtype=half16"])
    with pytest.raises(ValueError, match="backbone_dtype"):
        export_world_model(wrong, pipeline / "wm4")
    out = model.rollout(np.full((1, 32, 32, 3), 255, np.uint8), np.full((1, 4, 2), 256.0),
                        generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 4, 32, 32, 3)


def test_fast_decoder_trains_resumes_and_attaches(tmp_path, pipeline):
    import shutil

    codec_dir = tmp_path / "codec"
    shutil.copytree(pipeline / "codec", codec_dir)
    dyn = [o.replace(str(pipeline / "codec"), str(codec_dir)).replace(str(pipeline / "dyn"), str(tmp_path / "dyn"))
           for o in training_overrides(pipeline)]
    cfg = compose("train_dynamics", [*dyn, "trainer.steps=1"])
    train_dynamics(cfg)
    model_dir = export_world_model(cfg, tmp_path / "wm")
    before = WorldModel.from_pretrained(model_dir)
    assert before.codec.decoder == "vae"

    overrides = [o for o in training_overrides(pipeline) if o.startswith(("data.", "codec."))]
    fast = ["codec.fast_decoder_channels=[8,4]", "trainer.fast_decoder_batch_size=2", "trainer.eval_every=1",
            "trainer.threads=1", f"out_dir={codec_dir}"]
    train_fast_decoder(compose("train_codec", [*overrides, *fast, "trainer.fast_decoder_steps=2"]))
    first = torch.load(codec_dir / "fast_decoder_ckpt.pt", weights_only=True)["decoder"]
    train_fast_decoder(compose("train_codec", [*overrides, *fast, "trainer.fast_decoder_steps=3",
                                               f"fast_decoder_attach=[{model_dir}]"]))  # resumes at step 2
    with open(codec_dir / "fast_decoder_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert all(float(r["heldout_psnr"]) > 0 and float(r["vae_heldout_psnr"]) > 0 for r in rows)
    meta = json.loads((codec_dir / "fast_decoder.json").read_text())
    assert meta["steps"] == 3 and meta["channels"] == [8, 4] and meta["frames"] == 36
    last = torch.load(codec_dir / "fast_decoder_ckpt.pt", weights_only=True)["decoder"]
    assert any(not torch.equal(first[k], last[k]) for k in first)

    model = WorldModel.from_pretrained(model_dir)  # attached: saved with the model, decoding by default
    assert model.codec.decoder == "fast" and model.config.codec["fast_decoder"] == {"channels": [8, 4]}
    for k, v in before.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    for k, v in model.codec.fast_decoder.state_dict().items():
        torch.testing.assert_close(v, last[k])
    assert load_codec(codec_dir).decoder == "fast"
    start = np.full((1, 32, 32, 3), 255, np.uint8)
    fast_frames = model.rollout(start, np.full((1, 2, 2), 256.0), generator=torch.Generator().manual_seed(0)).frames
    model.codec.decoder = "vae"
    vae_frames = model.rollout(start, np.full((1, 2, 2), 256.0), generator=torch.Generator().manual_seed(0)).frames
    assert fast_frames.shape == vae_frames.shape == (1, 2, 32, 32, 3) and not np.array_equal(fast_frames, vae_frames)
    # a model made with another codec is refused
    with pytest.raises(SystemExit, match="not made with the codec"):
        attach_fast_decoder(codec_dir, bundled_model_path("tiny-pusht"))


def test_default_recipe_is_the_shipped_models(pipeline):
    # the pixel-latent model this recipe made, kept in the repository (not shipped)
    shipped = WorldModel.from_pretrained(Path(__file__).parents[2] / "experiments/models/pusht-irasim-mini").config
    overrides = [o.replace(str(pipeline / "dyn"), str(pipeline / "dyn_map")) for o in training_overrides(pipeline)]
    cfg = compose("train_dynamics", [*overrides, "trainer.steps=1"])
    train_dynamics(cfg)
    model = WorldModel.from_pretrained(export_world_model(cfg, pipeline / "wm_map"))
    for key in ("action_map", "reference_frame", "residual", "conditioning"):
        assert getattr(model.backbone.config, key) == shipped.backbone_config[key], key
    assert model.backbone.config.action_map == {"axes": [0, 1], "sigma": 1.0}
    assert model.config.schedule.prediction_type == shipped.schedule.prediction_type == "sample"
    out = model.rollout(np.full((1, 32, 32, 3), 255, np.uint8), np.full((1, 2, 2), 100.0),
                        generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 32, 32, 3)


def test_published_irasim_recipe_trains_and_exports(pipeline):
    overrides = [o.replace(str(pipeline / "dyn"), str(pipeline / "dyn_plain")) for o in training_overrides(pipeline)]
    cfg = compose("train_dynamics", ["dynamics=pusht_frame_ada", *overrides, "trainer.steps=1"])
    train_dynamics(cfg)
    model = WorldModel.from_pretrained(export_world_model(cfg, pipeline / "wm_plain"))
    assert model.backbone.config.action_map is None and not model.backbone.config.residual
    assert model.config.schedule.prediction_type == "epsilon"


def test_gpu_recipe_runs_on_cpu_with_bf16_autocast(pipeline, capsys):
    # the GPU trainer's code path (device selection, bf16 autocast, its config) on this CPU machine
    overrides = [o.replace(str(pipeline / "dyn"), str(pipeline / "dyn_gpu")) for o in training_overrides(pipeline)]
    cfg = compose("train_dynamics", ["trainer=dynamics_gpu", *overrides, "trainer.device=auto",
                                     "trainer.steps=2"])
    assert cfg.trainer.bf16 and cfg.trainer.history_noise == 0.2
    out = train_dynamics(cfg)
    assert "cpu, bf16 autocast" in capsys.readouterr().out
    state = torch.load(out / "ckpt.pt", weights_only=True)
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["step"] == 2 and all(v.dtype == torch.float32 for v in floats)


def test_shards_carry_a_run_to_another_machine(pipeline, tmp_path):
    from world_gym.training.train_dynamics import load_shards, save_shards

    overrides = [o.replace(str(pipeline / "dyn"), str(tmp_path / "first")) for o in training_overrides(pipeline)]
    train_dynamics(compose("train_dynamics", [*overrides, "trainer.steps=2"]))
    files = save_shards(tmp_path / "first" / "ckpt.pt", tmp_path / "shards", max_bytes=64 * 1024)
    assert len(files) > 1 and all(f.stat().st_size <= 64 * 1024 + 4096 for f in files)  # + safetensors header
    weights, step = load_shards(tmp_path / "shards")
    ema = torch.load(tmp_path / "first" / "ckpt.pt", weights_only=True)["ema"]
    assert step == 2 and weights.keys() == ema.keys()
    assert all(torch.allclose(weights[k], ema[k].float(), rtol=1e-2, atol=1e-3) for k in ema)
    # a second machine starts from them: no checkpoint in its out_dir, trainer.init_from set
    second = [o.replace(str(tmp_path / "first"), str(tmp_path / "second")) for o in overrides]
    cfg = compose("train_dynamics", [*second, "trainer.steps=3", f"trainer.init_from={tmp_path / 'shards'}"])
    train_dynamics(cfg)
    with open(tmp_path / "second" / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["3"]
    assert torch.load(tmp_path / "second" / "ckpt.pt", weights_only=True)["step"] == 3
    # and the shards alone export a world model
    shards_only = compose("train_dynamics", [*overrides, f"out_dir={tmp_path / 'none'}",
                                             f"trainer.init_from={tmp_path / 'shards'}"])
    model = WorldModel.from_pretrained(export_world_model(shards_only, tmp_path / "wm"))
    assert model.config.metadata["steps"] == 2
    # their bf16 backbone is stored as bf16 (the codec as it is) and loads back exactly, as float32
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "wm" / "model.safetensors"))
    assert {v.dtype for k, v in stored.items() if k.startswith("backbone.") and v.is_floating_point()} == {
        torch.bfloat16}
    assert {v.dtype for k, v in stored.items() if k.startswith("codec.") and v.is_floating_point()} == {torch.float32}
    assert all(torch.equal(model.backbone.state_dict()[k], weights[k]) for k in weights)
    assert all(v.dtype == torch.float32 for v in model.backbone.state_dict().values() if v.is_floating_point())


def test_max_minutes_stops_with_a_checkpoint(pipeline, tmp_path, capsys):
    overrides = [o.replace(str(pipeline / "dyn"), str(tmp_path / "dyn")) for o in training_overrides(pipeline)]
    train_dynamics(compose("train_dynamics", [*overrides, "trainer.steps=1000",
                                              "trainer.max_minutes=0.0001"]))
    assert "max_minutes reached" in capsys.readouterr().out
    assert 0 < torch.load(tmp_path / "dyn" / "ckpt.pt", weights_only=True)["step"] < 1000


def test_learning_rate_schedules():
    from omegaconf import OmegaConf
    from world_gym.training.train_dynamics import learning_rate

    constant = OmegaConf.create({"lr": 1e-3, "warmup_steps": 10, "steps": 100})
    assert learning_rate(constant, 0) == pytest.approx(1e-4)
    assert learning_rate(constant, 9) == learning_rate(constant, 99) == pytest.approx(1e-3)
    # a resumed run anneals its own steps: full lr at decay_from, lr_min at steps, half-way between
    cosine = OmegaConf.create({"lr": 1e-3, "warmup_steps": 1, "steps": 300, "lr_schedule": "cosine",
                               "decay_from": 100, "lr_min": 1e-5})
    assert learning_rate(cosine, 50) == learning_rate(cosine, 100) == pytest.approx(1e-3)
    assert learning_rate(cosine, 200) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cosine, 300) == learning_rate(cosine, 400) == pytest.approx(1e-5)
    assert learning_rate(cosine, 150) > learning_rate(cosine, 250)
    # the warm-up of weights started elsewhere (init_from) still applies under the schedule
    assert learning_rate(cosine, 100, warm_from=100) == pytest.approx(1e-3)
    warm = OmegaConf.merge(cosine, {"warmup_steps": 10})
    assert learning_rate(warm, 100, warm_from=100) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(OmegaConf.merge(cosine, {"lr_schedule": "linear"}), 0)


def test_training_device():
    from world_gym.training.train_dynamics import training_device

    assert training_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert training_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            training_device("cuda")


def test_ddp_with_two_cpu_processes(pipeline):
    overrides = [o if not o.startswith("out_dir=") else f"out_dir={pipeline / 'ddp'}" for o in training_overrides(pipeline)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a free port of torchrun's choosing (a fixed one can be taken on a shared machine);
    # a short collective timeout turns a stuck process into an error that says where it waited
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "world_gym.training.train_dynamics", *overrides, "trainer.dist_timeout_minutes=2",
           "trainer.steps=2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es), batch 2 per process" in result.stdout
    with open(pipeline / "ddp" / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2"]
    # a time budget stops both processes at the same step (else one waits forever in the all-reduce)
    result = subprocess.run([*cmd[:-1], "trainer.steps=100000", "trainer.max_minutes=0.0001"],
                            capture_output=True, text=True, env=env, timeout=400)
    assert result.returncode == 0 and "max_minutes reached" in result.stdout, result.stderr[-2000:]


def test_motion_weight_marks_changing_cells():
    from world_gym.training.train_dynamics import motion_weight

    x = torch.zeros(1, 4, 2, 3, 3)
    x[:, 3, :, 1, 1] = 1.0  # one cell changes in the last frame
    w = motion_weight(x, history=2, strength=5.0)
    assert w.shape == (1, 2, 1, 3, 3)
    assert w[0, 1, 0, 1, 1] == 6.0 and w.sum() == 18 + 5
    assert motion_weight(x, history=2, strength=0.0) is None


def test_codec_from_model_is_the_models_codec(tmp_path):
    out = codec_from_model("tiny-pusht", tmp_path / "codec")  # a model shipped in the package, by name
    model = WorldModel.from_pretrained(bundled_model_path("tiny-pusht"))
    codec = load_codec(out)
    assert codec.scaling_factor == model.codec.scaling_factor
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        torch.testing.assert_close(codec.encode(frames), model.codec.encode(frames), rtol=0, atol=0)
    shipped = bundled_model_path("tiny-pusht")
    assert main_codec_from_model([f"model={shipped}", f"out_dir={tmp_path / 'b'}"]) == 0
    assert (tmp_path / "b" / "vae" / "config.json").is_file()
    with pytest.raises(SystemExit, match="not \\['steps'\\]"):
        main_codec_from_model(["steps=3"])
