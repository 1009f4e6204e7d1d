"""The untouched-block gate: contact geometry, the gate on pose tokens, and the engine's rollout hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import micro_config, randomize, tiny_pose_irasim
from world_gym.action_spec import ActionSpec
from world_gym.codecs.vae import tiny_vae_config
from world_gym.envs.pusht.contact import (
    AGENT_RADIUS,
    BLOCK_GATE_MARGIN,
    WALL_FEATURES,
    WALL_SLOP,
    WALL_STEP_SLOP,
    freeze_untouched_block,
    hold_in_walls,
    swept_clearance,
    tokens_to_pixels,
    wall_features,
    wall_penetration,
)
from world_gym.envs.pusht.pixels import TEE_RECTANGLES, inside_tee, world_to_block
from world_gym.envs.pusht.pose_codec import PoseCodec
from world_gym.envs.pusht.pose_state import PoseStateConfig, states_to_tokens
from world_gym.world_model import WorldModel, WorldModelConfig

SCALE = 4.0
POSE = {"latent_size": [8, 8], "encoder_channels": [8, 8, 8], "encoder_hidden": 16, "decoder_width": 16,
        "decoder_depth": 2, "refine_steps": 0, "token_scale": SCALE}


def _tokens(agent: np.ndarray, block: np.ndarray) -> torch.Tensor:
    """Pose tokens ``(..., 6, 1, 1)`` of agent positions ``(..., 2)`` and block poses ``(..., 3)`` in pixels."""
    states = np.concatenate([(agent - 256) / 256, (block[..., :2] - 256) / 256, block[..., 2:]], -1)
    flat = torch.from_numpy(states.reshape(-1, 5)).float()
    return states_to_tokens(flat, SCALE).reshape(*states.shape[:-1], 6, 1, 1)


def test_agent_radius_is_gym_pushts():
    ground_truth = pytest.importorskip("world_gym.envs.pusht.ground_truth")
    assert AGENT_RADIUS == ground_truth.AGENT_RADIUS


def test_swept_clearance_matches_a_dense_sampling_of_the_segment():
    """The exact segment-to-T distance agrees with points sampled densely along the segment (and
    is never larger: sampling can only miss the closest point)."""
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.uniform(0, 512, (n, 2)), rng.uniform(0, 512, (n, 2))
    b[:50] = a[:50]  # an agent at rest: a point
    pose = np.concatenate([rng.uniform(150, 350, (n, 2)), rng.uniform(-np.pi, np.pi, (n, 1))], 1)
    exact = swept_clearance(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(pose)).numpy()
    t = np.linspace(0, 1, 2001)[None, :, None]
    local = world_to_block(a[:, None] + t * (b - a)[:, None], pose[:, None])  # (n, 2001, 2), <= 0.36 px apart
    boxes = [(r.min(0), r.max(0)) for r in TEE_RECTANGLES]
    to_tee = np.min([np.linalg.norm(np.maximum(np.maximum(lo - local, local - hi), 0), axis=-1) for lo, hi in boxes], 0)
    assert (to_tee == 0).any(-1).tolist() == inside_tee(local).any(-1).tolist()
    sampled = to_tee.min(-1) - AGENT_RADIUS
    assert (sampled >= exact - 1e-9).all()  # sampling can only miss the closest point
    np.testing.assert_allclose(exact, sampled, atol=0.2)
    assert (exact > 0).any() and (exact < 0).any()


def test_wall_penetration_is_how_deep_the_t_lies_in_a_wall():
    # the bar spans x - 60 .. x + 60: at x = 66 its left end is 1 px into the wall at x = 7
    assert wall_penetration(torch.tensor([66.0, 256.0, 0.0])).item() == pytest.approx(1.0)
    # at the centre the stem's end (y = 376) is nearest a wall (504)
    assert wall_penetration(torch.tensor([256.0, 256.0, 0.0])).item() == pytest.approx(-128.0)
    # turned half a turn, the stem points up: its end at y = 136, 129 px from the wall at 7
    assert wall_penetration(torch.tensor([256.0, 256.0, np.pi])).item() == pytest.approx(-129.0, abs=1e-3)


def test_wall_features_say_how_deep_and_where_the_t_meets_each_wall():
    state = lambda x, y, angle: torch.tensor([x / 256 - 1, y / 256 - 1, angle])  # noqa: E731
    # the bar's left end (-60, 0) at x = 66 is 1 px beyond the left wall (x = 7): depth 1/16, corner seen
    f = wall_features(state(66.0, 256.0, 0.0))
    assert f.shape == (WALL_FEATURES,)
    assert f[0].item() == pytest.approx(1.0 / 16)
    assert f[4:6].tolist() == pytest.approx([-60.0 / 64, 0.0])
    # the stem's end (y = 376 of 512) is 128 px from the bottom wall: depth clipped at -4, its corner faded out
    assert f[3].item() == pytest.approx(-4.0) and f[10:12].abs().max().item() == 0.0
    # at the centre no wall is within 16 px: the corners all fade to zero, depths as far as they are
    f = wall_features(state(256.0, 256.0, 0.0))
    assert f[4:].abs().max().item() == 0.0 and (f[:4] == -4.0).all()
    # agrees with wall_penetration on the deepest wall
    for pose in ([66.0, 256.0, 0.3], [450.0, 120.0, -2.0], [256.0, 470.0, 1.2]):
        deepest = wall_features(state(*pose))[:4].max().item() * 16
        assert deepest == pytest.approx(min(max(wall_penetration(torch.tensor(pose)).item(), -64.0), 16.0), abs=1e-3)


def test_gate_keeps_a_far_block_exactly_still_over_a_long_rollout():
    """300 imagined steps of a drifting block while the agent circles far from it: the gate returns
    the block of the context bit for bit at every step and never touches the agent."""
    steps = 300
    angle = np.linspace(0, 6 * np.pi, steps + 1)
    agent = np.stack([100 + 60 * np.cos(angle), 100 + 60 * np.sin(angle)], -1)
    block = np.array([360.0, 330.0, 0.7]) + np.cumsum(np.full((steps + 1, 3), [0.3, -0.2, 0.004]), 0)  # drifts
    tokens = _tokens(agent, block)[None]
    previous, new = tokens[:, :1], tokens[:, 1:]
    gated = freeze_untouched_block(previous, new, SCALE)
    assert torch.equal(gated[:, :, 2:], previous[:, -1:, 2:].expand(-1, steps, -1, -1, -1))
    assert torch.equal(gated[:, :, :2], new[:, :, :2])
    assert not torch.equal(new[:, :, 2:], gated[:, :, 2:])  # there was a drift to remove
    # bfloat16 tokens: the same, in their own dtype
    low = freeze_untouched_block(previous.bfloat16(), new.bfloat16(), SCALE)
    assert low.dtype == torch.bfloat16
    assert torch.equal(low[:, :, 2:], previous.bfloat16()[:, -1:, 2:].expand_as(low[:, :, 2:]))


def test_gate_leaves_a_pushed_block_alone_and_freezes_it_after_the_agent_leaves():
    """The agent walks into the bar and pushes the block along; then it leaves and the model's block
    keeps drifting: the still block before the push and the push itself pass unchanged, the drift
    after the agent left is removed."""
    push, leave = 20, 10
    k = np.arange(push + 1)
    agent = np.concatenate([np.stack([np.full(push + 1, 256.0), 200.0 + 5 * k], -1),
                            np.stack([np.linspace(60, 100, leave), np.full(leave, 60.0)], -1)])
    block_y = np.concatenate([np.maximum(260.0, 215.0 + 5 * k), 315.0 + np.arange(1, leave + 1)])  # then drifts
    block = np.stack([np.full(push + 1 + leave, 256.0), block_y, 0.3 + 0.01 * np.arange(push + 1 + leave)], -1)
    block[: 10, 2] = 0.3  # still until the agent reaches it (the bar's top at 260, the disc's edge at 215 + 5 k)
    tokens = _tokens(agent, block)[None]
    gated = freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE)
    assert not torch.equal(tokens[:, 1], tokens[:, push])  # the block moved
    # frames 1 .. push + 1 (the step away from the block starts inside it) are the model's own
    assert torch.equal(gated[:, : push + 1], tokens[:, 1 : push + 2])
    # afterwards the block stays where that step left it, the agent goes on
    assert torch.equal(gated[:, push + 1 :, 2:], tokens[:, push + 1 : push + 2, 2:].expand(-1, leave - 1, -1, -1, -1))
    assert torch.equal(gated[:, :, :2], tokens[:, 1:, :2])


def test_gate_lets_a_block_in_a_wall_move():
    """gym-pusht's solver pushes a block out of a wall with nothing touching it: the gate lets such
    a block move, and holds one that only rests against the wall (0.1 px in it)."""
    agent = np.array([[400.0, 400.0], [400.0, 410.0]])
    for depth, moves in ((2.0, True), (0.1, False)):
        x = 7.0 + 60.0 - depth  # the bar's left end `depth` px into the wall at x = 7
        block = np.array([[x, 256.0, 0.0], [x + 1.0, 256.0, 0.0]])
        tokens = _tokens(agent, block)[None]
        gated = freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE)
        assert torch.equal(gated, tokens[:, 1:]) == moves


def test_wall_hold_stops_a_pushed_block_at_the_wall_and_leaves_a_wedged_one():
    """The agent pushes the bar's left end into the left wall (x = 7): with ``walls`` the gate stops
    the block at :data:`WALL_SLOP` + :data:`WALL_STEP_SLOP` px in it and moves only its position
    channels; a block already wedged 10 px deep may stay there or go up to :data:`WALL_STEP_SLOP` px
    deeper, no more; without ``walls`` the step's block passes."""
    def step(x_before: float, x_after: float, walls: bool) -> tuple[torch.Tensor, torch.Tensor]:
        block = np.array([[x_before, 256.0, 0.0], [x_after, 256.0, 0.0]])
        agent = np.array([[x_before + 75.0, 271.0], [x_after + 75.0, 271.0]])  # touching the bar's right end
        tokens = _tokens(agent, block)[None]
        return freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE, walls=walls), tokens[:, 1:]

    def depth(tokens: torch.Tensor) -> float:
        return float(wall_penetration(tokens_to_pixels(tokens, SCALE)[1]).reshape(-1)[0])

    gated, new = step(80.0, 40.0, walls=True)
    assert depth(new) > 20 and depth(gated) == pytest.approx(WALL_SLOP + WALL_STEP_SLOP, abs=1e-3)
    assert torch.equal(gated[..., :2, :, :], new[..., :2, :, :]) and torch.equal(gated[..., 4:, :, :], new[..., 4:, :, :])
    assert torch.equal(step(80.0, 40.0, walls=False)[0], new)
    assert torch.equal(*step(80.0, 75.0, walls=True))  # clear of the wall: the step's own block
    wedged = 67.0 - 10.0  # the bar's left end 10 px into the wall
    before = depth(_tokens(np.array([0.0, 0.0]), np.array([wedged, 256.0, 0.0])))
    assert before == pytest.approx(10.0, abs=1e-3)
    for after, held in ((wedged, False), (wedged - 0.5, False), (wedged - 5.0, True)):
        gated, new = step(wedged, after, walls=True)
        assert torch.equal(gated, new) != held, after
        assert depth(gated) <= before + WALL_STEP_SLOP + 1e-3
    moved = hold_in_walls(torch.tensor([256.0, 256.0, 0.0]), torch.tensor([[256.0, 505.0, 3.1], [256.0, 256.0, 1.0]]))
    assert wall_penetration(moved)[0] == pytest.approx(WALL_SLOP + WALL_STEP_SLOP, abs=1e-3)
    assert torch.equal(moved[1], torch.tensor([256.0, 256.0, 1.0]))


