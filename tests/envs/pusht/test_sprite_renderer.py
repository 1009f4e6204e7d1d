"""The sprite renderer (poses -> pixels): where it puts the objects, that it learns gym-pusht's
drawing, and its place as a pose codec's ``render`` decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from world_gym.action_spec import ActionSpec
from world_gym.samplers.diffusion import NoiseSchedule, SamplerConfig
from world_gym.codecs.vae import LatentCodec, tiny_vae_config
from world_gym.backbones.irasim import IRASimConfig
from world_gym.envs.pusht.pose_codec import PoseCodec, states_to_tokens, tokens_to_states
from world_gym.envs.pusht.sprite_renderer import SpriteRenderer, SpriteRendererConfig
from world_gym.training.common import compose
from world_gym.envs.pusht.train_pose import load_renderer, score_renderer, train_renderer
from world_gym.world_model import WorldModel, WorldModelConfig, codec_from_config

POSE = {"latent_size": [8, 8], "encoder_channels": [8, 8, 8], "encoder_hidden": 16, "decoder_width": 16,
        "decoder_depth": 2}


def _painted(size: int = 32) -> SpriteRenderer:
    """A renderer with a white background, an opaque red square block sprite with a blue corner
    (so that turns show) and an opaque green agent disc."""
    r = SpriteRenderer(SpriteRendererConfig(frame_size=(size, size), block_centre=(0.0, 0.0), block_extent=40.0))
    with torch.no_grad():
        r.background.fill_(1.0)
        n = r.block.shape[-1]
        r.block.zero_()
        r.block[0, :, n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = torch.tensor([1.0, -1.0, -1.0, 1.0])[:, None, None]
        r.block[0, :, n // 4 : n // 2, n // 4 : n // 2] = torch.tensor([-1.0, -1.0, 1.0, 1.0])[:, None, None]
        yy, xx = torch.meshgrid(torch.linspace(-20, 20, r.agent.shape[-1]), torch.linspace(-20, 20, r.agent.shape[-1]),
                                indexing="ij")
        r.agent.zero_()
        r.agent[0, 1] = 1.0
        r.agent[0, 3] = (xx**2 + yy**2 < 15**2).float()
    return r


def test_sprites_move_and_turn_with_the_pose():
    r = _painted()
    pixel = 2.0 / 32  # one pixel of a 32 x 32 frame, in pose units
    state = torch.tensor([[-0.5, 0.5, 0.0, 0.0, 0.3]])
    frame = r(state)[0]
    # the agent: moved by one pixel right and two down, its drawing moves with it
    moved = r(state + torch.tensor([[pixel, 2 * pixel, 0, 0, 0]]))[0]
    torch.testing.assert_close(moved[:, 12:24, 1:12], frame[:, 10:22, 0:11])
    # the block at the board's centre: turned by a quarter, its drawing turns a quarter (clockwise
    # on screen: x runs right, y down)
    turned = r(torch.tensor([[-0.9, -0.9, 0.0, 0.0, 0.3 + np.pi / 2]]))[0]
    plain = r(torch.tensor([[-0.9, -0.9, 0.0, 0.0, 0.3]]))[0]
    centre = (slice(None), slice(8, 24), slice(8, 24))
    expected = torch.rot90(plain, k=-1, dims=(1, 2))
    torch.testing.assert_close(turned[centre], expected[centre], atol=1e-4, rtol=0)
    assert (turned[centre] - plain[centre]).abs().max() > 1.0  # the blue corner went elsewhere
    # nothing is drawn outside a sprite: a block far off the board leaves the background
    off = r(torch.tensor([[-5.0, -5.0, 5.0, 5.0, 0.0]]))[0]
    torch.testing.assert_close(off, torch.ones_like(off))


def test_a_canvas_renderer_blends_the_canvas_pixels_a_bilinear_shrink_reads():
    """``canvas``: each frame pixel blends the sprites at the centres of the canvas pixels around the
    point a bilinear shrink samples; a canvas of the frame's own size is the plain renderer."""
    plain = _painted(32)
    states = torch.tensor([[-0.5, 0.5, 0.1, -0.05, 0.3], [0.3, -0.2, -0.2, 0.15, -1.2], [0.0, 0.0, 0.03, 0.01, 2.0]])
    same = SpriteRenderer(SpriteRendererConfig(frame_size=(32, 32), block_centre=(0.0, 0.0), block_extent=40.0, canvas=32))
    same.load_state_dict(plain.state_dict())
    torch.testing.assert_close(same(states), plain(states), atol=1e-6, rtol=0)
    # a 64-pixel canvas shrunk to 32: every frame pixel samples halfway between two canvas pixels on
    # each axis, so the frame is the mean of each 2 x 2 block of the sprites drawn at 64 x 64
    fine = SpriteRenderer(SpriteRendererConfig(frame_size=(64, 64), block_centre=(0.0, 0.0), block_extent=40.0))
    shrunk = SpriteRenderer(SpriteRendererConfig(frame_size=(32, 32), block_centre=(0.0, 0.0), block_extent=40.0, canvas=64))
    with torch.no_grad():
        for r in (fine, shrunk):
            r.block.copy_(plain.block)
            r.agent.copy_(plain.agent)
            r.background.fill_(1.0)
    torch.testing.assert_close(shrunk(states), torch.nn.functional.avg_pool2d(fine(states), 2), atol=1e-5, rtol=0)
    assert not torch.allclose(shrunk(states), plain(states), atol=1e-2)  # edges fall elsewhere than point sampling's
    with pytest.raises(ValueError, match="canvas must be 0 or at least"):
        SpriteRendererConfig(frame_size=(32, 32), canvas=16)


