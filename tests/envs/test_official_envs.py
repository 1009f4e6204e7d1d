"""envs.irasim_official / languagetable / rt1 / bridge: converted official models behind gym.make."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

import world_gym  # noqa: F401  (registers the env ids)
from irasim_release import release_state_dict, save_release_checkpoint
from world_gym.convert_irasim import convert
from world_gym.envs.irasim_official import (
    DATA_ENV_VAR,
    MODELS_ENV_VAR,
    ImageFrames,
    IRASimEpisodes,
    arm_actions,
    load_image,
    resolve_checkpoint,
)
from world_gym.envs.languagetable import KEYBOARD_ACTIONS
from world_gym.codecs.vae import tiny_vae_config

FAST = {"device": "cpu", "sampler": "ddim", "num_inference_steps": 1}
GRIDS = {"languagetable": (18, 32), "rt1": (16, 20), "bridge": (16, 20)}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny official-layout checkpoints converted with a 3-downsampling VAE: real frame sizes."""
    root = tmp_path_factory.mktemp("official")
    torch.manual_seed(0)
    AutoencoderKL.from_config(tiny_vae_config(4, (8, 8, 8, 8))).save_pretrained(root / "vae")
    out = {}
    for dataset in ("languagetable", "rt1", "bridge"):
        state = release_state_dict(dataset, "frame_ada", depth=2, hidden=64, grid_hw=GRIDS[dataset])
        ckpt = save_release_checkpoint(root / f"{dataset}.pt", dataset, "frame_ada", state)
        out[dataset] = convert(ckpt, dataset, root / "vae", root / "models" / f"irasim-{dataset}-frame_ada")
    out["vae"] = root / "vae"
    return out


@pytest.fixture
def no_lookup_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(MODELS_ENV_VAR, raising=False)
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "env_id,dataset,frame_size,action_dim",
    [("IRASim-LanguageTable-v0", "languagetable", (288, 512), 2), ("IRASim-RT1-v0", "rt1", (256, 320), 7)],
)
def test_chunk_rollout_at_real_resolution(
    models: dict, env_id: str, dataset: str, frame_size: tuple, action_dim: int
) -> None:
    env = gym.make(env_id, checkpoint=str(models[dataset]), **FAST)
    assert env.action_space.shape == (15, action_dim)
    assert env.observation_space.shape == (*frame_size, 3)
    start = load_image(_image(360, 640), frame_size)
    obs, info = env.reset(seed=0, options={"initial_frame": start})
    assert obs.shape == (*frame_size, 3) and info["episode"] == -1
    actions = np.zeros((15, action_dim), np.float32)
    obs, reward, terminated, truncated, info = env.step(actions)
    assert obs.shape == (*frame_size, 3) and obs.dtype == np.uint8
    assert info["frames"].shape == (15, *frame_size, 3)
    with pytest.raises(ValueError, match=r"shape \(15, %d\)" % action_dim):
        env.step(np.zeros((15, action_dim + 1), np.float32))


def test_models_folder_lookup_sampler_kwargs_and_determinism(
    models: dict, no_lookup_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_ENV_VAR, str(models["bridge"].parent))
    env = gym.make("IRASim-Bridge-v0", chunk_size=3, device="cpu", sampler="dpm_solver", num_inference_steps=2)
    model = env.unwrapped.model
    assert model.config.metadata["dataset"] == "bridge"
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    start = {"initial_frame": _image(256, 320)}
    actions = np.random.default_rng(0).normal(0, 0.01, (3, 7)).astype(np.float32)
    env.reset(seed=3, options=start)
    first = env.step(actions)[4]["frames"]
    assert len(calls) == 2  # num_inference_steps reached the sampler: one backbone call per step
    env.reset(seed=3, options=start)
    np.testing.assert_array_equal(env.step(actions)[4]["frames"], first)


