"""Tests for world_gym/envs/pusht/ground_truth.py and world_gym/policies/pusht_expert.py against the real gym-pusht."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from world_gym.envs.pusht import ground_truth as gt  # noqa: E402
from world_gym.policies import Policy, PushTExpert, PushTPlay  # noqa: E402


def test_coverage_matches_gym_pusht_reward_and_success() -> None:
    env = gt.make_pusht_env(obs_type="state")
    _, info = env.reset(seed=5)
    assert gt.coverage(info["block_pose"]) == pytest.approx(env.unwrapped._get_coverage(), abs=1e-12)
    expert = PushTExpert()
    expert.reset(seed=5)
    seen_nonzero = False
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(expert.act(None, info))
        cov = gt.coverage(info["block_pose"])
        assert cov == pytest.approx(info["coverage"], abs=1e-12)
        assert gt.reward_from_coverage(cov) == pytest.approx(reward)
        assert gt.is_success(cov) == info["is_success"]
        seen_nonzero |= cov > 0.5
        if terminated or truncated:
            break
    assert seen_nonzero


def test_geometry_matches_pymunk_bodies() -> None:
    env = gt.make_pusht_env(obs_type="state")
    _, info = env.reset(seed=1)
    base = env.unwrapped
    corners = np.array([base.block.local_to_world(v) for s in base._block_shapes for v in s.get_vertices()])
    np.testing.assert_allclose(gt.block_keypoints(info["block_pose"]), corners, atol=1e-9)
    assert gt.coverage(gt.GOAL_POSE) == pytest.approx(1.0)
    shifted = gt.GOAL_POSE + np.array([3.0, 0.0, 0.0])
    assert gt.coverage(shifted) < gt.SUCCESS_THRESHOLD < gt.coverage(gt.GOAL_POSE)


def test_read_state_from_env_and_info_agree() -> None:
    env = gt.make_pusht_env()
    _, info = env.reset(seed=3)
    from_env, from_info = gt.read_state(env), gt.read_state(info)
    np.testing.assert_allclose(from_env.agent_pos, from_info.agent_pos)
    np.testing.assert_allclose(from_env.block_pose, from_info.block_pose)
    np.testing.assert_allclose(from_info.goal_pose, gt.GOAL_POSE)
    with pytest.raises(KeyError, match="pos_agent"):
        gt.read_state({"coverage": 0.0})


def test_initial_frame_is_the_reset_observation() -> None:
    env = gt.make_pusht_env()
    obs, _ = env.reset(seed=11)
    frame = gt.initial_frame(11)
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, obs)
    assert not np.array_equal(frame, gt.initial_frame(12))


def test_expert_solves_a_seed() -> None:
    env = gt.make_pusht_env(obs_type="state")
    expert = PushTExpert()
    assert isinstance(expert, Policy)
    _, info = env.reset(seed=5)
    expert.reset(seed=5)
    for _ in range(300):
        action = expert.act(None, info)
        assert action.shape == (2,) and action.dtype == np.float32
        assert np.all((action >= 0) & (action <= 512))
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert info["is_success"], f"coverage {info['coverage']:.3f}"


def test_expert_needs_info() -> None:
    with pytest.raises(ValueError, match="info"):
        PushTExpert().act(np.zeros((96, 96, 3), np.uint8), None)
    with pytest.raises(ValueError, match="noise"):
        PushTExpert(noise=-1.0)


def _targets(policy: Policy, seed: int, steps: int) -> np.ndarray:
    env = gt.make_pusht_env(obs_type="state")
    _, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    out = []
    for _ in range(steps):
        action = policy.act(None, info)
        out.append(action)
        _, _, _, _, info = env.step(action)
    return np.array(out)


def test_noisy_expert_is_repeatable_and_differs_from_expert() -> None:
    a = _targets(PushTExpert(noise=15.0), seed=2, steps=15)
    b = _targets(PushTExpert(noise=15.0), seed=2, steps=15)
    clean = _targets(PushTExpert(), seed=2, steps=15)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - clean).max() > 1.0


def test_play_is_smooth_bounded_and_seeded() -> None:
    play = PushTPlay()
    targets = _targets(play, seed=4, steps=60)
    assert isinstance(play, Policy)
    assert np.all((targets >= 0) & (targets <= 512))
    jumps = np.linalg.norm(np.diff(targets, axis=0), axis=1)
    assert jumps.max() <= play.speed_range[1] + 1e-3  # low-pass: never faster than the top speed
    assert jumps.sum() > 50.0  # it does move
    np.testing.assert_array_equal(targets, _targets(PushTPlay(), seed=4, steps=60))
    assert not np.array_equal(targets, _targets(PushTPlay(), seed=5, steps=60))