def _dense(r: SpriteRenderer, states: torch.Tensor) -> torch.Tensor:
    """The renderer's drawing sampled at every pixel of the frame (no windows): the reference."""
    c, half = r.config, r.config.workspace / 2
    (h, w), k = c.frame_size, len(r.pixels)
    pixels = r.pixels + r.offset / half
    cos, sin = torch.cos(states[:, 4])[:, None, None], torch.sin(states[:, 4])[:, None, None]
    d = (pixels - states[:, None, None, 2:4]) * half
    in_block = torch.stack([cos * d[..., 0] + sin * d[..., 1], -sin * d[..., 0] + cos * d[..., 1]], -1) - r.block_centre
    from_agent = (pixels - states[:, None, None, 0:2]) * half

    def sample(sprite, coords, extent):
        out = torch.nn.functional.grid_sample(sprite.expand(len(coords), -1, -1, -1), (coords / extent)[:, None],
                                              align_corners=True)[:, :, 0]
        return out[:, :3], out[:, 3:].clamp(0, 1)
    block_rgb, block_alpha = sample(r.block, in_block.flatten(0, 1), c.block_extent)
    agent_rgb, agent_alpha = sample(r.agent, from_agent.flatten(0, 1), c.agent_extent)
    out = r.background.flatten(1)[None] * (1 - block_alpha) + block_rgb * block_alpha
    out = out * (1 - agent_alpha) + agent_rgb * agent_alpha
    return (out.reshape(len(states), k, 3, h * w) * r.pixel_weights[None, :, None]).sum(1).reshape(-1, 3, h, w)


