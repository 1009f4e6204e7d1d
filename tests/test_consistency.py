"""The consistency sampler and its distillation (world_gym.samplers.consistency, training.train_consistency)."""

from __future__ import annotations

import copy
import json
import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from conftest import micro_config, randomize
from world_gym.assets import bundled_model_path
from world_gym.samplers import SAMPLERS, ClipPlan, make_sampler
from world_gym.samplers.consistency import (
    ConsistencyFunction,
    boundary_scalings,
    consistency_distillation_loss,
    trailing_timesteps,
)
from world_gym.training.common import compose
from world_gym.training.train_consistency import export_world_model, train_consistency
from world_gym.world_model import WorldModel


def _consistency_model(steps: int = 1) -> WorldModel:
    torch.manual_seed(0)
    model = randomize(WorldModel(micro_config(history=1, num_frames=5)))
    model.config.sampler.name, model.config.sampler.num_inference_steps = "consistency", steps
    return model


def _frames(b: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(b, 32, 32, 3), dtype=np.uint8)


def test_registered_and_validates_options():
    assert "consistency" in SAMPLERS
    schedule = micro_config().schedule
    with pytest.raises(ValueError, match="unknown consistency sampler options"):
        make_sampler("consistency", schedule, {"eta": 1.0})
    with pytest.raises(ValueError, match="timesteps must be"):
        make_sampler("consistency", schedule, {"timesteps": [1000]})
    assert trailing_timesteps(1000, 1) == [999] and trailing_timesteps(1000, 2) == [999, 499]
    assert make_sampler("consistency", schedule, {"timesteps": [999, 300]}).timesteps_for(2) == [999, 300]
    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]), 0.5, 10.0)
    assert c_skip[0] == 1 and c_out[0] == 0 and c_skip[1] < 1e-6 and c_out[1] > 0.999999


@pytest.mark.parametrize("steps", [1, 2])
def test_shapes_and_determinism_under_a_seed(steps):
    model = _consistency_model(steps)
    actions = np.random.default_rng(1).uniform(0, 512, (2, 7, 2))
    a = model.rollout(_frames(), actions, generator=torch.Generator().manual_seed(3))
    b = model.rollout(_frames(), actions, generator=torch.Generator().manual_seed(3))
    c = model.rollout(_frames(), actions, generator=torch.Generator().manual_seed(4))
    assert a.latents.shape == (2, 7, 4, 16, 16) and a.frames.shape == (2, 7, 32, 32, 3)
    assert torch.equal(a.latents, b.latents)
    assert not torch.equal(a.latents, c.latents)
    assert torch.isfinite(a.latents).all()


@pytest.mark.parametrize("steps", [1, 2])
def test_each_step_is_one_backbone_call_per_clip(steps):
    model = _consistency_model(steps)
    calls = []
    model.backbone.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    actions = np.full((3, 8, 2), 256.0)  # 4 new frames per clip: two clips
    model.rollout(_frames(3), actions, generator=torch.Generator().manual_seed(0), decode=False)
    assert len(calls) == 2 * steps
    assert all(shape[0] == 3 for shape in calls)  # one sample per env: no ensemble


def test_distillation_reduces_its_loss():
    teacher = randomize(WorldModel(micro_config(history=1, num_frames=5))).backbone.requires_grad_(False)
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    target = copy.deepcopy(teacher)
    function = ConsistencyFunction(micro_config().schedule)
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(8, 5, 4, 16, 16, generator=gen)
    actions = torch.rand(8, 5, 2, generator=gen) * 2 - 1
    mask = torch.ones(8, 5, dtype=torch.bool)
    mask[:, 0] = False

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same timesteps and noise every time
        return consistency_distillation_loss(student, target, teacher, function, None, latents, actions, mask,
                                             history=1, solver_steps=10, skip=2)

    with torch.no_grad():
        before = loss().item()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        after = loss().item()
    assert before > 0 and after < 0.7 * before


