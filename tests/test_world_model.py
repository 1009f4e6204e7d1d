import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import micro_config, randomize
from world_gym.samplers.diffusion import SamplerConfig
from world_gym.world_model import WorldModel


def _frames(b=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (b, 32, 32, 3), dtype=np.uint8)


def test_rollout_any_length_chains_clips(micro_model):
    actions = np.random.default_rng(0).uniform(0, 512, (2, 11, 2))  # 11 actions, 4 per clip
    out = micro_model.rollout(_frames(), actions, generator=torch.Generator().manual_seed(0))
    assert out.latents.shape == (2, 11, 4, 16, 16) and out.frames.shape == (2, 11, 32, 32, 3)


def test_chained_rollout_equals_stepwise_chunks(micro_model):
    actions = np.random.default_rng(1).uniform(0, 512, (1, 8, 2))
    whole = micro_model.rollout(_frames(1), actions, generator=torch.Generator().manual_seed(3), decode=False)
    gen = torch.Generator().manual_seed(3)
    first = micro_model.rollout(_frames(1), actions[:, :4], generator=gen, decode=False)
    second = micro_model.rollout(first.latents[:, -1:], actions[:, 4:], generator=gen, decode=False)
    torch.testing.assert_close(torch.cat([first.latents, second.latents], 1), whole.latents)


def test_actions_change_the_rollout(micro_model):
    frames = _frames(1)
    a = micro_model.rollout(frames, np.full((1, 4, 2), 100.0), generator=torch.Generator().manual_seed(0))
    b = micro_model.rollout(frames, np.full((1, 4, 2), 400.0), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a.latents, b.latents)


def test_save_load_round_trip_is_identical(tmp_path, micro_model):
    micro_model.save_pretrained(tmp_path / "wm")
    assert json.loads((tmp_path / "wm" / "config.json").read_text())["backbone"] == "IRASim"
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    actions = np.random.default_rng(2).uniform(0, 512, (2, 6, 2))
    a = micro_model.rollout(_frames(), actions, generator=torch.Generator().manual_seed(7))
    b = loaded.rollout(_frames(), actions, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_strict_loading_names_bad_keys(tmp_path, micro_model):
    micro_model.save_pretrained(tmp_path / "wm")
    weights = tmp_path / "wm" / "model.safetensors"
    state = load_file(str(weights))
    state.pop("backbone.mask_emb_fn.weight")
    state["backbone.extra.weight"] = torch.zeros(1)
    state["backbone.final_layer.linear.bias"] = torch.zeros(3)
    save_file(state, str(weights))
    with pytest.raises(ValueError) as err:
        WorldModel.from_pretrained(tmp_path / "wm")
    msg = str(err.value)
    assert "backbone.mask_emb_fn.weight" in msg and "backbone.extra.weight" in msg
    assert "backbone.final_layer.linear.bias" in msg


def test_history_of_several_frames():
    torch.manual_seed(0)
    model = randomize(WorldModel(micro_config(history=2, num_frames=5)))
    assert model.max_new_frames == 3
    history = np.stack([_frames(2, 0), _frames(2, 1)], axis=1)  # (B, 2, H, W, 3)
    out = model.rollout(history, np.full((2, 7, 2), 256.0), generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (2, 7, 32, 32, 3)
    single = model.rollout(_frames(2, 1), np.full((2, 7, 2), 256.0), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out.latents, single.latents), "the older history frame must matter"


def test_bad_inputs(micro_model, tmp_path):
    with pytest.raises(ValueError, match="actions must have shape"):
        micro_model.rollout(_frames(2), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="frames must have shape"):
        micro_model.rollout(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 3, 2)))
    with pytest.raises(FileNotFoundError):
        WorldModel.from_pretrained(tmp_path / "missing" / "dir")


def test_fixed_length_clips_pad_short_chunks():
    torch.manual_seed(0)
    config = micro_config()
    config.clip_padding = "zeros"
    model = randomize(WorldModel(config))
    calls = []
    forward = model.backbone.forward
    model.backbone.forward = lambda x, *a: calls.append(x.shape[1]) or forward(x, *a)
    out = model.rollout(_frames(1), np.full((1, 6, 2), 256.0), generator=torch.Generator().manual_seed(0))
    assert out.latents.shape[1] == 6 and set(calls) == {5}, "every pass runs the whole 5-frame clip"
    with pytest.raises(ValueError, match="clip_padding"):
        micro_config().__class__.from_dict({**micro_config().to_dict(), "clip_padding": "noise"})