@pytest.mark.parametrize("canvas", [0, 160])
def test_the_renderer_samples_the_sprites_only_where_they_reach_and_draws_what_dense_sampling_draws(canvas):
    """Each sprite is sampled only in a window of pixels around it; with sprites opaque to their
    last texel, a shifted pixel grid, objects at the frame's edges, half off it or far off it, the
    frame and its gradients are those of sampling both sprites at every pixel."""
    torch.manual_seed(0)
    r = SpriteRenderer(SpriteRendererConfig(frame_size=(64, 80), block_extent=60.0, block_centre=(0.0, 20.0),
                                            agent_extent=20.0, canvas=canvas))
    with torch.no_grad():
        for p in (r.background, r.block, r.agent):
            p.uniform_(-1, 1)
        r.block[:, 3].uniform_(0.5, 1.0)
        r.agent[:, 3].uniform_(0.5, 1.0)
        r.offset.copy_(torch.tensor([3.7, -2.2]))
    states = torch.cat([torch.rand(48, 5) * 2.6 - 1.3,
                        torch.tensor([[1.0, -1.0, -1.0, 1.0, 0.8], [0.0, 0.0, 9.0, -9.0, 0.0], [-0.99, 0.99, 0.99, -0.99, 2.5]])])
    states[:48, 4] = torch.rand(48) * 12 - 6
    states.requires_grad_()
    drawn, reference = r(states), _dense(r, states)
    assert (drawn - r.background).abs().amax((1, 2, 3)).gt(0.1).float().mean() > 0.5  # most draw something
    torch.testing.assert_close(drawn, reference, atol=1e-6, rtol=0)
    grads = torch.autograd.grad(drawn.square().sum(), [states, r.background, r.block, r.agent, r.offset])
    expected = torch.autograd.grad(reference.square().sum(), [states, r.background, r.block, r.agent, r.offset])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_pose_codec_fits_its_reading_to_the_frame_through_the_renderer():
    """``render_refine_steps``: the pose read from a frame is refined until the renderer draws the frame."""
    torch.manual_seed(0)
    truth = torch.tensor([[-0.5, 0.5, 0.1, -0.05, 0.3], [0.3, -0.2, -0.2, 0.15, -1.2]])
    start = truth + torch.tensor([[0.0, 0.0, 0.03, -0.02, 0.06], [0.0, 0.0, -0.02, 0.03, -0.05]])
    for steps, method in ((0, "adam"), (150, "adam"), (8, "gauss_newton")):
        codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "refine_steps": 0, "render_refine_steps": steps,
                                                               "render_refine_lr": 0.005, "render_refine_method": method})
        renderer = _painted()
        with torch.no_grad():  # edges a pixel wide (16 texels), as learned sprites have: a pose gradient to follow
            renderer.block.copy_(torch.nn.functional.avg_pool2d(renderer.block, 17, 1, 8, count_include_pad=False))
        codec.attach_renderer(renderer)
        codec.read_states = lambda latents, refine_steps=None, agent=None: start.clone()
        frames = codec.tensor_to_frames(codec.renderer(truth))
        read = tokens_to_states(codec.encode(frames)[..., 0, 0, None, None], codec.token_scale)
        error = (read[:, 2:4] - truth[:, 2:4]).norm(dim=1) * 256, (read[:, 4] - truth[:, 4]).abs()
        if steps == 0:
            torch.testing.assert_close(read, start, atol=1e-5, rtol=0)
        else:  # within a tenth of the start's error (positions in units of 512, angles in radians)
            assert error[0].max() < 1.0 and error[1].max() < 0.006, (method, error)
        rebuilt = codec_from_config(codec.config_dict())
        assert (rebuilt.render_refine_steps, rebuilt.render_refine_method) == (steps, method)
    with pytest.raises(ValueError, match="render_refine_steps must be"):
        PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "render_refine_steps": -1})
    with pytest.raises(ValueError, match="render_refine_method must be one of"):
        PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "render_refine_method": "newton"})


def test_gauss_newton_fits_free_entries_and_never_raises_a_frames_error():
    """``gauss_newton_states``: the fixed entries keep their value bit for bit, the free ones reach the
    truth from a start a few pixels off, no frame's error grows (a step that would raise it is not
    taken), and zero iterations return the start."""
    from world_gym.envs.pusht.pose_state import gauss_newton_states
    from world_gym.tracing import InferenceTrace

    torch.manual_seed(0)
    renderer = _painted(64)
    with torch.no_grad():  # soft edges, as learned sprites have
        renderer.block.copy_(torch.nn.functional.avg_pool2d(renderer.block, 17, 1, 8, count_include_pad=False))
        renderer.agent.copy_(torch.nn.functional.avg_pool2d(renderer.agent, 9, 1, 4, count_include_pad=False))
    truth = torch.tensor([[-0.5, 0.5, 0.1, -0.05, 0.3], [0.3, -0.2, -0.2, 0.15, -1.2], [0.6, 0.6, -0.3, -0.3, 2.0]])
    start = truth + torch.tensor([[0.0, 0.0, 0.01, -0.008, 0.03], [0.0, 0.0, -0.006, 0.01, -0.02],
                                  [0.01, -0.01, 0.008, 0.006, 0.02]])
    target = renderer(truth).detach()
    fixed = torch.zeros(3, 5, dtype=torch.bool)
    fixed[:2, :2] = True  # the agent is known in the first two frames only
    fitted = gauss_newton_states(renderer, start, target, 8, fixed)
    assert torch.equal(fitted[fixed], start[fixed])
    error = (fitted - truth).abs()
    assert error[:, 2:4].max() * 256 < 0.5 and error[:, 4].max() < 0.003 and error[2, :2].max() * 256 < 0.5, error
    assert torch.equal(gauss_newton_states(renderer, start, target, 0, fixed), start)
    loss = lambda s: (renderer(s) - target).square().flatten(1).sum(1)  # noqa: E731
    for iterations in (1, 2, 3):
        assert (loss(gauss_newton_states(renderer, start, target, iterations, fixed)) <= loss(start)).all()
    assert torch.equal(gauss_newton_states(renderer, start, target, 8, fixed, trace=InferenceTrace(static_shapes=True)),
                       fitted)


