"""The compact-state world model: backbone, WorldModel integration, training stages, env."""

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import sys
from pathlib import Path

# an experiment beside the package: run as `pytest experiments/compact` from the repository root
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "tests"), str(HERE.parents[1] / "tests" / "envs" / "pusht"),
                str(HERE.parents[1] / "benchmarks")]

import world_gym  # noqa: E402, F401  (registers the envs)
from test_pose_state import rolls_out_twice_alike  # noqa: F401
from training_data import make_pipeline, training_overrides
from compact import (
    CompactAutoencoder,
    CompactConfig,
    CompactDynamics,
    ConvDecoder,
    KeypointEncoder,
)
from train_compact import (  # noqa: E402
    compose,
    export_world_model,
    rollout_loss,
    train_autoencoder,
    train_dynamics,
)
from world_gym.world_model import WorldModel


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The tiny dataset, codec and latents (as the tests' shared fixture of the same name)."""
    return make_pipeline(tmp_path_factory.mktemp("pipeline"))


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
    with pytest.raises(ValueError, match="decoder"):
        CompactConfig(decoder="mlp")


def test_keypoint_encoder_reads_positions_by_spatial_softmax():
    cfg = CompactConfig(**{**_tiny().to_dict(), "state_dim": 6, "encoder": "keypoints", "keypoints": 2})
    with pytest.raises(ValueError, match="keypoints"):
        CompactConfig(**{**cfg.to_dict(), "keypoints": 3})
    enc = KeypointEncoder(cfg)
    torch.manual_seed(0)
    states = enc(torch.randn(5, 4, 8, 8))
    assert states.shape == (5, 6) and states[:, :4].abs().max() <= 1
    # with the feature maps the input's own channels, map k's point is where channel k peaks
    enc.features = torch.nn.Identity()
    enc.points = torch.nn.Conv2d(4, 2, 1, bias=False)
    enc.rest[0] = torch.nn.Linear(4 + 4, 16)
    with torch.no_grad():
        enc.points.weight.copy_(torch.eye(2, 4)[:, :, None, None])
        enc.log_temperature.fill_(-5.0)
        x = torch.zeros(1, 4, 8, 8)
        x[0, 0, 2, 7] = 1.0   # channel 0 peaks at row 2, column 7
        x[0, 1, 6, 0] = 1.0   # channel 1 at row 6, column 0
        points = enc(x)[0, :4]
    grid = torch.linspace(-1, 1, 8)
    torch.testing.assert_close(points, torch.stack([grid[7], grid[2], grid[0], grid[6]]), atol=1e-3, rtol=0)
    # an autoencoder with this encoder trains end to end
    ae = CompactAutoencoder(cfg)
    ae.decode(ae.encode(torch.randn(2, 4, 8, 8))).pow(2).mean().backward()
    assert ae.encoder.log_temperature.grad is not None


def test_implicit_decoder_draws_from_the_state_alone():
    torch.manual_seed(0)
    cfg = CompactConfig(**{**_tiny().to_dict(), "decoder": "implicit", "implicit_width": 8,
                           "implicit_depth": 2})
    ae = CompactAutoencoder(cfg)
    states = torch.randn(3, 4)
    out = ae.decode(states)
    assert out.shape == (3, 4, 8, 8)
    torch.testing.assert_close(ae.decode(states[1:2]), out[1:2])  # no cross-talk within a batch
    assert not torch.allclose(out[0], out[1])                     # the state changes the frame
    # the state reaches the frame through every FiLM layer's scale and shift
    out.pow(2).sum().backward()
    assert ae.decoder.film[-1].weight.grad.abs().sum() > 0
    assert not hasattr(ConvDecoder(cfg), "film")


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


def test_chunks_fed_back_as_context_continue_the_same_rollout():
    torch.manual_seed(0)
    net = CompactDynamics(_tiny()).eval()
    ctx, acts = torch.randn(2, 2, 4, 8, 8), torch.rand(2, 7, 2) * 2 - 1
    known, unknown = torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.bool)
    whole = net.rollout(ctx, torch.zeros(2, 2, 2), unknown, acts)
    first = net.rollout(ctx, torch.zeros(2, 2, 2), unknown, acts[:, :3])
    # an env's next context: its own last two frames (states reused, not encoded again) and actions
    second = net.rollout(first[:, -2:], acts[:, 1:3], known, acts[:, 3:4])
    third = net.rollout(torch.cat([first[:, -1:], second], 1), acts[:, 2:4], known, acts[:, 4:])
    torch.testing.assert_close(torch.cat([first, second, third], 1), whole)
    # a row that is not the model's own output (a reset env) is encoded as before
    fresh = torch.randn(1, 2, 4, 8, 8)
    mixed = net.rollout(torch.cat([fresh, third[1:, -2:]]), acts[:, 5:7], known, acts[:, :2])
    alone = CompactDynamics(_tiny())
    alone.load_state_dict(net.state_dict())
    torch.testing.assert_close(mixed[:1], alone.eval().rollout(fresh, acts[:1, 5:7], known[:1], acts[:1, :2]))
    encoded_again = alone.rollout(third[1:, -2:], acts[1:, 5:7], known[1:], acts[1:, :2])
    assert not torch.allclose(mixed[1:], encoded_again)


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
    keep = [o for o in training_overrides(tmp) if o.startswith(("data.", "codec.", "codec_dir="))]
    return [*keep, f"out_dir={tmp / 'compact'}", "model.state_dim=4", "model.encoder_channels=[8,8]",
            "model.hidden=16", "model.decoder_channels=[8,8]", "model.dynamics_hidden=16",
            "autoencoder.batch_size=4", "autoencoder.mean_frames=8", "dynamics.batch_size=4",
            "dynamics.unroll=3",
            "trainer.log_every=1", "trainer.ckpt_every=1", "chunk_size=3"]