def test_deadband_holds_small_nudges_where_the_agent_passes_close_without_touching():
    """The agent passes 2 px from the bar's top (inside the margin, not touching): with a deadband,
    steps that move the T's far end by less than it are held, a larger one and a push pass."""
    block = np.array([256.0, 256.0, 0.0])  # the bar's top edge at y = 256
    agent = np.array([[200.0, 256.0 - AGENT_RADIUS - 2.0], [230.0, 256.0 - AGENT_RADIUS - 2.0]])
    for shift, turn, deadband, held in ((0.3, 0.0, 1.0, True), (0.0, 0.004, 1.0, True), (0.3, 0.0, 0.0, False),
                                        (1.5, 0.0, 1.0, False), (0.0, 0.01, 1.0, False)):
        moved = block + np.array([0.0, shift, turn])  # 0.004 rad turns the far end 0.48 px, 0.01 rad 1.2
        tokens = _tokens(agent, np.stack([block, moved]))[None]
        gated = freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE, deadband=deadband)
        assert torch.equal(gated[0, 0, 2:], tokens[0, 0, 2:]) == held, (shift, turn, deadband)
    # swept through the T: the step decides, however small its motion
    through = np.array([[256.0, 240.0], [256.0, 250.0]])
    tokens = _tokens(through, np.stack([block, block + np.array([0.0, 0.3, 0.0])]))[None]
    assert torch.equal(freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE, deadband=1.0), tokens[:, 1:])
    with pytest.raises(ValueError, match="block_gate_deadband"):
        PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "block_gate_deadband": -1.0})