def _tokens(directory: Path, model: WorldModel, frames: int = 120) -> Path:
    """A codec directory of latent random walks shaped like ``model``'s latents, in 3 episodes."""
    rng = np.random.default_rng(0)
    shape = (model.backbone.config.latent_channels, *model.backbone.config.latent_size)
    steps = rng.normal(0, 0.05, (frames, *shape)).astype(np.float32)
    directory.mkdir(parents=True)
    np.save(directory / "latents.npy", np.cumsum(steps, axis=0))
    np.save(directory / "actions.npy", rng.uniform(0, 512, (frames, 2)).astype(np.float32))
    np.save(directory / "episode_index.npy", np.repeat(np.arange(3), frames // 3))
    return directory


def test_train_resume_export_load_and_step(tmp_path):
    teacher_dir = str(bundled_model_path("tiny-pusht"))
    codec_dir = _tokens(tmp_path / "tokens", WorldModel.from_pretrained(teacher_dir))
    overrides = [f"teacher={teacher_dir}", f"codec_dir={codec_dir}", f"out_dir={tmp_path / 'run'}",
                 "trainer.batch_size=2", "trainer.log_every=2", "trainer.ckpt_every=2", "trainer.steps=2",
                 "export.frames_per_pass=4"]
    train_consistency(compose("train_consistency", overrides))
    train_consistency(compose("train_consistency", [*overrides[:-2], "trainer.steps=4", "export.frames_per_pass=4"]))
    with open(tmp_path / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]  # resumed at 2, not restarted
    assert all(np.isfinite(float(r["loss"])) for r in rows)

    path = export_world_model(compose("train_consistency", overrides), tmp_path / "student")
    model = WorldModel.from_pretrained(path)
    assert model.config.sampler.name == "consistency" and model.config.sampler.ensemble == 1
    assert model.config.frames_per_pass == 4 and model.config.clip_padding is None
    assert model.config.metadata["consistency"]["steps"] == 4
    env = gym.make("IRASim-PushT-v0", model=str(path), chunk_size=4, device="cpu")
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.full((4, 2), 256.0, np.float32))
    assert obs.shape == (96, 96, 3) and obs.dtype == np.uint8 and np.isfinite(reward)
    assert len(info["frames"]) == 4
    # the backbone stored in bfloat16 (half the file), loaded back into the model's dtype
    half = export_world_model(compose("train_consistency", [*overrides, "export.backbone_dtype=bfloat16"]),
                              tmp_path / "student_bf16")
    from safetensors import safe_open

    with safe_open(half / "model.safetensors", "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys() if k.startswith("backbone.")}
    assert dtypes == {"BF16"} and (half / "model.safetensors").stat().st_size < (path / "model.safetensors").stat().st_size
    halved = WorldModel.from_pretrained(half)
    for (name, a), b in zip(model.backbone.state_dict().items(), halved.backbone.state_dict().values()):
        torch.testing.assert_close(b.float(), a.bfloat16().float(), msg=name)
    with pytest.raises(ValueError, match="backbone_dtype must name a torch dtype"):
        export_world_model(compose("train_consistency", [*overrides, "export.backbone_dtype=bf17"]), tmp_path / "bad")


def test_clip_plan_with_ensemble_still_averages_for_consistency():
    """The sampler is a ClipSampler: the world model's plan (ensemble, padding) applies to it as to
    the diffusion samplers, so a config can ask for a mean, though the point is one sample."""
    model = _consistency_model(1)
    sampler = make_sampler("consistency", model.config.schedule)
    ctx, ca, cm = model.initial_context(torch.zeros(2, 4, 16, 16))
    acts = torch.zeros(2, 3, 2)
    one, two = (sampler.rollout(model.backbone, ctx, ca, cm, acts, ClipPlan(1, 4, 4, None, k), 1,
                                torch.Generator().manual_seed(0)) for k in (1, 2))
    assert one.shape == two.shape == (2, 3, 4, 16, 16) and not torch.equal(one, two)


def test_tokens_of_datasets(tmp_path):
    """consistency-tokens: a pose teacher's privileged poses times its token scale, any other
    teacher's codec latents; episodes numbered across roots."""
    from training_data import write_tiny_dataset
    from world_gym.training.train_consistency import write_tokens

    roots = [write_tiny_dataset(tmp_path / f"d{i}", episodes=2, length=6, size=96, seed=i) for i in range(2)]
    base = [f"token_roots=[{roots[0]},{roots[1]}]"]
    pose_dir = write_tokens(compose("train_consistency", [*base, f"codec_dir={tmp_path / 'pose'}"]))
    tokens, episodes = np.load(pose_dir / "latents.npy"), np.load(pose_dir / "episode_index.npy")
    assert tokens.shape == (24, 6, 1, 1) and list(np.unique(episodes)) == [0, 1, 2, 3]
    # the block of the first episode never moves: x = y = 256 -> 0, angle 0.5
    first = tokens[episodes == 0][:, 2:, 0, 0]
    np.testing.assert_allclose(first, np.tile([0.0, 0.0, 4 * np.cos(0.5), 4 * np.sin(0.5)], (6, 1)), atol=1e-5)
    assert np.load(pose_dir / "actions.npy").shape == (24, 2)

    vae_dir = write_tokens(compose("train_consistency", [*base, f"codec_dir={tmp_path / 'vae'}",
                                                         f"teacher={bundled_model_path('tiny-pusht')}"]))
    assert np.load(vae_dir / "latents.npy").shape == (24, 4, 24, 24)


def test_a_pose_teacher_fine_tuned_on_its_tokens_keeps_its_codec(tmp_path):
    """consistency-tokens of a pose teacher name it in pose_codec.json: `train dynamics` fine-tunes the
    teacher's DiT on them (trainer.init_from=<teacher>) and `train export` gives the result its codec."""
    from training_data import write_tiny_dataset
    from world_gym.envs.pusht.pose_codec import PoseCodec
    from world_gym.training.train_consistency import write_tokens
    from world_gym.training.train_dynamics import export_world_model, train_dynamics

    root = write_tiny_dataset(tmp_path / "d", episodes=2, length=20, size=96, seed=0)
    tokens = write_tokens(compose("train_consistency", [f"token_roots=[{root}]", f"codec_dir={tmp_path / 'tok'}"]))
    assert json.loads((tokens / "pose_codec.json").read_text()) == {"world_model": "pusht-irasim-pose"}
    over = [f"codec_dir={tokens}", f"out_dir={tmp_path / 'dit'}", "dynamics=pusht_pose_block_frame_ada",
            "dynamics.size=small-cpu", "dynamics.board_pose=true", "trainer.init_from=pusht-irasim-pose",
            "trainer.batch_size=2", "trainer.steps=1", "trainer.threads=1", "trainer.log_every=1",
            "trainer.ckpt_every=1", "trainer.ema_decay=0.0"]
    train_dynamics(compose("train_dynamics", over))
    model = WorldModel.from_pretrained(export_world_model(compose("train_dynamics", over), tmp_path / "wm"))
    teacher = WorldModel.from_pretrained("pusht-irasim-pose")
    assert isinstance(model.codec, PoseCodec)
    for k, v in teacher.codec.state_dict().items():
        torch.testing.assert_close(model.codec.state_dict()[k], v, msg=k)
    moved = [not torch.equal(v, teacher.backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items()]
    assert any(moved)  # one step of training from the teacher's weights
    assert model.config.metadata["pose_codec"] == {"world_model": "pusht-irasim-pose"}
    with pytest.raises(RuntimeError):  # a backbone of another size cannot start from the teacher
        train_dynamics(compose("train_dynamics", [*[o for o in over if "size" not in o and "out_dir" not in o],
                                                  "dynamics.size=tiny", f"out_dir={tmp_path / 'other'}"]))
