"""world_gym.envs.pusht.behaviours: the stress families, played in real gym-pusht (state observations)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from training_data import play_behaviour  # noqa: E402
from world_gym.envs.pusht import behaviours as bh  # noqa: E402
from world_gym.envs.pusht.ground_truth import PushTEnv  # noqa: E402


def play(name: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Actions, agent positions and block poses of ``steps`` steps of family ``name`` from reset ``seed``."""
    return play_behaviour(bh.make_stress_policy(name), seed, steps)


@pytest.mark.parametrize("name", sorted(bh.STRESS_FAMILIES))
def test_each_family_is_deterministic_under_a_seed(name: str) -> None:
    seed = bh.family_seeds(name, 1)[0]
    a, b, other = play(name, seed, 40), play(name, seed, 40), play(name, seed + 1, 40)
    np.testing.assert_array_equal(a["action"], b["action"])
    assert a["action"].dtype == np.float32 and a["action"].shape[1:] == (2,)
    assert a["action"].min() >= 0 and a["action"].max() <= 512
    n = min(len(a["action"]), len(other["action"]))
    assert not np.array_equal(a["action"][:n], other["action"][:n])


def test_near_miss_never_moves_the_block_but_comes_close() -> None:
    seeds = bh.family_seeds("near_miss", 3)
    for seed in seeds:
        episode = play("near_miss", seed, 300)
        assert len(episode["action"]) == 300
        np.testing.assert_array_equal(episode["block"], np.repeat(episode["block"][:1], len(episode["block"]), 0))
        gaps = [bh.clearance(p[None], episode["block"][0]) for p in episode["agent"][1:]]
        assert min(gaps) > 0 and min(gaps) < 12.0  # close to the block, never on it
        assert np.linalg.norm(np.diff(episode["agent"], axis=0), axis=1).sum() > 500  # and it moves about


def test_side_switch_is_contact_rich() -> None:
    for seed in bh.family_seeds("side_switch", 2):
        episode = play("side_switch", seed, 150)
        moved = np.abs(np.diff(episode["block"], axis=0)).max(axis=1) > 1e-6
        contact = [bh.clearance(p[None], pose) <= 0.5 for p, pose in zip(episode["agent"][1:], episode["block"][1:])]
        assert moved.mean() > 0.6 and np.mean(contact) > 0.4, (moved.mean(), np.mean(contact))
        # the block stays on the board (the wall guard): its centre inside the walls at 5 and 506
        centres = np.array([bh.block_centre(p) for p in episode["block"]])
        assert centres.min() > 5 and centres.max() < 506


def test_agent_path_is_gym_pusht_s_controller() -> None:
    env = PushTEnv(obs_type="state")
    _, info = env.reset(seed=3)
    for target in ([100.0, 400.0], [512.0, 0.0], [250.0, 260.0]):
        predicted = bh.agent_path(info["pos_agent"], info["vel_agent"], np.array(target))[-1]
        _, _, _, _, info = env.step(np.array(target))
        np.testing.assert_allclose(predicted, info["pos_agent"], atol=1e-6)


def test_agent_velocity_is_read_exactly_from_two_positions_and_the_target() -> None:
    env = PushTEnv(obs_type="state")
    _, info = env.reset(seed=4)
    for target in ([100.0, 400.0], [512.0, 0.0], [250.0, 260.0], [250.0, 260.0]):
        before = np.array(info["pos_agent"])
        _, _, _, _, info = env.step(np.array(target))
        np.testing.assert_allclose(bh.agent_velocity(before, info["pos_agent"], np.array(target)), info["vel_agent"],
                                   atol=1e-6)


def test_family_seeds_are_disjoint_blocks_and_near_miss_skips_contact_starts() -> None:
    blocks = {}
    for name, code in bh.STRESS_FAMILIES.items():
        seeds = bh.family_seeds(name, 5)
        start = bh.STRESS_SEEDS[0] + bh.SEEDS_PER_FAMILY * (code - 10)
        assert seeds == sorted(seeds) and all(start <= s < start + bh.SEEDS_PER_FAMILY for s in seeds)
        blocks[name] = set(seeds)
        assert bh.family_seeds(name, 3) == seeds[:3]
    assert sum(map(len, blocks.values())) == len(set().union(*blocks.values()))
    near = bh.family_seeds("near_miss", 20)
    skipped = sorted(set(range(near[0], near[-1])) - set(near))
    assert skipped, "expected some near_miss resets with the agent at the block in 20 seeds"
    for seed, admitted in [(s, True) for s in near[:3]] + [(s, False) for s in skipped]:
        _, info = PushTEnv(obs_type="state").reset(seed=seed)
        assert (bh.clearance(info["pos_agent"][None], info["block_pose"]) >= 10.0) == admitted
    with pytest.raises(ValueError, match="stress families only"):
        bh.family_seeds("expert", 1)
    with pytest.raises(ValueError, match="unknown stress family"):
        bh.make_stress_policy("dance")
    assert bh.family_name(14) == "near_miss" and bh.family_name(0) == "expert" and bh.family_name(99) == "code 99"