def test_a_zero_margin_gate_moves_the_block_only_where_the_agent_touches_it():
    """``margin=0``: the block's channels change only in steps whose swept disc reaches the T; a pass
    0.2 px from the bar's top holds any motion the step makes, a pass that touches it lets it through."""
    block = np.array([256.0, 256.0, 0.0])  # the bar's top edge at y = 256
    moved = block + np.array([4.0, 3.0, 0.05])
    for gap, held in ((0.2, True), (2.0, True), (-0.2, False)):
        agent = np.array([[200.0, 256.0 - AGENT_RADIUS - gap], [300.0, 256.0 - AGENT_RADIUS - gap]])
        tokens = _tokens(agent, np.stack([block, moved]))[None]
        gated = freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE, margin=0.0)
        assert torch.equal(gated[0, 0, 2:], tokens[0, 0, 2:]) == held, gap
        assert torch.equal(gated[0, 0, :2], tokens[0, 1, :2])
        # the default margin lets the step decide in each of these passes
        assert torch.equal(freeze_untouched_block(tokens[:, :1], tokens[:, 1:], SCALE), tokens[:, 1:]) == (gap < BLOCK_GATE_MARGIN)


def test_the_codecs_gate_runs_traced_and_gives_the_gates_tokens_bit_for_bit():
    """``PoseCodec.constrain_rollout`` outside autograd runs a trace of the gate: on a mix of frozen,
    pushed, deadband-held and walled blocks its tokens are :func:`freeze_untouched_block`'s bit for
    bit, at each shape, and a changed deadband, margin or wall hold is traced again."""
    rng = np.random.default_rng(0)
    codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "block_gate_deadband": 1.0})
    for batch, length in ((1, 1), (32, 1), (8, 5), (32, 1)):
        block = np.concatenate([rng.uniform(60, 452, (batch, 2)), rng.uniform(-3, 3, (batch, 1))], -1)
        agent = block[:, :2] + rng.normal(0, 60, (batch, 2))  # near the block, some inside it
        block[: batch // 4 + 1, 0] = rng.uniform(70, 80, batch // 4 + 1)  # a quarter by the left wall, pushed
        agent[: batch // 4 + 1] = block[: batch // 4 + 1, :2] + np.array([0.0, 40.0])  # inside the stem
        previous = _tokens(np.stack([agent, agent], 1), np.stack([block, block], 1))
        steps = np.cumsum(rng.normal(0, 6, (batch, length, 2)), 1)
        moves = np.cumsum(rng.normal(0, [1.0, 1.0, 0.01], (batch, length, 3)) * (rng.random((batch, length, 1)) < 0.7), 1)
        moves[: batch // 4 + 1, :, 0] -= 12.0 * np.arange(1, length + 1)  # and slides left, into the wall
        new = _tokens(agent[:, None] + steps, block[:, None] + moves)
        for margin, deadband, walls in ((codec.block_gate_margin, 1.0, False), (codec.block_gate_margin, 0.0, False),
                                        (6.0, 0.0, False), (codec.block_gate_margin, 1.0, True)):
            codec.block_gate_margin, codec.block_gate_deadband, codec.block_gate_walls = margin, deadband, walls
            with torch.no_grad():
                gated = codec.constrain_rollout(previous, new)
            expected = freeze_untouched_block(previous, new, SCALE, margin, deadband, walls)
            assert torch.equal(gated, expected), (batch, length, margin, deadband, walls)
    held = (expected[:, :, 2:] == previous[:, -1:, 2:]).flatten(2).all(-1)
    assert held.any() and not held.all()  # both kinds of step were there
    assert not torch.equal(expected, freeze_untouched_block(previous, new, SCALE, margin, deadband))  # the wall hold acted
    assert codec._gate_trace.traced is not None and codec._gate_trace.traced is not codec._gate


def _pose_model(block_gate: bool) -> WorldModel:
    """A tiny IRASim on pose tokens that adds small random motions to its reference frame."""
    return tiny_pose_irasim({**POSE, "block_gate": block_gate})


def test_world_model_rollouts_hold_a_far_block_still_only_with_the_gate():
    """Through WorldModel.rollout: 11 actions (4 passes of 3 frames) keep the agent in a corner far
    from the block; the random model lets the block wander, the gated one keeps the context's block."""
    context = _tokens(np.array([[60.0, 60.0]] * 2), np.array([[380.0, 330.0, 0.5]] * 2))[None].expand(2, -1, -1, -1, -1)
    actions = np.full((2, 11, 2), 60.0)
    out = {}
    for gate in (False, True):
        model = _pose_model(gate)
        assert model.codec.block_gate is gate and (model.codec.rollout_constraint is None) is not gate
        gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
        out[gate] = model.rollout(context, actions, generator=gens, decode=False).latents
    agent, _ = tokens_to_pixels(torch.cat([context[:, -1:], out[True]], 1), SCALE)
    _, block = tokens_to_pixels(context[:, -1:], SCALE)
    assert (swept_clearance(agent[:, :-1], agent[:, 1:], block) > BLOCK_GATE_MARGIN).all()  # the agent stayed away
    assert not torch.equal(out[False][:, :, 2:], context[:, -1:, 2:].expand_as(out[False][:, :, 2:]))
    assert torch.equal(out[True][:, :, 2:], context[:, -1:, 2:].expand_as(out[True][:, :, 2:]))
    # the codec switch survives the config round trip, and turns off at run time
    model = _pose_model(True)
    assert PoseCodec.from_config(tiny_vae_config(), pose=model.codec.config_dict()["pose"]).block_gate
    model.codec.block_gate = False
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    assert torch.equal(model.rollout(context, actions, generator=gens, decode=False).latents, out[False])


def test_engine_applies_a_codec_constraint_pass_by_pass_and_only_when_there_is_one():
    """A codec without ``rollout_constraint`` (the micro VAE model) rolls out as before; a no-op
    constraint gives the same latents bit for bit, called once per pass with the latents before it."""
    model = randomize(WorldModel(micro_config(history=2, num_frames=5)))
    model.config.frames_per_pass = 2
    assert not hasattr(model.codec, "rollout_constraint")
    start = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).uniform(0, 512, (2, 7, 2))

    def run() -> torch.Tensor:
        gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
        return model.rollout(start, actions, generator=gens, decode=False).latents

    plain = run()
    calls = []

    def no_op(previous: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        calls.append((previous.clone(), new.shape[1]))
        return new

    model.codec.rollout_constraint = no_op
    assert torch.equal(run(), plain)
    assert [n for _, n in calls] == [2, 2, 2, 1]
    assert torch.equal(calls[1][0], plain[:, 0:2]) and torch.equal(calls[3][0], plain[:, 4:6])
    model.codec.rollout_constraint = None
    calls.clear()
    assert torch.equal(run(), plain) and not calls


def _drifting_pose_model() -> WorldModel:
    """A tiny pose-state model on pose tokens whose random step moves the block on its own."""
    cfg = PoseStateConfig(latent_channels=6, latent_size=(1, 1), token_scale=SCALE, dynamics_hidden=16,
                          num_frames=6)
    codec = PoseCodec.from_config(tiny_vae_config(), pose=POSE)
    config = WorldModelConfig(
        backbone="PoseState", backbone_config=cfg.to_dict(), codec=codec.config_dict(), frame_size=(32, 32),
        history=2, action=ActionSpec(dim=2, low=[0, 0], high=[512, 512], scale=1 / 256, offset=256.0))
    torch.manual_seed(0)
    model = WorldModel(config).eval()
    with torch.no_grad():
        last = model.backbone.step_net.block_net[-1]
        last.weight.normal_(0, 0.1), last.bias.normal_(0, 0.1)
    return model


def test_a_pose_state_rollout_is_gated_step_by_step():
    """The deterministic pose-state backbone steps one frame at a time under a constraint; a no-op
    constraint changes nothing, and with the gate the block of a far-off agent never moves."""
    model = _drifting_pose_model()
    model.codec.block_gate = False
    context = _tokens(np.array([[60.0, 60.0]] * 2), np.array([[330.0, 330.0, 0.5]] * 2))[None]
    actions = np.full((1, 20, 2), 70.0)
    plain = model.rollout(context, actions, decode=False).latents
    assert not torch.equal(plain[:, :, 2:], context[:, -1:, 2:].expand_as(plain[:, :, 2:]))
    model.codec.block_gate = True
    model.codec.constrain_rollout = lambda previous, new: new
    torch.testing.assert_close(model.rollout(context, actions, decode=False).latents, plain, rtol=0, atol=1e-6)
    del model.codec.constrain_rollout  # back to the gate
    gated = model.rollout(context, actions, decode=False).latents
    assert torch.equal(gated[:, :, 2:], context[:, -1:, 2:].expand_as(gated[:, :, 2:]))
    torch.testing.assert_close(gated[:, :, :2], plain[:, :, :2], rtol=0, atol=1e-5)


def test_a_constrained_backbone_rollout_equals_one_rollout_a_frame():
    """The state-space backbone applying the gate frame by frame in its own rollout gives the latents,
    and leaves the drawn states, of one backbone rollout a frame with the gate between them (the
    world model's generic path), bit for bit, over several chunks with some rows gated and some not."""
    model = _drifting_pose_model()
    backbone, gate = model.backbone, model.codec.rollout_constraint
    # row 0: the agent far from the block (gated); row 1: pushing through it (not gated)
    context = torch.cat([_tokens(np.array([[60.0, 60.0]] * 2), np.array([[330.0, 330.0, 0.5]] * 2))[None],
                         _tokens(np.array([[250.0, 330.0]] * 2), np.array([[330.0, 330.0, 0.5]] * 2))[None]])
    rng = np.random.default_rng(0)
    chunks = [model.normalize_actions(np.stack([np.full((5, 2), 70.0), np.linspace(260, 420, 10).reshape(5, 2)])
                                      + rng.normal(0, 3, (2, 5, 2))) for _ in range(3)]

    def run(fused: bool) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        backbone._drawn = None
        ctx, ctx_actions = context.clone(), torch.zeros(2, 2, 2)
        mask, outs = torch.zeros(2, 2, dtype=torch.bool), []
        for acts in chunks:
            if fused:
                new = backbone.rollout(ctx, ctx_actions, mask, acts, constraint=gate)
            else:  # one rollout a frame, the gate between, as WorldModel.rollout_latents runs other backbones
                frames, c, ca, m = [], ctx, ctx_actions, mask
                for k in range(acts.shape[1]):
                    frames.append(gate(c, backbone.rollout(c, ca, m, acts[:, k:k + 1])))
                    c, ca, m = model.advance_context(c, ca, m, frames[-1], acts[:, k:k + 1])
                new = torch.cat(frames, 1)
            outs.append(new)
            ctx, ctx_actions, mask = model.advance_context(ctx, ctx_actions, mask, new, acts)
        # the next chunk's start states: what the backbone keeps, read for the context it will get
        return outs, (ctx, backbone.context_states(ctx))

    fused, reference = run(True), run(False)
    for a, b in zip(fused[0], reference[0]):
        assert torch.equal(a, b)
    assert torch.equal(fused[1][1], reference[1][1])
    moved = fused[0][-1][:, -1, 2:] != context[:, -1, 2:]
    assert not moved[0].any() and moved[1].any()  # the far agent's block held, the pushed one moved


def test_block_gate_is_a_make_argument_of_the_pusht_envs():
    import gymnasium as gym

    import world_gym  # noqa: F401  (registers the envs)
    from world_gym.envs.pusht.family import make_model

    env = gym.make("PoseState-PushT-v0", block_gate=True, device="cpu")
    assert env.unwrapped.model.codec.block_gate is True
    env.reset(seed=0)
    assert env.step(np.array([256.0, 256.0], np.float32))[0].shape == (96, 96, 3)
    assert make_model(model_name="pusht-pose-state", block_gate=False).codec.block_gate is False
    assert make_model(model_name="pusht-irasim-pose").codec.block_gate is True  # the shipped models' default
    with pytest.raises(TypeError, match="block_gate needs a model on pose tokens"):
        make_model(model_name="tiny-pusht", block_gate=True)
    walled = make_model(model_name="pusht-pose-state", block_gate_walls=True)
    assert walled.codec.block_gate_walls is True and walled.codec.config_dict()["pose"]["block_gate_walls"] is True
    assert make_model(model_name="pusht-irasim-pose").codec.block_gate_walls is True  # the DiT's default
    assert make_model(model_name="pusht-pose-state").codec.block_gate_walls is False
    assert make_model(model_name="pusht-irasim-pose", block_gate_walls=False).codec.block_gate_walls is False
    with pytest.raises(TypeError, match="block_gate_walls needs a model on pose tokens"):
        make_model(model_name="tiny-pusht", block_gate_walls=True)