@pytest.mark.parametrize("canvas", [0, 160])
def test_the_fit_through_a_traced_renderer_is_the_fit_through_the_renderer(canvas):
    """``refine_states(..., trace=...)``: the renderer runs as its TorchScript trace, and the fitted
    states are the untraced fit's bit for bit, at each batch size (traced again for a new one) and
    after the renderer's weights change."""
    from world_gym.envs.pusht.pose_state import refine_states
    from world_gym.tracing import InferenceTrace

    torch.manual_seed(0)
    r = SpriteRenderer(SpriteRendererConfig(frame_size=(48, 48), block_extent=60.0, agent_extent=20.0, canvas=canvas))
    with torch.no_grad():
        for p in (r.background, r.block, r.agent):
            p.uniform_(-1, 1)
    trace = InferenceTrace(static_shapes=True, optimize=False)
    fixed = torch.zeros(5, dtype=torch.bool)
    fixed[:2] = True
    for batch in (1, 3, 1):
        truth = torch.rand(batch, 5) * 1.2 - 0.6
        target = r(truth).detach()
        start = truth + torch.randn(batch, 5) * 0.02
        plain = refine_states(r, start, target, 6, 0.01, fixed.expand(batch, 5), cosine=True)
        traced = refine_states(r, start, target, 6, 0.01, fixed.expand(batch, 5), cosine=True, trace=trace)
        assert trace.traced is not None and trace.traced is not r
        assert torch.equal(traced, plain) and (plain - start).abs().max() > 0.01
    first = trace.traced
    with torch.no_grad():
        r.block.mul_(0.5)
    target = r(truth).detach()
    assert torch.equal(refine_states(r, start, target, 6, 0.01, fixed.expand(1, 5), trace=trace),
                       refine_states(r, start, target, 6, 0.01, fixed.expand(1, 5)))
    assert trace.traced is not first
    assert all(p.requires_grad for p in r.parameters())


