import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import world_gym  # noqa: F401
from world_gym.env import WorldModelEnv
from world_gym.reward_models import RewardHead, RewardOutput


class SucceedAtFrame(RewardHead):
    """Reward 1 per frame, success from the ``at``-th frame of every step on."""

    name = "test_success"

    def __init__(self, at: int):
        self.at = at

    def __call__(self, frames, context):
        b, t = frames.shape[:2]
        success = np.zeros((b, t), bool)
        success[:, self.at :] = True
        return RewardOutput(np.ones((b, t), np.float32), success, {"score": np.arange(t)[None].repeat(b, 0) * 1.0})


def _env(micro_model, micro_frames, **kw) -> WorldModelEnv:
    return WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", **kw)


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_gymnasium_check_env(micro_model, micro_frames, chunk_size):
    env = _env(micro_model, micro_frames, chunk_size=chunk_size, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    expected = (chunk_size, 2) if chunk_size > 1 else (2,)
    assert env.action_space.shape == expected and env.observation_space.shape == (32, 32, 3)


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_sb3_check_env(micro_model, micro_frames, chunk_size):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(_env(micro_model, micro_frames, chunk_size=chunk_size), warn=True)


def test_step_returns_every_frame_of_the_chunk(micro_model, micro_frames):
    env = _env(micro_model, micro_frames, chunk_size=6, report_timing=True)  # longer than one clip (4): two passes
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.full((6, 2), 300.0, np.float32))
    assert info["frames"].shape == (6, 32, 32, 3) and info["rewards"].shape == (6,)
    np.testing.assert_array_equal(obs, info["frames"][-1])
    assert set(info["timing"]) == {"model_s", "decode_s", "reward_s"} and info["episode_frames"] == 6


def test_rollout_passes_are_env_arguments(micro_model, micro_frames):
    """``frames_per_pass`` and ``clip_padding`` override the model's: a step of 4 actions in passes
    of 2 gives the frames of an env stepping 2 actions at a time."""
    def frames(chunk, **kw):
        env = _env(micro_model, micro_frames, chunk_size=chunk, **kw)
        env.reset(seed=1)
        acts = np.random.default_rng(0).uniform(0, 512, (4, 2)).astype(np.float32)
        return np.concatenate([env.step(acts[i : i + chunk])[4]["frames"] for i in range(0, 4, chunk)])

    assert micro_model.frames_per_pass == 4
    in_passes_of_2 = frames(4, frames_per_pass=2)
    assert micro_model.frames_per_pass == 2 and micro_model.config.clip_padding is None
    np.testing.assert_array_equal(in_passes_of_2, frames(2))
    frames(4, frames_per_pass=4, clip_padding="repeat_last")
    assert micro_model.frames_per_pass == 4 and micro_model.config.clip_padding == "repeat_last"
    frames(4, clip_padding="none")
    assert micro_model.config.clip_padding is None
    with pytest.raises(ValueError, match="frames_per_pass"):
        _env(micro_model, micro_frames, frames_per_pass=0)


def test_same_seed_same_frames_and_different_seed_differs(micro_model, micro_frames):
    def run(seed):
        env = _env(micro_model, micro_frames, chunk_size=2)
        env.reset(seed=seed)
        return [env.step(np.array([[10, 20], [30, 40]], np.float32))[4]["frames"] for _ in range(3)]

    a, b = run(3), run(3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, run(4)))


def test_reset_options(micro_model, micro_frames):
    env = _env(micro_model, micro_frames)
    frame = np.full((32, 32, 3), 7, np.uint8)
    obs, info = env.reset(options={"initial_frame": frame})
    np.testing.assert_array_equal(obs, frame)
    obs, info = env.reset(options={"episode": 4})
    np.testing.assert_array_equal(obs, micro_frames.frames[4])
    assert info["episode"] == 4 and info["seed"] == 4 and info["is_success"] is False
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"start": 1})
    with pytest.raises(ValueError, match="initial_frame"):
        env.reset(options={"initial_frame": np.zeros((16, 16, 3), np.uint8)})
    with pytest.raises(ValueError, match="goal_image"):
        env.reset(options={"goal_image": np.zeros((32, 32, 3), np.float32)})
    no_source = WorldModelEnv(model=micro_model, device="cpu")
    with pytest.raises(ValueError, match="initial-state source"):
        no_source.reset()


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros((3,), np.float32), "shape"),
        (np.zeros((2, 2), np.float32), "shape"),
        (np.array([np.nan, 1.0]), "finite"),
        (np.array([600.0, 1.0]), "within"),
        (np.array(["a", "b"]), "dtype"),
        (np.array([True, False]), "dtype"),
    ],
)
def test_bad_actions_raise_clear_errors(micro_model, micro_frames, action, match):
    env = _env(micro_model, micro_frames, chunk_size=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_step_before_reset_raises(micro_model, micro_frames):
    with pytest.raises(RuntimeError, match="reset"):
        _env(micro_model, micro_frames, chunk_size=1).step(np.zeros(2, np.float32))


def test_success_cuts_the_chunk_and_terminates(micro_model, micro_frames):
    env = _env(micro_model, micro_frames, chunk_size=4, reward_model=SucceedAtFrame(at=1))
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.full((4, 2), 256.0))
    assert terminated and not truncated and info["is_success"]
    assert info["frames"].shape[0] == 2 and reward == 2.0
    np.testing.assert_array_equal(info["score"], [0.0, 1.0])


