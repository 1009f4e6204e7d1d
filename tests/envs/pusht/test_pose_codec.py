"""The pose codec (frames <-> one pose token per frame) and IRASim on pose tokens (IRASim-PushT-v0)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_gym  # noqa: F401  (registers the envs)
from conftest import load_benchmark, tiny_pose_irasim
from test_pose_state import _pose_overrides
from world_gym.codecs.vae import FastDecoder, tiny_vae_config
from world_gym.backbones.irasim import IRASim, IRASimConfig
from world_gym.envs.pusht.pose_codec import PoseCodec, block_frame, from_block_frame, states_to_tokens, tokens_to_states
from world_gym.training.common import compose
from world_gym.training.train_codec import load_codec
from world_gym.training.train_dynamics import export_world_model as export_dynamics
from world_gym.training.train_dynamics import train_dynamics
from world_gym.envs.pusht.train_pose import train_decoder, train_encoder, write_tokens
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


def test_codec_reads_the_agent_from_its_colour_where_the_frame_shows_it():
    torch.manual_seed(0)
    codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "refine_steps": 3, "agent_from_pixels": True})
    assert codec_from_config(codec.config_dict()).agent_from_pixels
    frames = np.full((2, 32, 32, 3), 255, np.uint8)
    frames[0, 4:8, 20:24] = (65, 105, 225)  # gym-pusht's agent blue, centred at (22, 6) of 32: (352, 96) of 512
    read = tokens_to_states(codec.encode(frames), 4.0)
    np.testing.assert_allclose(read[0, :2], [352 / 256 - 1, 96 / 256 - 1], atol=1e-5)  # held through the refinement
    codec.agent_from_pixels = False
    learned = tokens_to_states(codec.encode(frames), 4.0)
    assert not torch.allclose(learned[0, :2], read[0, :2], atol=1e-3)
    torch.testing.assert_close(learned[1], read[1])  # no blue in frame 1: the learned reader's pose either way


def test_agent_from_pixels_reads_the_same_centre_with_or_without_the_lookup_table():
    from world_gym.envs.pusht import pose_codec

    rng = np.random.default_rng(0)
    frames = np.full((pose_codec.DIRECT_SEGMENT_FRAMES + 1, 96, 96, 3), 255, np.uint8)
    for i, (r, c) in enumerate(rng.integers(5, 85, (len(frames), 2))):
        frames[i, r : r + 5, c : c + 5] = (65, 105, 225)
        frames[i, r + 1 : r + 4, c + 1 : c + 4] = (78, 126, 255)
        frames[i, r + 5, c : c + 5] = rng.integers(0, 256, (5, 3))  # blended edge pixels
    frames[-1, :, :] = 255  # no agent
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    batched = pose_codec.agent_from_pixels(x)  # more frames than DIRECT_SEGMENT_FRAMES: the table
    one_by_one = torch.cat([pose_codec.agent_from_pixels(x[i : i + 1]) for i in range(len(x))])  # direct labels
    torch.testing.assert_close(one_by_one, batched, equal_nan=True)
    assert torch.isnan(batched[-1]).all() and not torch.isnan(batched[:-1]).any()


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


def test_fourier_features_encode_the_reference_frame_and_the_actions():
    torch.manual_seed(0)
    cfg = IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, num_frames=4,
                              action_channels=True, reference_frame=1, residual=True, fourier_features=3)
    net = IRASim(cfg)
    assert "fourier_freqs" not in net.state_dict()  # fixed, rebuilt from the config
    seen = []
    net.x_embedder.register_forward_hook(lambda module, args, out: seen.append(args[0].reshape(4, -1)))
    x, t, mask = torch.randn(1, 4, 6, 1, 1), torch.tensor([500]), torch.tensor([[False, True, True, True]])
    actions = torch.tensor([[[0.9, 0.9], [0.1, 0.2], [0.3, -0.2], [0.0, 0.5]]])
    net(x, t, actions, mask)
    inputs = seen[0]
    # tokens 6, action 2, reference 6, then sines and cosines of the 8 clean channels (action, reference)
    # at 3 frequencies (pi / 4, pi / 2, pi), channel by channel
    assert inputs.shape[1] == 6 + 2 + 6 + 2 * 3 * 8
    sines, cosines = inputs[:, 14:38].reshape(4, 8, 3), inputs[:, 38:].reshape(4, 8, 3)
    freqs = torch.pi * torch.tensor([0.25, 0.5, 1.0])
    torch.testing.assert_close(sines[2, 0], torch.sin(0.3 * freqs))
    torch.testing.assert_close(cosines[2, 1], torch.cos(-0.2 * freqs))
    torch.testing.assert_close(sines[0, :2], torch.zeros(2, 3))  # no action: encoded as zero
    torch.testing.assert_close(sines[3, 2:], torch.sin(x[0, 1, :, 0, 0, None] * freqs))  # the reference frame
    with pytest.raises(ValueError, match="fourier_features"):
        IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, fourier_features=2)


def _move_board(tokens: torch.Tensor, actions: torch.Tensor, angle: float, shift: tuple[float, float],
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``(B, T, 6, 1, 1)`` and normalised actions ``(B, L, 2)`` of the whole board turned by
    ``angle`` about its centre, then shifted by ``shift`` (normalised units)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=tokens.dtype)
    offset = torch.tensor(shift, dtype=tokens.dtype)
    flat = tokens[..., 0, 0]
    moved = torch.cat([flat[..., 0:2] @ rot.T + scale * offset, flat[..., 2:4] @ rot.T + scale * offset,
                       flat[..., 4:6] @ rot.T], -1)
    return moved[..., None, None], actions @ rot.T + offset


def _random_clip(gen: torch.Generator, b: int, t: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    states = torch.cat([torch.rand(b * t, 4, generator=gen) - 0.5, 6 * torch.rand(b * t, 1, generator=gen)], 1)
    tokens = states_to_tokens(states, scale).reshape(b, t, 6, 1, 1)
    return tokens, torch.rand(b, t, 2, generator=gen) - 0.5


def test_block_frame_is_the_same_wherever_the_board_is_moved_and_undoes_itself():
    tokens, actions = _random_clip(torch.Generator().manual_seed(0), 3, 5, 4.0)
    canonical, acts, frame = block_frame(tokens, actions, 1, 4.0)
    # the reference frame's block at the origin, at angle 0
    torch.testing.assert_close(canonical[:, 1, 2:, 0, 0], torch.tensor([[0.0, 0.0, 4.0, 0.0]] * 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(from_block_frame(canonical, frame), tokens, atol=1e-5, rtol=0)
    moved_tokens, moved_actions = _move_board(tokens, actions, 2.2, (0.1, -0.3), 4.0)
    again, again_acts, _ = block_frame(moved_tokens, moved_actions, 1, 4.0)
    torch.testing.assert_close(again, canonical, atol=1e-5, rtol=0)
    torch.testing.assert_close(again_acts, acts, atol=1e-5, rtol=0)


def _pose_frame_model(pose_frame: float | None, board_pose: bool = False) -> WorldModel:
    return tiny_pose_irasim({**POSE, "refine_steps": 0, "token_scale": 4.0}, num_inference_steps=3,
                            pose_frame=pose_frame, fourier_features=2, board_pose=board_pose)


def test_pose_frame_rollouts_turn_and_shift_with_the_board():
    """With ``pose_frame`` the DiT denoises every clip in its reference block's frame, so imagining a
    turned and shifted board gives the same motion turned and shifted (a model of absolute poses
    does not), over several clips chained through their context."""
    context, _ = _random_clip(torch.Generator().manual_seed(1), 2, 2, 4.0)
    actions = (torch.rand(2, 7, 2, generator=torch.Generator().manual_seed(2)) - 0.5)
    angle, shift = 2.2, (0.1, -0.3)
    moved_context, moved_actions = _move_board(context, actions, angle, shift, 4.0)
    results = {}
    for pose_frame in (4.0, None):
        model = _pose_frame_model(pose_frame)
        runs = []
        for ctx, acts in ((context, actions), (moved_context, moved_actions)):
            gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
            runs.append(model.rollout(ctx, acts.numpy() * 256 + 256, generator=gens, decode=False).latents)
        assert runs[0].shape == (2, 7, 6, 1, 1)  # 7 frames: 3 clips of 3 new frames at most
        expected, _ = _move_board(runs[0], actions, angle, shift, 4.0)
        results[pose_frame] = (runs[1] - expected).abs().max().item()
    assert results[4.0] < 1e-4
    assert results[None] > 1e-2


def test_board_pose_gives_the_block_frame_model_the_board_back():
    """``board_pose`` appends the reference block's pose on the board to every action, so the same
    clip turned and shifted is no longer the same to the network (it can tell where the walls are),
    while the canonical clip it denoises is unchanged."""
    context, _ = _random_clip(torch.Generator().manual_seed(1), 2, 2, 4.0)
    actions = (torch.rand(2, 7, 2, generator=torch.Generator().manual_seed(2)) - 0.5)
    angle, shift = 2.2, (0.1, -0.3)
    moved_context, moved_actions = _move_board(context, actions, angle, shift, 4.0)
    model = _pose_frame_model(4.0, board_pose=True)
    plain = _pose_frame_model(4.0).backbone
    canonical, frame_actions, _ = model.backbone.to_clip_frame(context, actions)
    plain_canonical, plain_actions, _ = plain.to_clip_frame(context, actions)
    torch.testing.assert_close(canonical, plain_canonical)
    torch.testing.assert_close(frame_actions[..., :2], plain_actions)
    # x and y over the token scale, then cos and sin: the same on every frame of the clip
    board = torch.cat([context[:, 1, 2:4, 0, 0] / 4.0, context[:, 1, 4:6, 0, 0] / 4.0], -1)
    torch.testing.assert_close(frame_actions[..., 2:], board[:, None].expand(-1, 7, -1), atol=1e-5, rtol=0)
    runs = []
    for ctx, acts in ((context, actions), (moved_context, moved_actions)):
        gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
        runs.append(model.rollout(ctx, acts.numpy() * 256 + 256, generator=gens, decode=False).latents)
    expected, _ = _move_board(runs[0], actions, angle, shift, 4.0)
    assert (runs[1] - expected).abs().max().item() > 1e-2
    with pytest.raises(ValueError, match="board_pose needs actions of width 6"):
        model.backbone(canonical, torch.zeros(2), torch.zeros(2, 2, 2), torch.ones(2, 2, dtype=torch.bool))
    # the board channels stay in the input beside an action map
    mapped = IRASim(IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, num_frames=5,
                                        reference_frame=1, pose_frame=4.0, board_pose=True, action_map={}))
    assert mapped(canonical, torch.zeros(2), frame_actions[:, :2], torch.ones(2, 2, dtype=torch.bool)).shape == (
        2, 2, 6, 1, 1)
    with pytest.raises(ValueError, match="board_pose gives back"):
        IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, reference_frame=1,
                            board_pose=True)


def test_pose_frame_needs_pose_tokens():
    with pytest.raises(ValueError, match="pose_frame needs pose tokens"):
        IRASimConfig.preset("tiny", latent_channels=4, latent_size=(8, 8), patch_size=1, reference_frame=1,
                            pose_frame=4.0)
    with pytest.raises(ValueError, match="pose_frame needs pose tokens"):
        IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, pose_frame=4.0)


def test_pose_tokens_train_irasim_export_and_run_in_the_env(pipeline, monkeypatch, capsys):
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
    assert isinstance(codec, PoseCodec) and codec.pose_config.refine_steps == 2 and codec.agent_from_pixels

    dyn_over = [f"data.train_root={pipeline / 'train'}", "data.frame_size=[32,32]", f"codec_dir={tokens_dir}",
                f"out_dir={pipeline / 'irasim_pose'}", "dynamics=pusht_pose_block_frame_ada", "dynamics.size=tiny",
                "dynamics.num_frames=5", "trainer.batch_size=4", "trainer.threads=1", "trainer.log_every=1",
                "trainer.ckpt_every=1", "trainer.steps=2"]
    train_dynamics(compose("train_dynamics", dyn_over))
    path = export_dynamics(compose("train_dynamics", dyn_over), pipeline / "wm_irasim_pose")
    model = WorldModel.from_pretrained(path)
    assert isinstance(model.codec, PoseCodec) and model.config.backbone == "IRASim"
    assert model.config.codec["pose"]["token_scale"] == 2.0 and model.max_new_frames == 3
    assert model.backbone.config.pose_frame == 2.0  # the tokens' scale, read from their directory
    start = np.full((2, 32, 32, 3), 255, np.uint8)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    out = model.rollout(start, np.full((2, 7, 2), 256.0), generator=gens)
    assert out.frames.shape == (2, 7, 32, 32, 3) and out.latents.shape == (2, 7, 6, 1, 1)
    env = gym.make("IRASim-PushT-v0", model=model, chunk_size=3, reward_model="zero")
    env.reset(seed=0, options={"initial_frame": start[0]})
    obs, reward, terminated, truncated, info = env.step(np.full((3, 2), 256.0, np.float32))
    assert np.asarray(info["frames"]).shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(obs, info["frames"][-1])
    # the parts benchmark rolls the DiT out on the held-out episodes' true poses
    bench = load_benchmark("pose_state_parts")
    monkeypatch.setattr("sys.argv", ["pose_state_parts.py", str(path), "--data", str(pipeline / "heldout"),
                                     "--horizons", "3"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"]["3 steps"]["rollouts"] > 0
    # and draws the true poses with each of its codec's decoders, and scores the codec's reading
    assert set(result["decoder"]) == {"true pose, vae", "codec round trip, vae"}
    (read,) = result["encoder"].values()
    assert read["agent"] >= 0 and read["block"] >= 0 and np.isfinite(read["psnr"])
