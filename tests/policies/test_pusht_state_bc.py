"""The Push-T state learner: what it reads off frames, its fit, its files, and a real-simulator loop."""

from __future__ import annotations

import numpy as np
import pytest

from world_gym.envs.pusht.ground_truth import make_pusht_env
from world_gym.learning import demonstrations, make_backend, roll_out
from world_gym.policies.pusht_expert_proposal import PushTExpertProposal
from world_gym.policies.pusht_state_bc import PushTStateBC, PushTStateBCConfig


def test_features_are_the_state_of_gym_pusht_frames():
    env = make_pusht_env()
    rng = np.random.default_rng(0)
    frames, states = [], []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        for _ in range(4):
            frames.append(obs)
            states.append((info["pos_agent"], info["block_pose"]))
            obs, _, _, _, info = env.step(rng.uniform(100, 400, 2))
    features = PushTStateBC().featurize(np.stack(frames))
    for f, (agent, block) in zip(features, states):
        # within 1.5 frame pixels (a 96 x 96 pixel is 5.3 workspace units)
        np.testing.assert_allclose((f[:4] + 1) * 256, [*agent, *block[:2]], atol=8.0)
        assert abs(np.angle(np.exp(1j * (np.arctan2(f[5], f[4]) - block[2])))) < np.radians(4)


def test_fit_save_load_and_bad_input(tmp_path):
    learner = PushTStateBC(PushTStateBCConfig(chunk_size=4, hidden=16, steps=30))
    rng = np.random.default_rng(0)
    features = rng.uniform(-1, 1, (20, 6)).astype(np.float32)
    labels = rng.uniform(0, 512, (20, 4, 2)).astype(np.float32)
    first = learner.fit(features, labels, seed=3)["loss"]
    again = PushTStateBC(learner.config)
    assert again.fit(features, labels, seed=3)["loss"] == first  # seeded
    learner.save_pretrained(tmp_path / "m")
    loaded = PushTStateBC.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(features), learner.predict(features))
    with pytest.raises(ValueError, match="labels must be"):
        learner.fit(features, labels[:, :2])
    with pytest.raises(ValueError, match="finite"):
        learner.fit(np.full_like(features, np.nan), labels)
    with pytest.raises(ValueError, match="uint8"):
        learner.act(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="steps"):
        PushTStateBCConfig(steps=0)


def test_demonstrations_from_the_real_simulator_train_the_learner():
    backend = make_backend("IRASim-PushT-v0", num_envs=2, chunk_size=8, real=True, max_episode_frames=24)
    episodes = roll_out(backend, lambda: PushTExpertProposal(noise=0.0, chunk_size=8), [300_000, 300_001],
                        progress=False)
    assert [len(e.frames) for e in episodes] == [24, 24]
    learner = PushTStateBC(PushTStateBCConfig(hidden=64, steps=1500, lr=3e-3))
    demos = demonstrations(episodes, learner, 8).every(8)
    assert len(demos) == 6 and set(demos.step) == {0, 8, 16}
    learner.fit(demos.features, demos.labels)
    # the decision frames' chunks are learnt (within a few pixels of 512)
    assert np.abs(learner.predict(demos.features) - demos.labels).mean() < 10.0
    assert learner.act(episodes[0].frames[0]).shape == (8, 2)


def test_nearest_learner_answers_with_the_closest_sample_and_round_trips(tmp_path):
    from world_gym.policies.pusht_state_bc import PushTStateNearest

    learner = PushTStateNearest(PushTStateBCConfig(chunk_size=2))
    features = np.array([[-0.5, 0.0, 0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0, 1.0, 0.0]], np.float32)
    labels = np.array([[[100.0, 250.0]] * 2, [[400.0, 260.0]] * 2], np.float32)
    learner.fit(features, labels)
    query = np.array([[0.4, 0.0, 0.0, 0.0, 1.0, 0.0]], np.float32)  # nearest: the second sample
    # its chunk, as an offset from the agent: the query's agent is 0.1 x 256 px left of the sample's
    np.testing.assert_allclose(learner.predict(query)[0], [[374.4, 260.0]] * 2, atol=1e-3)
    learner.save_pretrained(tmp_path / "n")
    loaded = PushTStateNearest.from_pretrained(tmp_path / "n")
    np.testing.assert_array_equal(loaded.predict(query), learner.predict(query))
    with pytest.raises(ValueError, match="not a PushTStateBC"):
        PushTStateBC.from_pretrained(tmp_path / "n")
    with pytest.raises(RuntimeError, match="call fit"):
        PushTStateNearest().predict(query)