def test_frame_limit_truncates_independently_of_chunk_size(micro_model, micro_frames):
    env = _env(micro_model, micro_frames, chunk_size=4, max_episode_frames=10)
    env.reset(seed=0)
    lengths, truncated = [], False
    while not truncated:
        _, _, _, truncated, info = env.step(np.full((4, 2), 256.0))
        lengths.append(len(info["frames"]))
    assert lengths == [4, 4, 2] and info["episode_frames"] == 10


def test_memory_stays_flat(micro_model, micro_frames):
    env = _env(micro_model, micro_frames, chunk_size=4)
    env.reset(seed=0)
    shapes = None
    for _ in range(12):
        env.step(np.full((4, 2), 256.0))
        state = env._episodes
        now = (state.context.shape, state.context_actions.shape, state.last_frames.shape)
        assert shapes in (None, now)
        shapes = now
    assert state.elapsed[0] == 48 and state.context.shape[1] == micro_model.history


def test_gym_make_pusht_uses_bundled_model_and_start_frames():
    env = gym.make("IRASim-PushT-v0", chunk_size=2, num_inference_steps=1, device="cpu")
    assert env.observation_space.shape == (96, 96, 3) and env.action_space.shape == (2, 2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (96, 96, 3) and 0 <= info["episode"] < 64
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert info["frames"].shape == (2, 96, 96, 3) and info["is_success"] is False
    single = gym.make("world_gym:IRASim-PushT-v0", num_inference_steps=1, device="cpu")
    assert single.action_space.shape == (2,)
    assert single.unwrapped.model.config.frame_size == (96, 96)


def test_pusht_world_model_envs_score_their_frames_with_the_network_not_the_re_render_fit():
    """The resnet_iou head re-renders gym-pusht's own frames near the success threshold; a world
    model's frames are not gym-pusht's, so the Push-T families turn that off unless told otherwise."""
    from world_gym.assets import bundled_model_path
    from world_gym.reward_models.resnet_iou import ResNetIoUReward

    tiny = str(bundled_model_path("tiny-pusht"))
    for env_id in ("IRASim-PushT-v0", "PoseState-PushT-v0"):
        for head in (gym.make(env_id, model=tiny, device="cpu").unwrapped.reward_head,
                     gym.make(env_id, model=tiny, reward_model="resnet_iou", device="cpu").unwrapped.reward_head):
            assert isinstance(head, ResNetIoUReward) and head.render_fit is False
    # on pose tokens (the shipped models) both read the reward off the imagined poses; named, resnet_iou
    # keeps the family's settings
    for env_id in ("IRASim-PushT-v0", "PoseState-PushT-v0"):
        assert gym.make(env_id, device="cpu").unwrapped.reward_head.name == "pusht_pose_coverage"
        head = gym.make(env_id, reward_model="resnet_iou", device="cpu").unwrapped.reward_head
        assert isinstance(head, ResNetIoUReward) and head.render_fit is False
    head = gym.make("IRASim-PushT-v0", model=tiny, reward_model="resnet_iou",
                    reward_model_kwargs={"render_fit": True}, device="cpu").unwrapped.reward_head
    assert head.render_fit is True
    # the family's defaults are the family head's: another head gets none of them
    head = gym.make("IRASim-PushT-v0", model=tiny, reward_model="goal_mse", device="cpu").unwrapped.reward_head
    assert not hasattr(head, "render_fit")


def test_ensemble_is_a_make_argument():
    from world_gym.assets import bundled_model_path

    tiny = str(bundled_model_path("tiny-pusht"))
    env = gym.make("IRASim-PushT-v0", model=tiny, ensemble=2, frames_per_pass=4, device="cpu")
    assert env.unwrapped.model.config.sampler.ensemble == 2 and env.unwrapped.model.config.frames_per_pass == 4
    env.reset(seed=0)
    env.step(env.action_space.sample())
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="ensemble"):
            gym.make("IRASim-PushT-v0", model=tiny, ensemble=bad, device="cpu")


def test_pose_state_env_steps_in_bfloat16():
    import torch

    frames = {}
    for dtype in (torch.float32, torch.bfloat16):
        env = gym.make("PoseState-PushT-v0", dtype=dtype, chunk_size=8, device="cpu")
        env.reset(seed=0)
        obs, _, _, _, info = env.step(np.full((8, 2), 200.0, np.float32))
        frames[dtype] = info["frames"]
    # the same motion, drawn within a few pixels' rounding
    assert np.abs(frames[torch.float32].astype(int) - frames[torch.bfloat16].astype(int)).mean() < 5.0


def test_compile_compiles_the_backbones_per_frame_modules(monkeypatch):
    """``gym.make(..., compile=...)`` hands the modules the backbone names to ``torch.compile`` (the
    compiled speed is measured by ``benchmarks/speed.py --set compile=true``, not here)."""
    import torch

    from world_gym.assets import bundled_model_path

    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: calls.append((type(self).__name__, kw)))
    env = gym.make("PoseState-PushT-v0", compile={"mode": "max-autotune"}, chunk_size=2, device="cpu")
    assert calls == [("PoseStep", {"dynamic": False, "mode": "max-autotune"})]
    env.reset(seed=0)
    env.step(np.full((2, 2), 200.0, np.float32))
    calls.clear()
    gym.make("IRASim-PushT-v0", model=str(bundled_model_path("tiny-pusht")), compile=True, device="cpu")
    assert calls == [("IRASim", {"dynamic": False})]
    calls.clear()
    gym.make("PoseState-PushT-v0", device="cpu")
    assert calls == []
    with pytest.raises(TypeError, match="compile must be a bool"):
        gym.make("PoseState-PushT-v0", compile="yes", device="cpu")