def test_missing_model_error_says_what_to_download(no_lookup_dirs: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        gym.make("IRASim-RT1-v0", device="cpu")
    message = str(err.value)
    assert "rt1_checkpoints_data.tar.gz" in message
    assert "world-gym convert-irasim rt1/checkpoints/frame_ada/0300000.pt --dataset rt1" in message
    assert str(no_lookup_dirs / "cache" / "world_gym" / "models" / "irasim-rt1-frame_ada") in message
    pickle = no_lookup_dirs / "0300000.pt"
    pickle.write_bytes(b"not read")
    with pytest.raises(ValueError, match="never unpickles"):
        resolve_checkpoint("rt1", pickle)


def test_vector_env_steps_all_envs_in_one_call(models: dict) -> None:
    envs = gym.make_vec("IRASim-RT1-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        checkpoint=str(models["rt1"]), chunk_size=1, **FAST)
    envs.reset(seed=0, options={"initial_frame": np.stack([_image(256, 320, 1), _image(256, 320, 2)])})
    obs, *_ = envs.step(np.zeros((2, 7), np.float32))
    assert obs.shape == (2, 256, 320, 3)
    envs.close()


def test_vae_override_must_match_the_latent_layout(models: dict, tmp_path: Path) -> None:
    env = gym.make("IRASim-RT1-v0", checkpoint=str(models["rt1"]), vae=str(models["vae"]), chunk_size=1, **FAST)
    env.reset(seed=0, options={"initial_frame": _image(256, 320)})
    assert env.step(np.zeros(7, np.float32))[0].shape == (256, 320, 3)
    AutoencoderKL.from_config(tiny_vae_config(4, (8, 8, 8))).save_pretrained(tmp_path / "small_vae")
    with pytest.raises(ValueError, match="downsampling 4"):
        gym.make("IRASim-RT1-v0", checkpoint=str(models["rt1"]), vae=str(tmp_path / "small_vae"), **FAST)


def _benchmark_data(root: Path) -> None:
    """A two-episode Language-Table and a one-episode RT-1 split laid out as the release ships them."""
    rng = np.random.default_rng(0)
    lt = root / "languagetable"
    (lt / "annotation" / "test").mkdir(parents=True)
    (lt / "videos" / "test").mkdir(parents=True)
    (lt / "latent_videos" / "test").mkdir(parents=True)
    for episode in ("000027", "000191"):
        video = rng.integers(0, 256, (4, 360, 640, 3), dtype=np.uint8)
        iio.imwrite(lt / "videos" / "test" / f"{episode}.mp4", video, fps=5)
        torch.save({"obs": torch.randn(4, 4, 36, 64)}, lt / "latent_videos" / "test" / f"{episode}.pt")
        ann = {"actions": rng.normal(0, 0.02, (3, 2)).tolist(), "video_path": f"videos/test/{episode}.mp4",
               "latent_video_path": f"latent_videos/test/{episode}.pt", "episode_id": episode}
        (lt / "annotation" / "test" / f"{episode}.json").write_text(json.dumps(ann))
    rt1 = root / "rt1"
    (rt1 / "annotation" / "test").mkdir(parents=True)
    (rt1 / "videos" / "test" / "0").mkdir(parents=True)
    video = rng.integers(0, 256, (3, 256, 320, 3), dtype=np.uint8)
    iio.imwrite(rt1 / "videos" / "test" / "0" / "rgb.mp4", video, fps=3)
    states = [[0, 0, 0, 0, 0, np.pi / 2, 0], [0, 1, 0, 0, 0, np.pi / 2 + 0.1, 0], [0, 1, 0.5, 0, 0, np.pi / 2 + 0.1, 0]]
    ann = {"state": states, "continuous_gripper_state": [0.0, 0.25, 1.0], "episode_id": "0",
           "videos": [{"video_path": "videos/test/0/rgb.mp4"}], "latent_videos": [{"latent_video_path": "x.pt"}]}
    (rt1 / "annotation" / "test" / "0.json").write_text(json.dumps(ann))


def test_benchmark_episodes_start_and_replay(models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _benchmark_data(tmp_path / "opensource_robotdata")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "opensource_robotdata"))
    episodes = IRASimEpisodes(tmp_path / "opensource_robotdata", "languagetable")
    assert len(episodes) == 2 and episodes.latent_video(1).shape == (4, 4, 36, 64)
    env = gym.make("IRASim-LanguageTable-v0", checkpoint=str(models["languagetable"]), chunk_size=3, **FAST)
    obs, info = env.reset(seed=0, options={"episode": 1})
    assert obs.shape == (288, 512, 3) and info["episode_id"] == "000191" and info["actions"].shape == (3, 2)
    obs, *_ = env.step(info["actions"].astype(np.float32))
    _, info = env.reset(seed=1)  # drawn from the benchmark data
    assert info["episode"] in (0, 1)

    rt1 = IRASimEpisodes(tmp_path / "opensource_robotdata", "rt1")
    assert rt1.get(0).frame.shape == (256, 320, 3)
    np.testing.assert_allclose(rt1.actions(0)[:, :6], [[1, 0, 0, 0, 0, 0.1], [0, 0, 0.5, 0, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(rt1.actions(0)[:, 6], [0.25, 1.0])


def test_reset_without_start_frames_explains_the_options(models: dict, no_lookup_dirs: Path) -> None:
    env = gym.make("IRASim-LanguageTable-v0", checkpoint=str(models["languagetable"]), **FAST)
    with pytest.raises(ValueError, match=f"initial_frame.*{DATA_ENV_VAR}"):
        env.reset(seed=0)


def test_arm_actions_invert_a_known_motion() -> None:
    # Rotate 0.3 rad about z and move 1 m along the gripper's own x axis, twice.
    yaw = np.array([0.2, 0.5, 0.8])
    xy = np.cumsum([[0, 0], [np.cos(0.2), np.sin(0.2)], [np.cos(0.5), np.sin(0.5)]], axis=0)
    states = np.column_stack([xy, np.zeros(3), np.zeros(3), np.zeros(3), yaw])
    np.testing.assert_allclose(arm_actions(states, np.ones(3)), [[1, 0, 0, 0, 0, 0.3, 1]] * 2, atol=1e-12)


def test_images_resize_and_keyboard_table() -> None:
    frames = ImageFrames([_image(720, 1280), _image(288, 512)], frame_size=(288, 512))
    assert [frames.get(i).frame.shape for i in range(2)] == [(288, 512, 3)] * 2
    np.testing.assert_array_equal(frames.get(1).frame, _image(288, 512))
    flat = np.full((100, 200, 3), 77, np.uint8)
    assert (load_image(flat, (50, 60)) == 77).all()
    with pytest.raises(ValueError, match="uint8"):
        load_image(np.zeros((10, 10, 3), np.float32), (8, 8))
    assert set(KEYBOARD_ACTIONS) == {"w", "a", "s", "d", " "}
    steps = np.array(list(KEYBOARD_ACTIONS.values()))
    assert np.abs(steps).max() * 20 == pytest.approx(0.75) and np.abs(steps).max() <= 0.1
