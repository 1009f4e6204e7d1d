"""The pose-state world model: backbone parts, WorldModel integration, training stages, env."""

import csv
import json
import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_gym  # noqa: F401  (registers the envs)
from training_data import training_overrides
from world_gym.envs.pusht.pose_codec import PoseCodec
from world_gym.envs.pusht.pose_state import (
    PoseStateConfig,
    PoseStateDynamics,
    PoseStep,
    SpriteDecoder,
    pose_to_state,
    rotate,
    states_to_tokens,
    tokens_to_states,
    wrap_angle,
)
from world_gym.training.common import compose
from world_gym.envs.pusht.train_pose import (
    export_world_model,
    moving_starts,
    pose_loss,
    pose_targets,
    rollout_loss,
    train_decoder,
    train_dynamics,
    train_encoder,
    true_states,
)
from world_gym.world_model import WorldModel


def _tiny(**kw) -> PoseStateConfig:
    return PoseStateConfig(latent_size=(8, 8), encoder_channels=(8, 8, 8), encoder_hidden=16, decoder_width=16,
                           decoder_depth=2, dynamics_hidden=16, num_frames=6, **kw)


def _randomize(module: torch.nn.Module) -> None:
    """Non-zero weights everywhere (the step's output layers start at zero)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn_like(p))


def test_config_round_trip_and_checks():
    cfg = _tiny(refine_steps=3)
    assert PoseStateConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="divisible by 4"):
        PoseStateConfig(latent_size=(6, 8))
    with pytest.raises(ValueError, match="2 context frames"):
        PoseStateConfig(history=3)
    with pytest.raises(ValueError, match="action_dim=3"):
        PoseStateConfig(action_dim=3)


def test_angles_and_rotations():
    v = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(rotate(v, torch.tensor([0.0]), torch.tensor([1.0])), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(wrap_angle(torch.tensor([3 * math.pi / 2, -math.pi / 2])),
                               torch.tensor([-math.pi / 2, -math.pi / 2]))
    state = pose_to_state(torch.tensor([[0.1, 0.2, 0.3, 0.4, math.cos(2.0), math.sin(2.0)]]))
    torch.testing.assert_close(state, torch.tensor([[0.1, 0.2, 0.3, 0.4, 2.0]]))


def test_sprite_decoder_moves_the_drawing_with_the_objects():
    decoder = SpriteDecoder(_tiny())
    _randomize(decoder)
    with torch.no_grad():
        decoder.cell_features.zero_()  # no board: what is drawn depends on the objects alone
    cell = 2 / 8  # one latent cell in pose units
    state = torch.tensor([[-0.3, 0.1, 0.0, -0.1, 0.7]])
    moved = state + torch.tensor([[cell, 2 * cell, cell, 2 * cell, 0.0]])
    a, b = decoder(state), decoder(moved)
    # one cell right and two down: the same picture, shifted (away from the borders it enters)
    torch.testing.assert_close(b[..., 2:, 1:], a[..., :-2, :-1], rtol=1e-4, atol=1e-5)
    turned = decoder(state + torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.5]]))
    assert not torch.allclose(turned, a, atol=1e-3)


def test_agent_step_is_translation_invariant_and_the_block_steps_in_its_own_frame():
    cfg = _tiny()
    step = PoseStep(cfg)
    _randomize(step.agent_net)
    _randomize(step.agent_linear)
    prev = torch.tensor([[0.1, 0.2, 0.5, 0.5, 0.0]])
    state = torch.tensor([[0.15, 0.18, 0.5, 0.5, 0.0]])
    prev_action, action = torch.tensor([[0.3, 0.1]]), torch.tensor([[0.2, -0.1]])
    shift = torch.tensor([[0.2, -0.3]])
    pad = torch.cat([shift, torch.zeros(1, 3)], 1)
    a = step(prev, state, prev_action, action)
    b = step(prev + pad, state + pad, prev_action + shift, action + shift)
    torch.testing.assert_close(b[:, :2], a[:, :2] + shift)
    # a block network that always answers "one step along your own x axis": turned by 90 degrees,
    # the block moves along the board's y axis
    with torch.no_grad():
        step.block_net[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    for angle, direction in ((0.0, [1.0, 0.0]), (math.pi / 2, [0.0, 1.0])):
        s = state.clone()
        s[:, 4] = angle
        nxt = step(s, s, prev_action, action)
        torch.testing.assert_close(nxt[:, 2:4] - s[:, 2:4], cfg.block_step * torch.tensor([direction]),
                                   atol=1e-6, rtol=0)
        assert nxt[0, 4].item() == pytest.approx(angle)


def test_refinement_moves_the_pose_towards_the_frame():
    net = PoseStateDynamics(_tiny(refine_steps=60, refine_lr=0.01))
    _randomize(net.decoder)
    true = torch.tensor([[0.1, -0.2, 0.3, 0.0, 0.4]])
    target = net.decoder(true).detach()
    guess = true + torch.tensor([[0.03, -0.02, 0.02, 0.03, 0.05]])
    refined = net.refine(guess, target)
    err = (net.decoder(refined) - target).pow(2).sum().item()
    assert err < 0.5 * (net.decoder(guess) - target).pow(2).sum().item()
    assert all(p.requires_grad for p in net.decoder.parameters())


def test_chunks_fed_back_as_context_continue_the_same_rollout():
    net = PoseStateDynamics(_tiny())
    _randomize(net)
    net.eval()
    ctx, acts = torch.randn(2, 2, 4, 8, 8), torch.rand(2, 7, 2) * 2 - 1
    known, unknown = torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.bool)
    whole = net.rollout(ctx, torch.zeros(2, 2, 2), unknown, acts)
    assert whole.shape == (2, 7, 4, 8, 8)
    first = net.rollout(ctx, torch.zeros(2, 2, 2), unknown, acts[:, :3])
    second = net.rollout(first[:, -2:], acts[:, 1:3], known, acts[:, 3:4])
    third = net.rollout(torch.cat([first[:, -1:], second], 1), acts[:, 2:4], known, acts[:, 4:])
    torch.testing.assert_close(torch.cat([first, second, third], 1), whole)
    # after a reset the unknown last target is where the agent stands, whatever the context's actions say
    other = net.rollout(ctx, torch.ones(2, 2, 2), unknown, acts)
    torch.testing.assert_close(other, whole)
    states = net.encode_states(ctx)[:, -1]  # the whole context, as rollout encodes it: bit for bit the same
    at_rest = net.rollout(ctx, states[:, None, 0:2].expand(-1, 2, -1), known, acts)
    torch.testing.assert_close(at_rest, whole)
    with pytest.raises(TypeError, match="not a denoiser"):
        net(ctx)


def test_rollout_loss_is_zero_for_a_perfect_model():
    net = PoseStateDynamics(_tiny())
    with torch.no_grad():
        net.step_net.agent_linear.bias.zero_()  # the step's networks start at zero; the linear map has a bias
    still = torch.tensor([0.1, 0.2, -0.3, 0.4, 1.0]).expand(3, 6, 5)  # nothing moves, targets where the agent is
    actions = still[..., :2].clone()
    assert rollout_loss(net, still, actions, 0.0, 0.5, 15.0).item() == 0.0
    moving = still + torch.linspace(0, 0.1, 6)[None, :, None]
    assert rollout_loss(net, moving, actions, 0.0, 0.0, 15.0).item() > 0
    assert rollout_loss(net, still, actions, 0.0, 0.5, 15.0, one_step_weight=3.0).item() == 0.0


def test_the_one_step_term_scores_single_steps_from_true_states():
    net = PoseStateDynamics(_tiny())
    for p in net.step_net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    g = torch.Generator().manual_seed(1)
    states, actions = torch.randn(4, 7, 5, generator=g) * 0.3, torch.randn(4, 7, 2, generator=g) * 0.3
    unrolled = rollout_loss(net, states, actions, 0.0, 0.0, 15.0)
    single = net.step(states[:, :-2], states[:, 1:-1], actions[:, :-2], actions[:, 1:-1])
    expected = unrolled + 2.5 * pose_loss(single, states[:, 2:], 15.0)
    torch.testing.assert_close(rollout_loss(net, states, actions, 0.0, 0.0, 15.0, one_step_weight=2.5), expected)
    # a single step from true states is the rollout's first step: one step's clip scores it twice
    short = states[:, :3], actions[:, :3]
    torch.testing.assert_close(rollout_loss(net, *short, 0.0, 0.0, 15.0, one_step_weight=1.0),
                               2 * rollout_loss(net, *short, 0.0, 0.0, 15.0))


def _pose_overrides(tmp, out: str = "pose") -> list[str]:
    """Overrides of the tiny pose-state run; each test trains into its own ``out`` folder of the
    module's shared pipeline, so that no test sees the stages another one trained."""
    keep = [o for o in training_overrides(tmp) if o.startswith(("data.", "codec.", "codec_dir="))]
    return [*keep, f"out_dir={tmp / out}", "model.encoder_channels=[8,8,8]", "model.encoder_hidden=16",
            "model.decoder_width=16", "model.decoder_depth=2", "model.dynamics_hidden=16", "model.refine_steps=2",
            "decoder.batch_size=4", "decoder.mean_frames=8", "encoder.batch_size=4", "dynamics.batch_size=4",
            "dynamics.unroll=3", "trainer.log_every=1", "trainer.ckpt_every=1", "chunk_size=3"]


