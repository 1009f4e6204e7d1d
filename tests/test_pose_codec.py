"""The pose codec (frames <-> one pose token per frame) and IRASim on pose tokens (IRASim-PushT-v0)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_gym  # noqa: F401  (registers the envs)
from test_pose_state import _pose_overrides
from test_training import pipeline  # noqa: F401  (the tiny dataset, codec and latents)
from world_gym.models.codec import FastDecoder, tiny_vae_config
from world_gym.models.irasim import IRASim, IRASimConfig
from world_gym.models.pose_codec import PoseCodec, states_to_tokens, tokens_to_states
from world_gym.training.common import compose
from world_gym.training.train_codec import load_codec
from world_gym.training.train_dynamics import export_world_model as export_dynamics
from world_gym.training.train_dynamics import train_dynamics
from world_gym.training.train_pose import train_decoder, train_encoder, write_tokens
from world_gym.world_model import WorldModel, codec_from_config

POSE = {"latent_size": [8, 8], "encoder_channels": [8, 8, 8], "encoder_hidden": 16, "decoder_width": 16,
        "decoder_depth": 2}


def test_tokens_and_states_convert_both_ways():
    states = torch.tensor([[0.1, -0.2, 0.3, 0.4, 2.5], [-0.9, 0.9, 0.0, 0.0, -3.0]])
    tokens = states_to_tokens(states, 4.0)
    assert tokens.shape == (2, 6, 1, 1)
    np.testing.assert_allclose(tokens[0, :4, 0, 0], 4 * states[0, :4], rtol=1e-6)
    np.testing.assert_allclose(tokens_to_states(tokens, 4.0), states, atol=1e-6)
    # the angle comes from the direction of (cos, sin) alone: a denoiser's output need not be unit length
    np.testing.assert_allclose(tokens_to_states(tokens * torch.tensor([1, 1, 1, 1, 0.5, 0.5])[:, None, None], 4.0),
                               states, atol=1e-6)


def test_codec_encodes_to_tokens_decodes_them_and_round_trips_its_config():
    torch.manual_seed(0)
    codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "refine_steps": 3, "token_scale": 2.0})
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    tokens = codec.encode(frames)
    assert tokens.shape == (3, 6, 1, 1) and codec.latent_channels == 6 and codec.latent_size((32, 32)) == (1, 1)
    assert codec.decode(tokens).shape == (3, 32, 32, 3)
    # encode = the encoder's pose, refined: lower latent error than the encoder's own
    z = codec.encode_vae(codec.frames_to_tensor(frames))
    raw = states_to_tokens(codec.read_states(z, refine_steps=0), 2.0)
    err = [(codec.sprite(tokens_to_states(t, 2.0)) - z).pow(2).sum().item() for t in (raw, tokens)]
    assert err[1] < err[0]
    config = codec.config_dict()
    assert config["pose"]["token_scale"] == 2.0 and config["pose"]["refine_steps"] == 3
    again = codec_from_config(config)
    assert isinstance(again, PoseCodec) and again.token_scale == 2.0
    again.load_state_dict(codec.state_dict())
    torch.testing.assert_close(again.encode(frames), tokens)
    # a fast decoder decodes the VAE's latents (4 channels), not the tokens
    codec.attach_fast_decoder(FastDecoder(4, codec.downsample, (8, 8)))
    assert codec.decoder == "fast" and codec.decode(tokens).shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="does not fit"):
        codec.attach_fast_decoder(FastDecoder(6, codec.downsample, (8, 8)))


def test_action_channels_feed_each_frames_action_to_its_token():
    torch.manual_seed(0)
    cfg = IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, num_frames=4,
                              action_channels=True, reference_frame=1, residual=True)
    net = IRASim(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, t = torch.randn(1, 4, 6, 1, 1), torch.tensor([500])
    mask = torch.tensor([[False, True, True, True]])
    actions = torch.zeros(1, 4, 2)
    base = net(x, t, actions, mask)
    changed = actions.clone()
    changed[0, 0] = 5.0  # the action of a frame without one is ignored
    torch.testing.assert_close(net(x, t, changed, mask), base)
    changed = actions.clone()
    changed[0, 3] = 0.5
    assert not torch.allclose(net(x, t, changed, mask), base)
    assert net.x_embedder.proj.in_channels == 6 + 2 + 6  # tokens, action, reference frame


def test_pose_tokens_train_irasim_export_and_run_in_the_env(pipeline):  # noqa: F811
    pose_over = _pose_overrides(pipeline)
    cfg = compose("train_pose", pose_over)
    with pytest.raises(FileNotFoundError, match="pose-decoder, pose-encoder"):
        write_tokens(cfg)
    for stage, train in (("decoder", train_decoder), ("encoder", train_encoder)):
        train(compose("train_pose", [*pose_over, f"{stage}.steps=2"]))
    tokens_dir = write_tokens(compose("train_pose", [*pose_over, "tokens.token_scale=2.0"]))
    tokens = np.load(tokens_dir / "latents.npy")
    assert tokens.shape == (36, 6, 1, 1)
    # the tiny dataset's block sits at (256, 256) at angle 0.5: token (.., 0, 0, 2 cos 0.5, 2 sin 0.5)
    np.testing.assert_allclose(tokens[0, 2:, 0, 0], [0, 0, 2 * np.cos(0.5), 2 * np.sin(0.5)], atol=1e-5)
    assert json.loads((tokens_dir / "latents.json").read_text())["token_scale"] == 2.0
    codec = load_codec(tokens_dir)
    assert isinstance(codec, PoseCodec) and codec.pose_config.refine_steps == 2

    dyn_over = [f"data.train_root={pipeline / 'train'}", "data.frame_size=[32,32]", f"codec_dir={tokens_dir}",
                f"out_dir={pipeline / 'irasim_pose'}", "dynamics=pusht_pose_frame_ada", "dynamics.size=tiny",
                "dynamics.num_frames=5", "trainer.batch_size=4", "trainer.threads=1", "trainer.log_every=1",
                "trainer.ckpt_every=1", "trainer.steps=2"]
    train_dynamics(compose("train_dynamics", dyn_over))
    path = export_dynamics(compose("train_dynamics", dyn_over), pipeline / "wm_irasim_pose")
    model = WorldModel.from_pretrained(path)
    assert isinstance(model.codec, PoseCodec) and model.config.backbone == "IRASim"
    assert model.config.codec["pose"]["token_scale"] == 2.0 and model.max_new_frames == 3
    start = np.full((2, 32, 32, 3), 255, np.uint8)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    out = model.rollout(start, np.full((2, 7, 2), 256.0), generator=gens)
    assert out.frames.shape == (2, 7, 32, 32, 3) and out.latents.shape == (2, 7, 6, 1, 1)
    env = gym.make("IRASim-PushT-v0", model=model, chunk_size=3, reward_model="zero")
    env.reset(seed=0, options={"initial_frame": start[0]})
    obs, reward, terminated, truncated, info = env.step(np.full((3, 2), 256.0, np.float32))
    assert np.asarray(info["frames"]).shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(obs, info["frames"][-1])