def test_frames_per_pass_splits_rollouts_into_shorter_passes(tmp_path):
    torch.manual_seed(0)
    model = randomize(WorldModel(micro_config()))  # 4 new frames per clip
    calls = []
    forward = model.backbone.forward
    model.backbone.forward = lambda x, *a: calls.append(x.shape[1]) or forward(x, *a)
    steps = model.config.sampler.num_inference_steps
    actions = np.random.default_rng(4).uniform(0, 512, (1, 7, 2))

    def roll() -> torch.Tensor:
        calls.clear()
        return model.rollout(_frames(1), actions, generator=torch.Generator().manual_seed(5), decode=False).latents

    whole = roll()
    assert calls == [5] * steps + [4] * steps  # clips of 4 + 3 new frames after 1 history frame
    model.config.frames_per_pass = 2
    assert model.frames_per_pass == 2
    split = roll()
    assert split.shape == whole.shape and calls == [3] * 3 * steps + [2] * steps
    assert not torch.allclose(split, whole), "each pass conditions on the frames just before it"
    # a pass of 2 is what an env stepping 2 actions at a time gets
    gen, state, chained = torch.Generator().manual_seed(5), model.initial_context(_frames(1)), []
    model.config.frames_per_pass = None
    for start in range(0, 7, 2):
        acts = model.normalize_actions(actions[:, start : start + 2])
        chained.append(model.rollout_latents(*state, acts, gen))
        state = model.advance_context(*state, chained[-1], acts)
    torch.testing.assert_close(torch.cat(chained, 1), split)
    # with padding every pass still runs the whole clip and keeps its first frames
    model.config.frames_per_pass, model.config.clip_padding = 2, "repeat_last"
    assert roll().shape == whole.shape and set(calls) == {5} and len(calls) == 4 * steps
    model.config.frames_per_pass = 9
    assert model.frames_per_pass == 4, "never more than a clip holds"
    model.save_pretrained(tmp_path / "wm")
    assert WorldModel.from_pretrained(tmp_path / "wm").config.frames_per_pass == 9
    with pytest.raises(ValueError, match="frames_per_pass"):
        micro_config().__class__.from_dict({**micro_config().to_dict(), "frames_per_pass": 0})


def test_pndm_warm_up_needs_four_steps(micro_model):
    micro_model.config.sampler.options = {"skip_prk_steps": False}
    micro_model.config.sampler.name = "pndm"
    with pytest.raises(ValueError, match="num_inference_steps >= 4"):
        micro_model.rollout(_frames(1), np.full((1, 2, 2), 256.0), num_inference_steps=2)
    assert micro_model.rollout(_frames(1), np.full((1, 2, 2), 256.0), num_inference_steps=4).frames.shape[1] == 2


def test_ensemble_clips_are_means_of_samples_each_env_drawing_its_own(micro_model):
    frames, actions = _frames(2), np.full((2, 6, 2), 256.0)  # 6 actions: two clips of at most 4 frames

    def roll(k: int, batch: np.ndarray, seeds: tuple[int, ...]) -> torch.Tensor:
        micro_model.config.sampler.ensemble = k
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return micro_model.rollout(batch, actions[: len(batch)], generator=gens, decode=False).latents

    both = roll(3, frames, (0, 1))
    assert both.shape == roll(1, frames, (0, 1)).shape
    # an env's k samples come from its own generator, whatever runs beside it
    torch.testing.assert_close(roll(3, frames[1:], (1,)), both[1:])
    # the mean of 4 samples spreads over seeds half as much as one sample (1 / sqrt(4))
    spread = {k: torch.stack([roll(k, frames[:1], (s,)) for s in range(8)]).std(dim=0).mean().item() for k in (1, 4)}
    assert spread[4] < 0.7 * spread[1]
    with pytest.raises(ValueError, match="ensemble"):
        SamplerConfig(ensemble=0)