def test_stages_train_resume_export_and_run_in_the_env(pipeline):
    over = _pose_overrides(pipeline)
    cfg = compose("train_pose", over)
    poses, states = true_states(cfg, 36)
    # the tiny dataset's block sits at (256, 256), angle 0.5
    np.testing.assert_allclose(states[:12, 2:], [[0.0, 0.0, 0.5]] * 12, atol=1e-6)
    np.testing.assert_allclose(poses[:, :4], states[:, :4])
    with pytest.raises(FileNotFoundError, match="pose-decoder, pose-encoder, pose-dynamics"):
        export_world_model(cfg, pipeline / "wm_pose")
    for stage, train in (("decoder", train_decoder), ("encoder", train_encoder), ("dynamics", train_dynamics)):
        train(compose("train_pose", [*over, f"{stage}.steps=2"]))
        train(compose("train_pose", [*over, f"{stage}.steps=3"]))
        with open(pipeline / "pose" / f"log_{stage}.csv") as f:
            assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    path = export_world_model(cfg, pipeline / "wm_pose")
    model = WorldModel.from_pretrained(path)
    assert model.config.backbone == "PoseState" and model.config.chunk_size == 3
    assert model.config.metadata["decoder_steps"] == 3 and model.config.metadata["dynamics_steps"] == 3
    start = rolls_out_twice_alike(model)
    env = gym.make("IRASim-PushT-v0", model=model, chunk_size=3, reward_model="zero")
    env.reset(seed=0, options={"initial_frame": start[0]})
    obs, reward, terminated, truncated, info = env.step(np.full((3, 2), 256.0, np.float32))
    assert np.asarray(info["frames"]).shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(obs, info["frames"][-1])

    # export_tokens: the same parts as a pose codec (encoder, decoder) and a step on its tokens
    tok = WorldModel.from_pretrained(export_world_model(
        compose("train_pose", [*over, "export_tokens=true", "tokens.token_scale=2.0"]), pipeline / "wm_pose_tok"))
    assert isinstance(tok.codec, PoseCodec) and tok.codec.token_scale == 2.0 and tok.codec.agent_from_pixels
    assert tok.backbone.encoder is None and tok.backbone.config.token_scale == 2.0
    assert tok.config.metadata["pose_tokens"] and tok.config.backbone == "PoseState"
    # the same weights, the step's in the backbone, the encoder's and decoder's in the codec
    for mine, theirs in ((tok.backbone.step_net, model.backbone.step_net),
                         (tok.codec.pose_encoder, model.backbone.encoder), (tok.codec.sprite, model.backbone.decoder)):
        for (k, v), w in zip(mine.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(v, w, msg=k)
    # the same state in, the same states out: the step is the same, only who reads and draws differs
    states = torch.tensor([[[0.1, 0.2, -0.1, 0.0, 0.5], [0.12, 0.2, -0.1, 0.0, 0.5]]])
    acts = torch.full((1, 4, 2), 0.3)
    mask = torch.ones(1, 2, dtype=torch.bool)
    via_tokens = tok.backbone.rollout(states_to_tokens(states[0], 2.0)[None], acts[:, :2], mask, acts)
    torch.testing.assert_close(tokens_to_states(via_tokens[0], 2.0),
                               model.backbone.rollout_states(states[:, 0], states[:, 1], acts[:, 1], acts)[0])
    env = gym.make("IRASim-PushT-v0", model=tok, chunk_size=3, reward_model="zero")
    env.reset(seed=0, options={"initial_frame": start[0]})
    obs, *_ = env.step(np.full((3, 2), 256.0, np.float32))
    assert obs.shape == (32, 32, 3)


def test_parts_benchmark_on_the_tiny_model(pipeline, monkeypatch, capsys):
    from conftest import load_benchmark

    bench = load_benchmark("pose_state_parts")
    over = _pose_overrides(pipeline, out="pose_bench")
    for stage, train in (("decoder", train_decoder), ("encoder", train_encoder), ("dynamics", train_dynamics)):
        train(compose("train_pose", [*over, f"{stage}.steps=3"]))
    path = export_world_model(compose("train_pose", over), pipeline / "wm_pose_bench")
    monkeypatch.setattr("sys.argv", ["pose_state_parts.py", str(path), "--data", str(pipeline / "heldout"),
                                     "--frames", "6", "--refine", "0,2", "--horizons", "3"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["encoder"]) == {"refine 0", "refine 2"}
    assert result["step"]["3 steps"]["rollouts"] > 0
    # a step that leaves a still scene still is exact there, and wrong by what moved elsewhere
    net = PoseStateDynamics(_tiny())
    with torch.no_grad():
        net.step_net.agent_linear.bias.zero_()
    still = np.tile(np.array([[0.1, 0.2, -0.3, 0.4, 1.0]], np.float32), (8, 1))
    model = SimpleNamespace(backbone=net)  # step_errors reads the model's backbone alone
    exact = bench.step_errors(model, still, still[:, :2].copy(), np.zeros(8, int), 3)
    assert exact["block_mean"] == 0.0 and exact["agent_last"] == 0.0
    slid = still.copy()
    slid[:, 2] += np.arange(8) / 256  # the block slides one unit of 512 a frame
    assert bench.step_errors(model, slid, still[:, :2].copy(), np.zeros(8, int), 3)["block_last"] == pytest.approx(3.0)


def test_only_context_rows_the_model_did_not_draw_are_encoded():
    net = PoseStateDynamics(_tiny(refine_steps=2))
    _randomize(net)
    net.eval()
    encoded: list[int] = []
    encode = net.encode_states
    net.encode_states = lambda latents: (encoded.append(latents.shape[0]), encode(latents))[1]
    ctx, acts = torch.randn(3, 2, 4, 8, 8), torch.rand(3, 4, 2) * 2 - 1
    known = torch.ones(3, 2, dtype=torch.bool)
    first = net.rollout(ctx, torch.zeros(3, 2, 2), ~known, acts)
    assert encoded == [3]
    second = net.rollout(first[:, -2:], acts[:, -2:], known, acts)  # every row the model's own: none encoded
    assert encoded == [3]
    mixed = second[:, -2:].clone()
    mixed[1] = torch.randn(2, 4, 8, 8)  # one env reset
    net.rollout(mixed, acts[:, -2:], known, acts)
    assert encoded == [3, 1]


def rolls_out_twice_alike(model: WorldModel) -> np.ndarray:
    """A tiny-pipeline state-space model imagines 7 frames of 2 white starts (latents ``4 x 16 x 16``),
    the same twice; returns the start frames."""
    start = np.full((2, 32, 32, 3), 255, np.uint8)
    out = model.rollout(start, np.full((2, 7, 2), 256.0))
    assert out.frames.shape == (2, 7, 32, 32, 3) and out.latents.shape == (2, 7, 4, 16, 16)
    np.testing.assert_array_equal(out.frames, model.rollout(start, np.full((2, 7, 2), 256.0)).frames)
    return start


def test_pose_targets_and_moving_clips(pipeline):
    cfg = compose("train_pose", [o for o in training_overrides(pipeline) if o.startswith(("data.", "codec.", "codec_dir="))])
    poses = pose_targets(cfg, 36)
    assert poses.shape == (36, 6) and poses.dtype == np.float32
    # the tiny dataset's block sits at (256, 256), angle 0.5, and slides right in episode 1 only
    np.testing.assert_allclose(poses[:12, 2:], [[0.0, 0.0, np.cos(0.5), np.sin(0.5)]] * 12, atol=1e-6)
    np.testing.assert_allclose(poses[12:18, 2] * 256, np.arange(6), atol=1e-4)
    assert np.abs(poses[:, :2]).max() <= 1
    with pytest.raises(ValueError, match="hold 36 frames"):
        pose_targets(cfg, 35)
    starts = np.array([0, 5, 12, 17, 18, 24])
    # only clips that see a frame of episode 1 up to its seventh (t = 6) see the block move
    assert moving_starts(poses, starts, 2).tolist() == [12, 17]
    assert moving_starts(poses, starts, 4).tolist() == [12, 17]
    with pytest.raises(ValueError, match="never moves"):
        moving_starts(poses, np.array([0, 24]), 3)


def test_the_pose_step_infers_through_a_trace_of_itself_bit_for_bit():
    """Outside training and autograd the step network runs as a TorchScript trace: the same outputs
    bit for bit at any batch, traced again when its weights change, and never where it trains."""
    torch.manual_seed(0)
    net = PoseStateDynamics(PoseStateConfig(latent_channels=6, latent_size=(1, 1), token_scale=4.0, dynamics_hidden=32,
                                            contact_features=True, wall_features=True, substeps=2)).eval()
    with torch.no_grad():
        for p in net.step_net.parameters():
            p.normal_(0, 0.3)

    def args(b: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(b)
        return [torch.rand(b, 5, generator=g) * 2 - 1, torch.rand(b, 5, generator=g) * 2 - 1,
                torch.rand(b, 2, generator=g) * 2 - 1, torch.rand(b, 2, generator=g) * 2 - 1]

    def both(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            traced = net.step(*args(batch))
            net.trace_step = False
            eager = net.step(*args(batch))
            net.trace_step = True
        return traced, eager

    for batch in (1, 5, 64):
        traced, eager = both(batch)
        assert torch.equal(traced, eager)
    first = net._trace.traced
    assert first is not None and first is not net.step_net
    with torch.no_grad():
        net.step_net.block_net[0].weight.mul_(1.5)  # new weights: traced again
    traced, eager = both(5)
    assert torch.equal(traced, eager) and net._trace.traced is not first
    # a traced backbone still pickles and copies (without its trace, made again on use)
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert clone._trace.traced is None
        with torch.no_grad():
            assert torch.equal(clone.step(*args(5)), eager)
    # autograd and training run the network itself
    x = args(3)
    x[1].requires_grad_(True)
    assert net.step(*x).requires_grad
    net.train()
    with torch.no_grad():
        assert net._inference_step(tuple(args(3))) is net.step_net
