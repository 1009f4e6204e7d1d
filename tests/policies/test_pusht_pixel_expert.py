"""world_gym.envs.pusht.pixels.PushTFrameState (the state read off gym-pusht frames) and
world_gym/policies/pusht_pixel_expert.py (the scripted expert acting on it)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from world_gym.envs.pusht import ground_truth as gt  # noqa: E402
from world_gym.policies import Policy  # noqa: E402
from world_gym.envs.pusht.pixels import PushTFrameState  # noqa: E402
from world_gym.policies.pusht_pixel_expert import PixelPushTExpert  # noqa: E402
from world_gym.policies.zoo import parse_policy_spec  # noqa: E402


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def test_frame_state_reads_rendered_states() -> None:
    renderer, reader, rng = gt.StateRenderer(), PushTFrameState(), np.random.default_rng(0)
    for _ in range(12):
        pose = np.array([rng.uniform(120, 392), rng.uniform(120, 392), rng.uniform(0, 2 * np.pi)])
        agent = rng.uniform(30, 482, size=2)
        frame, _ = renderer.render(pose, agent)
        state = reader.estimate(frame)
        # a 96x96 pixel is 5.3 board units: the fit reads the block to about a fifth of one
        assert np.linalg.norm(state.block_pose[:2] - pose[:2]) < 4.0
        assert _angle_error(state.block_pose[2], pose[2]) < np.radians(2.0)
        assert np.linalg.norm(state.agent_pos - agent) < 3.0
        assert state.shape_error < 0.15  # blended edge pixels only


def test_frame_state_with_the_agent_on_the_block_and_an_empty_board() -> None:
    renderer, reader = gt.StateRenderer(), PushTFrameState()
    pose = np.array([300.0, 220.0, 2.5])
    contact = gt.block_local_to_world(np.array([[0.0, 60.0]]), pose)[0]  # on the stem: hides block pixels
    frame, _ = renderer.render(pose, contact)
    state = reader.estimate(frame)
    assert np.linalg.norm(state.block_pose[:2] - pose[:2]) < 4.0
    assert _angle_error(state.block_pose[2], pose[2]) < np.radians(2.0)
    blank = reader.estimate(np.full((96, 96, 3), 255, np.uint8))
    assert blank.block_pose is None and blank.agent_pos is None
    # a block-coloured blob of the T's area is no T: the fit says so
    rows, cols = np.mgrid[0:96, 0:96]
    blob = np.full((96, 96, 3), 255, np.uint8)
    blob[(rows - 40) ** 2 + (cols - 50) ** 2 <= reader.tee_pixels / np.pi] = (119, 136, 153)
    assert reader.estimate(blob).shape_error > 0.4


def test_pixel_expert_solves_a_seed_from_frames_alone() -> None:
    env = gt.make_pusht_env()
    policy = PixelPushTExpert(chunk_size=8)
    assert isinstance(policy, Policy)
    obs, info = env.reset(seed=5)
    policy.reset(seed=5)
    for _ in range(300 // 8):
        chunk = policy.act(obs, None)  # no privileged info
        assert chunk.shape == (8, 2) and chunk.dtype == np.float32
        for action in chunk:
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        if terminated or truncated:
            break
    assert info["is_success"], f"coverage {info['coverage']:.3f}"


def test_pixel_expert_spec_and_input_check() -> None:
    (spec,) = parse_policy_spec("pe=pixel_expert,noise=20,chunk_size=4")
    assert spec.name == "pe" and spec.chunk_size == 4 and spec.fingerprint["options"]["noise"] == 20
    policy = spec.make()
    policy.reset(seed=1)
    frame = gt.initial_frame(1)
    a = policy.act(frame)
    policy.reset(seed=1)
    np.testing.assert_array_equal(a, policy.act(frame))  # seeded noise
    assert a.shape == (4, 2) and np.all((a >= 0) & (a <= 512))
    with pytest.raises(ValueError, match="uint8"):
        policy.act(frame.astype(np.float32))


def test_closed_loop_probe_runs_both_sides(tmp_path) -> None:
    from conftest import load_benchmark
    from world_gym.assets import bundled_model_path

    probe = load_benchmark("closed_loop_probe")
    png = tmp_path / "probe.png"
    report = probe.main(["--model", str(bundled_model_path("tiny-pusht")), "--seed", "1", "--chunks", "2",
                         "--dtype", "float32", "--png", str(png), "--frames", "3"])
    truth, imagined = report["ground_truth"], report["world_model"]
    assert len(truth["shape_error"]) == len(imagined["shape_error"]) == 2
    assert truth["shape_error"][0] < 0.15  # gym-pusht's start frame, which both sides begin from
    assert imagined["shape_error"][0] == pytest.approx(truth["shape_error"][0])
    assert png.is_file()
