"""The compact-state world model: backbone, WorldModel integration, training stages, env."""

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_gym  # noqa: F401  (registers the envs)
from test_training import _overrides, pipeline  # noqa: F401  (the tiny dataset, codec and latents)
from world_gym.models.compact import CompactConfig, CompactDynamics
from world_gym.training.common import compose
from world_gym.training.train_compact import (
    export_world_model,
    rollout_loss,
    train_autoencoder,
    train_dynamics,
)
from world_gym.world_model import WorldModel


def _tiny() -> CompactConfig:
    return CompactConfig(latent_size=(8, 8), state_dim=4, encoder_channels=(8, 8), hidden=16,
                         decoder_channels=(8, 8), dynamics_hidden=16, num_frames=6)


def test_config_round_trip_and_checks():
    cfg = _tiny()
    assert CompactConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="divisible by 4"):
        CompactConfig(latent_size=(10, 8))
    with pytest.raises(ValueError, match="history"):
        CompactConfig(history=1)


def test_rollout_steps_one_frame_per_action_from_the_context():
    torch.manual_seed(0)
    net = CompactDynamics(_tiny()).eval()
    ctx = torch.randn(3, 2, 4, 8, 8)
    acts = torch.rand(3, 5, 2) * 2 - 1
    out = net.rollout(ctx, torch.zeros(3, 2, 2), torch.zeros(3, 2, dtype=torch.bool), acts)
    assert out.shape == (3, 5, 4, 8, 8)
    # the first k frames do not depend on later actions (causal), and the same call repeats exactly
    short = net.rollout(ctx, torch.zeros(3, 2, 2), torch.zeros(3, 2, dtype=torch.bool), acts[:, :2])
    torch.testing.assert_close(out[:, :2], short)
    again = net.rollout(ctx, torch.zeros(3, 2, 2), torch.zeros(3, 2, dtype=torch.bool), acts)
    torch.testing.assert_close(out, again)
    # the context's last action is read only where the mask says it is known
    known = net.rollout(ctx, torch.ones(3, 2, 2), torch.ones(3, 2, dtype=torch.bool), acts)
    unknown = net.rollout(ctx, torch.ones(3, 2, 2), torch.zeros(3, 2, dtype=torch.bool), acts)
    assert not torch.allclose(known, out)
    torch.testing.assert_close(unknown, out)
    with pytest.raises(TypeError, match="not a denoiser"):
        net(ctx)


def test_rollout_loss_is_zero_for_a_perfect_model():
    net = CompactDynamics(_tiny())
    with torch.no_grad():
        net.step_net[-1].weight.zero_()
        net.step_net[-1].bias.zero_()
    still = torch.randn(2, 1, 4).expand(2, 6, 4)       # states that never change: the zero step is exact
    assert rollout_loss(net, still, torch.zeros(2, 6, 2), 0.0, 0.5).item() == 0.0
    moving = torch.randn(2, 6, 4)
    assert rollout_loss(net, moving, torch.zeros(2, 6, 2), 0.0, 0.0).item() > 0


def _compact_overrides(tmp) -> list[str]:
    keep = [o for o in _overrides(tmp) if o.startswith(("data.", "codec.", "codec_dir="))]
    return [*keep, f"out_dir={tmp / 'compact'}", "model.state_dim=4", "model.encoder_channels=[8,8]",
            "model.hidden=16", "model.decoder_channels=[8,8]", "model.dynamics_hidden=16",
            "autoencoder.batch_size=4", "autoencoder.mean_frames=8", "dynamics.batch_size=4",
            "dynamics.unroll=3",
            "trainer.log_every=1", "trainer.ckpt_every=1", "chunk_size=3"]


def test_stages_train_resume_export_and_run_in_the_env(pipeline):  # noqa: F811
    over = _compact_overrides(pipeline)
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=2"]))
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=3"]))
    with open(pipeline / "compact" / "log_ae.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    train_dynamics(compose("train_compact", [*over, "dynamics.steps=2"]))
    cfg = compose("train_compact", [*over, "dynamics.steps=4"])
    train_dynamics(cfg)
    with open(pipeline / "compact" / "log_dynamics.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3", "4"]
    # dynamics trained on one autoencoder do not silently continue on another
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=4"]))
    with pytest.raises(ValueError, match="autoencoder of step 3"):
        train_dynamics(cfg)
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=4"]))  # already there: a no-op
    (pipeline / "compact" / "dynamics.pt").rename(pipeline / "compact" / "dynamics_ae3.pt")
    train_dynamics(cfg)
    path = export_world_model(cfg, pipeline / "wm_compact")
    model = WorldModel.from_pretrained(path)
    assert model.config.backbone == "Compact" and model.config.chunk_size == 3
    assert model.config.metadata["autoencoder_steps"] == 4 and model.config.metadata["steps"] == 4
    start = np.full((2, 32, 32, 3), 255, np.uint8)
    out = model.rollout(start, np.full((2, 7, 2), 256.0))
    assert out.frames.shape == (2, 7, 32, 32, 3) and out.latents.shape == (2, 7, 4, 16, 16)
    np.testing.assert_array_equal(out.frames, model.rollout(start, np.full((2, 7, 2), 256.0)).frames)


def test_the_env_runs_a_compact_model(pipeline, tmp_path):  # noqa: F811
    over = _compact_overrides(tmp_path)
    over = [o if not o.startswith("codec_dir=") else f"codec_dir={pipeline / 'codec'}" for o in over]
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=1"]))
    train_dynamics(compose("train_compact", [*over, "dynamics.steps=1"]))
    path = export_world_model(compose("train_compact", [*over, "dynamics.steps=1"]), tmp_path / "wm")
    model = WorldModel.from_pretrained(path)
    env = gym.make("IRASim-PushT-v0", model=model, chunk_size=3, reward_model="zero")
    env.reset(seed=0, options={"initial_frame": np.full((32, 32, 3), 255, np.uint8)})
    obs, reward, terminated, truncated, info = env.step(np.full((3, 2), 256.0, np.float32))
    assert np.asarray(info["frames"]).shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(obs, info["frames"][-1])