def test_stages_train_resume_export_and_run_in_the_env(pipeline):
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
    rolls_out_twice_alike(model)


def test_the_env_runs_a_compact_model(pipeline, tmp_path):
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


def test_implicit_decoder_pose_supervision_and_moving_clips_train(pipeline, tmp_path):
    over = [o if not o.startswith("out_dir=") else f"out_dir={tmp_path / 'c'}"
            for o in _compact_overrides(pipeline)]
    over += ["model.decoder=implicit", "model.implicit_width=8", "autoencoder.pose_weight=1.0",
             "dynamics.moving_share=0.5"]
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=2"]))
    state = torch.load(tmp_path / "c" / "autoencoder.pt", weights_only=True)
    assert set(state) >= {"model", "pose_head"} and state["pose_head"]["weight"].shape == (6, 4)
    train_autoencoder(compose("train_compact", [*over, "autoencoder.steps=3"]))  # resumes the pose head too
    cfg = compose("train_compact", [*over, "dynamics.steps=2"])
    train_dynamics(cfg)
    model = WorldModel.from_pretrained(export_world_model(cfg, tmp_path / "wm"))
    assert model.config.backbone_config["decoder"] == "implicit"
    out = model.rollout(np.full((1, 32, 32, 3), 255, np.uint8), np.full((1, 4, 2), 256.0))
    assert out.frames.shape == (1, 4, 32, 32, 3)


def test_compact_autoencoder_benchmark_read_out_errors():
    import compact_autoencoder as bench

    agent = np.array([[100.0, 400.0], [256.0, 256.0]])
    block = np.array([[300.0, 200.0, 0.1], [256.0, 128.0, 6.2]])  # 6.2 rad is 0.083 rad short of a turn
    targets = np.concatenate([(agent - 256) / 256, (block[:, :2] - 256) / 256,
                              np.cos(block[:, 2:]), np.sin(block[:, 2:])], axis=1)
    head = torch.nn.Linear(6, 6)  # the states are the pose targets themselves: an exact read-out
    with torch.no_grad():
        head.weight.copy_(torch.eye(6))
        head.bias.zero_()
    exact = bench.read_out_errors(head, torch.tensor(targets, dtype=torch.float32), agent, block)
    assert max(exact.values()) < 1e-3
    # a block angle read 0.2 rad past the true one is 0.2 rad off, across the wrap at 2 pi too
    turned = targets.copy()
    turned[:, 4], turned[:, 5] = np.cos(block[:, 2] + 0.2), np.sin(block[:, 2] + 0.2)
    errors = bench.read_out_errors(head, torch.tensor(turned, dtype=torch.float32), agent, block)
    assert errors["readout_angle_deg"] == pytest.approx(np.degrees(0.2), abs=1e-3)


def test_state_cache_follows_the_latents(pipeline, tmp_path):
    import shutil

    from train_compact import encode_states, model_config

    codec = tmp_path / "codec"
    shutil.copytree(pipeline / "codec", codec)
    over = [o for o in _compact_overrides(pipeline) if not o.startswith(("codec_dir=", "out_dir="))]
    cfg = compose("train_compact", [*over, f"codec_dir={codec}", f"out_dir={tmp_path / 'c'}"])
    (tmp_path / "c").mkdir()
    latents = np.load(codec / "latents.npy")
    net = CompactAutoencoder(model_config(cfg, latents.shape)).eval()
    first = encode_states(cfg, net, ae_step=5)
    assert first.shape == (len(latents), 4)
    np.testing.assert_array_equal(encode_states(cfg, net, ae_step=5), first)  # from the cache
    # `train encode` with another root: more latents, so the cached states are stale
    np.save(codec / "latents.npy", np.concatenate([latents, latents[:3]]))
    again = encode_states(cfg, net, ae_step=5)
    assert again.shape == (len(latents) + 3, 4)
    np.testing.assert_allclose(again[:len(latents)], first, atol=1e-5)
