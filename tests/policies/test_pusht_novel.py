"""world_gym/policies/pusht_novel.py: frame-reading policies unlike the training mix, and their spec kind."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from world_gym.envs.pusht import ground_truth as gt  # noqa: E402
from world_gym.envs.pusht.behaviours import block_centre  # noqa: E402
from world_gym.policies import Policy  # noqa: E402
from world_gym.policies.pusht_novel import (BEHAVIOURS, NOVEL_SET, FramePolicy, GreedyPusher,  # noqa: E402
                                            make_novel_policy)
from world_gym.policies.zoo import parse_policy_spec  # noqa: E402


def _episode(policy: Policy, seed: int, chunks: int, chunk: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Targets the policy sends and the agent positions gym-pusht reports, for ``chunks`` chunks."""
    env = gt.make_pusht_env()
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    targets, agents = [], []
    for _ in range(chunks):
        out = policy.act(obs, {"pos_agent": "never read"})  # privileged info is ignored
        assert out.shape == (chunk, 2) and out.dtype == np.float32
        for action in out:
            obs, _, terminated, truncated, info = env.step(action)
            targets.append(action)
            agents.append(info["pos_agent"])
            if terminated or truncated:
                return np.array(targets), np.array(agents)
    return np.array(targets), np.array(agents)


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_every_policy_sends_valid_targets_on_gym_pusht_frames_and_repeats_given_the_seed(name: str) -> None:
    policy = make_novel_policy(name, chunk_size=4)
    assert isinstance(policy, Policy)
    first, _ = _episode(policy, seed=203, chunks=6)
    assert np.isfinite(first).all() and (first >= 0).all() and (first <= 512).all()
    again, _ = _episode(make_novel_policy(name, chunk_size=4), seed=203, chunks=6)
    np.testing.assert_array_equal(first, again)


def test_idle_holds_where_it_starts_and_greedy_moves_the_block_towards_the_goal() -> None:
    env = gt.make_pusht_env()
    _, info = env.reset(seed=205)
    start = np.asarray(info["pos_agent"])
    _, agents = _episode(make_novel_policy("idle", chunk_size=4), seed=205, chunks=5)
    assert np.abs(agents - start).max() < 4.0  # the frame read's error, no motion
    greedy = make_novel_policy("greedy", chunk_size=8)
    obs, _ = env.reset(seed=204)

    def gap() -> float:  # block's centre to the goal's
        return float(np.linalg.norm(block_centre(gt.read_state(env).block_pose) - block_centre(gt.GOAL_POSE)))

    before = gap()
    greedy.reset(seed=204)
    for _ in range(20):
        for action in greedy.act(obs):
            obs, *_ = env.step(action)
    assert gap() < before - 80.0


def test_seeds_change_the_random_policies_and_laggard_reads_every_32_steps() -> None:
    a, _ = _episode(make_novel_policy("stress_sweep", chunk_size=4), seed=1, chunks=4)
    policy = make_novel_policy("stress_sweep", chunk_size=4)
    env = gt.make_pusht_env()
    obs, _ = env.reset(seed=1)
    policy.reset(seed=2)  # same start, other seed
    assert not np.array_equal(a[:4], policy.act(obs))
    laggard = make_novel_policy("laggard", chunk_size=8)
    reads = []
    laggard.reader.estimate = lambda frame, read=laggard.reader.estimate: reads.append(1) or read(frame)
    obs, _ = env.reset(seed=1)
    laggard.reset(seed=1)
    for _ in range(8):
        laggard.act(obs)
    assert len(reads) == 2  # 64 steps, one read per 32


def test_spec_strings_parse_and_bad_ones_are_refused() -> None:
    names = [spec.name for text in NOVEL_SET for spec in parse_policy_spec(text)]
    assert len(names) == len(set(names)) == len(NOVEL_SET)
    [spec] = parse_policy_spec("novel:quitter,steps=40,chunk_size=4")
    assert spec.name == "quitter" and spec.chunk_size == 4 and spec.fingerprint["options"]["steps"] == 40
    assert isinstance(spec.make(), FramePolicy) and spec.make().behaviour.steps == 40
    [named] = parse_policy_spec("far=novel:wrong_goal,offset=90")
    assert named.name == "far" and named.make().behaviour.offset == 90.0
    with pytest.raises(ValueError, match="unknown novel policy"):
        parse_policy_spec("novel:sprint")
    with pytest.raises(ValueError, match="takes options"):
        parse_policy_spec("novel:idle,noise=3")
    with pytest.raises(ValueError, match="policy name"):
        parse_policy_spec("novel")
    with pytest.raises(ValueError, match="uint8"):
        make_novel_policy("idle").act(np.zeros((96, 96, 3), np.float32))


def test_greedy_pusher_lines_up_behind_the_block_before_pushing() -> None:
    block = np.array([356.0, 256.0, 0.0])
    centre, goal = block_centre(block), block_centre(gt.GOAL_POSE)
    d = (goal - centre) / np.linalg.norm(goal - centre)
    behind = centre - 95.0 * d
    far = GreedyPusher()
    info = {"pos_agent": np.array([100.0, 100.0]), "block_pose": block, "goal_pose": gt.GOAL_POSE}
    target = far.act(None, info)
    assert not far._pushing and np.linalg.norm(target - info["pos_agent"]) <= 40.0 + 1e-3
    np.testing.assert_allclose(far._waypoints[-1], behind)
    near = GreedyPusher()
    push = near.act(None, {**info, "pos_agent": behind + 2.0})
    assert near._pushing
    np.testing.assert_allclose(push, behind + 2.0 + 10.0 * d, atol=1e-4)  # straight at the goal's centre