def test_a_pose_codec_can_start_its_fit_from_a_rigid_t_fitted_to_the_block_pixels(monkeypatch):
    """``block_reader="rigid_fit"``: the block's start pose is a rigid T fitted to its pixels (then
    fitted through the renderer); frames it cannot read go to the encoder. ``"rigid_search"`` adds the
    reader's pattern search, closer to the truth, and needs no renderer without renderer steps."""
    from world_gym.envs.pusht.ground_truth import make_pusht_env
    from world_gym.envs.pusht.pose_codec import agent_from_pixels

    real = make_pusht_env()
    truths, frames = [], []
    for agent, block in (([100.0, 100.0], [262.0, 250.0, 0.7]), ([400.0, 120.0], [200.0, 330.0, -2.0]),
                         ([60.0, 450.0], [330.0, 180.0, 3.0])):
        real.reset(seed=0, options={"reset_to_state": [*agent, *block]})
        frames.append(real.step(np.array(agent))[0])
        truths.append((*real.unwrapped.block.position, real.unwrapped.block.angle))
    frames.append(np.full((96, 96, 3), 255, np.uint8))  # no block, no agent: the encoder reads it
    frames = np.stack(frames)
    errors = {}
    for reader, refine_steps in (("rigid_fit", 1), ("rigid_search", 1), ("rigid_search", 0)):
        codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "refine_steps": 0,
                                                               "render_refine_steps": refine_steps,
                                                               "block_reader": reader, "agent_from_pixels": True})
        if refine_steps:
            with pytest.raises(ValueError, match="attach one"):
                codec.encode(frames)
            codec.attach_renderer(SpriteRenderer(SpriteRendererConfig(frame_size=(96, 96))))
        x = codec.frames_to_tensor(frames)
        states, read = codec._fit_rigid(x, agent_from_pixels(x))
        assert read.tolist() == [True, True, True, False]
        position = [float(np.hypot(*((s[2:4].numpy() + 1) * 256 - t[:2]))) for s, t in zip(states[:3], truths)]
        angle = [abs((float(s[4]) - t[2] + np.pi) % (2 * np.pi) - np.pi) for s, t in zip(states[:3], truths)]
        assert max(position) < 4.0 and max(angle) < np.radians(4), (reader, position, angle)
        errors[reader] = (max(position), max(angle))
        encoded = []
        monkeypatch.setattr(codec, "read_states", lambda latents, refine_steps=None, agent=None:
                            encoded.append(len(latents)) or torch.zeros(len(latents), 5))
        assert codec.encode(frames).shape == (4, 6, 1, 1) and encoded == [1]
        assert codec_from_config(codec.config_dict()).block_reader == reader
    # the pattern search lands closer than the 72-angle grid's 5 degrees allow
    assert errors["rigid_search"][0] < 2.5 and errors["rigid_search"][1] < np.radians(1.0), errors
    with pytest.raises(ValueError, match="block_reader must be one of"):
        PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "block_reader": "template"})
    with pytest.raises(ValueError, match="needs render_refine_steps"):
        PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "block_reader": "rigid_fit"})


def test_renderer_learns_gym_pusht_drawing():
    """Fit on frames gym-pusht draws of random poses; the agent and block land where it draws them."""
    from world_gym.envs.pusht.ground_truth import StateRenderer

    rng = np.random.default_rng(0)
    sim = StateRenderer()
    agents = rng.uniform(60, 452, (160, 2))
    blocks = np.concatenate([rng.uniform(130, 382, (160, 2)), rng.uniform(-np.pi, np.pi, (160, 1))], 1)
    frames = np.stack([sim.render(b, a)[0] for a, b in zip(agents, blocks)])
    states = np.concatenate([agents / 256 - 1, blocks[:, :2] / 256 - 1, blocks[:, 2:]], 1).astype(np.float32)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.manual_seed(0)
    r = SpriteRenderer(background=torch.from_numpy(np.median(frames, 0)).permute(2, 0, 1).float() / 127.5 - 1)
    before = score_renderer(r, frames[128:], states[128:])
    opt = torch.optim.Adam(r.parameters(), lr=0.02)
    s = torch.from_numpy(states)
    for step in range(300):
        rows = torch.from_numpy(rng.integers(0, 128, 32))
        loss = (r(s[rows]) - x[rows]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = score_renderer(r, frames[128:], states[128:])  # 32 poses it did not see
    assert after["psnr"] > 30 and after["block_iou"] > 0.9 and after["agent_error"] < 1.5, after
    assert before["psnr"] < 27 and before["block_iou"] < 0.5, before


def test_render_decoder_joins_a_pose_codec_and_round_trips():
    torch.manual_seed(0)
    codec = PoseCodec.from_config(tiny_vae_config(), pose=POSE)
    assert codec.decoders == ("vae",) and codec.decoder == "vae"
    with pytest.raises(ValueError, match="pose-renderer"):
        codec.decoder = "render"
    with pytest.raises(ValueError, match="decoder must be one of"):  # a VAE codec has no render decoder
        LatentCodec.from_config(tiny_vae_config()).decoder = "render"
    codec.attach_renderer(_painted())
    assert codec.decoder == "render" and codec.decoders == ("vae", "render")
    states = torch.tensor([[-0.5, 0.5, 0.0, 0.0, 0.3], [0.5, -0.5, 0.2, 0.1, -1.0]])
    tokens = states_to_tokens(states, codec.token_scale)
    frames = codec.decode(tokens)
    np.testing.assert_array_equal(frames, codec.tensor_to_frames(codec.renderer(states)))
    codec.decoder = "vae"
    assert not np.array_equal(codec.decode(tokens), frames)
    # through a world model's directory: the config names the renderer, the weights hold it
    again = codec_from_config(codec.config_dict())
    assert again.decoder == "render" and again.renderer.config == codec.renderer.config
    with pytest.raises(ValueError, match=r"kind 'vae' .* unknown keys \['renderer'\]"):
        codec_from_config({**LatentCodec.from_config(tiny_vae_config()).config_dict(),
                           "renderer": codec.renderer.config_dict()})


def _tiny_pose_model(tmp: Path) -> Path:
    torch.manual_seed(0)
    backbone = IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, num_frames=5,
                                   action_channels=True, reference_frame=1, residual=True, pose_frame=4.0)
    codec = PoseCodec.from_config(tiny_vae_config(), pose={**POSE, "refine_steps": 0, "token_scale": 4.0})
    config = WorldModelConfig(
        backbone_config=backbone.to_dict(), codec=codec.config_dict(), frame_size=(32, 32), history=2,
        action=ActionSpec(dim=2, low=[0, 0], high=[512, 512], scale=1 / 256, offset=256.0),
        schedule=NoiseSchedule(prediction_type="sample"), sampler=SamplerConfig(name="ddim", num_inference_steps=2))
    return WorldModel(config).save_pretrained(tmp / "wm", backbone_dtype=torch.bfloat16)


def test_renderer_stage_trains_scores_and_attaches(pipeline, tmp_path):
    model_dir = _tiny_pose_model(tmp_path)
    over = [f"data.train_root={pipeline / 'train'}", f"data.heldout_root={pipeline / 'heldout'}",
            "data.frame_size=[32,32]", f"codec_dir={pipeline / 'codec'}", f"out_dir={tmp_path / 'render'}",
            "renderer.steps=4", "renderer.batch_size=4", "renderer.eval_frames=8", "renderer.background_frames=8",
            "trainer.log_every=1", "trainer.ckpt_every=2", f"renderer_attach=[{model_dir}]"]
    out = train_renderer(compose("train_pose", over))
    meta = json.loads((out / "renderer.json").read_text())
    assert meta["steps"] == 4 and meta["frames"] == 36 and meta["heldout"]["frames"] == 8
    assert meta["config"]["frame_size"] == [32, 32] and np.isfinite(meta["heldout"]["psnr"])
    renderer = load_renderer(out)
    model = WorldModel.from_pretrained(model_dir)
    assert model.codec.decoder == "render" and model.config.codec["renderer"] == renderer.config_dict()
    assert model.config.metadata["renderer"]["steps"] == 4
    torch.testing.assert_close(model.codec.renderer.block, renderer.block)
    # the backbone stays stored in bf16
    from safetensors import safe_open
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys() if k.startswith("backbone.")} == {"BF16"}
    out_frames = model.rollout(np.full((1, 32, 32, 3), 255, np.uint8), np.full((1, 3, 2), 256.0),
                               generator=[torch.Generator().manual_seed(0)]).frames
    assert out_frames.shape == (1, 3, 32, 32, 3)
    # resumes from its checkpoint: two more steps, not six
    train_renderer(compose("train_pose", [*over, "renderer.steps=6", "renderer_attach=[]"]))
    assert json.loads((out / "renderer.json").read_text())["steps"] == 6
    rows = (out / "log_renderer.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    # datasets named directly (no codec_dir), drawn on a canvas as gym-pusht draws on its own
    direct = train_renderer(compose("train_pose", [*over[:3], f"codec_dir={tmp_path / 'none'}", f"out_dir={tmp_path / 'direct'}",
                                                   *over[5:-1], "renderer.canvas=64", f"renderer.roots=[{pipeline / 'train'}]"]))
    meta = json.loads((direct / "renderer.json").read_text())
    assert meta["frames"] == 36 and meta["roots"] == [str(pipeline / "train")] and meta["config"]["canvas"] == 64
