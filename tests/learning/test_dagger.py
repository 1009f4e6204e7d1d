"""DAgger and the demonstration helpers on a toy task whose answer is known, plus the Push-T parts."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import pytest

from world_gym.evaluation.rollouts import StepOutcome
from world_gym.learning import DAggerConfig, Demonstrations, demonstrations, relabel, roll_out, run_dagger

CHUNK = 2


class ToyBackend:
    """A point on a line pulled toward the target of each action (at most 0.3 a step). The task: reach
    the attractor on the start's side (+1 for a positive start, -1 for a negative one)."""

    def __init__(self, num_envs: int = 2, positive_only: bool = False) -> None:
        self.num_envs, self.chunk_size = num_envs, CHUNK
        self.action_space = gym.spaces.Box(-2.0, 2.0, (CHUNK, 1), np.float32)
        self.positive_only = positive_only
        self.x = np.zeros(num_envs)
        self.goal = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, int)

    def reset(self, slots: Sequence[int], seeds: Sequence[int], record: Sequence[bool] | None = None) -> dict:
        out = {}
        for slot, seed in zip(slots, seeds):
            x = np.random.default_rng(seed).uniform(0.2, 0.6)
            x = x if self.positive_only or seed % 2 == 0 else -x
            self.x[slot], self.goal[slot], self.steps[slot] = x, np.sign(x), 0
            out[slot] = (np.array([x], np.float32), {})
        return out

    def step(self, actions: np.ndarray, active: np.ndarray) -> dict[int, StepOutcome]:
        out = {}
        for i in np.flatnonzero(active):
            frames = []
            for a in actions[i].reshape(-1):
                self.x[i] += np.clip(a - self.x[i], -0.3, 0.3)
                self.steps[i] += 1
                frames.append(np.array([self.x[i]], np.float32))
            success = abs(self.x[i] - self.goal[i]) < 0.05
            out[int(i)] = StepOutcome(frames[-1], np.stack(frames), float(success), None, bool(success),
                                      bool(success or self.steps[i] >= 12), {})
        return out


class ToyExpert:
    """Targets the attractor on the point's side: the label of a frame depends on the frame only."""

    calls = 0

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Any, info: Any = None) -> np.ndarray:
        ToyExpert.calls += 1
        return np.full((CHUNK, 1), np.sign(float(observation[0])), np.float32)


class NearestLearner:
    """1-nearest-neighbour regression on the position: exact on what it has seen, nothing more."""

    def __init__(self) -> None:
        self.x = np.zeros((0, 1))
        self.y = np.zeros((0, CHUNK, 1))

    def featurize(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames, np.float32).reshape(len(frames), 1)

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
        self.x, self.y = np.asarray(features), np.asarray(labels)
        return {"loss": 0.0}

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Any, info: Any = None) -> np.ndarray:
        return self.y[np.abs(self.x[:, 0] - float(observation[0])).argmin()]


def _demos() -> Demonstrations:
    # the expert only ever demonstrated from positive starts
    episodes = roll_out(ToyBackend(positive_only=True), ToyExpert, range(4), progress=False)
    assert all(e.success for e in episodes)
    return demonstrations(episodes, NearestLearner(), CHUNK)


def test_roll_out_keeps_frames_and_actions_aligned():
    episodes = roll_out(ToyBackend(), ToyExpert, [0, 1, 2], progress=False)
    assert [e.seed for e in episodes] == [0, 1, 2]
    for e in episodes:
        assert len(e.frames) == len(e.actions) > 0
        # frame t is what the expert saw before action t: its sign is the action's
        np.testing.assert_array_equal(np.sign(e.frames[::CHUNK, 0]), e.actions[::CHUNK, 0])


def test_dagger_learns_what_the_demonstrations_lack(tmp_path):
    demos = _demos()
    config = DAggerConfig(iterations=2, episodes_per_iteration=6, labels_per_iteration=None, chunk_size=CHUNK,
                          first_seed=100)
    bc = NearestLearner()
    bc.fit(demos.features, demos.labels)
    negative = [s for s in range(1000, 1020) if s % 2]
    assert not any(e.success for e in roll_out(ToyBackend(), lambda: bc, negative, progress=False))
    result = run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), demos, config, progress=False)
    assert [h["iteration"] for h in result.history] == [0, 1, 2]
    assert result.history[1]["labels_added"] == result.history[1]["rollout_frames"]
    assert len(result.data) == len(demos) + sum(h.get("labels_added", 0) for h in result.history)
    assert all(e.success for e in roll_out(ToyBackend(), lambda: result.learner, negative, progress=False))


def test_dagger_resumes_where_it_stopped(tmp_path):
    demos = _demos()
    config = DAggerConfig(iterations=3, episodes_per_iteration=3, labels_per_iteration=5, chunk_size=CHUNK,
                          first_seed=100)
    whole = run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), demos, config, progress=False)

    def stop(iteration: int, learner: Any) -> None:
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), demos, config, out_dir=tmp_path, on_iteration=stop,
                   progress=False)
    before = ToyExpert.calls
    resumed = run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), demos, config, out_dir=tmp_path, progress=False)
    assert ToyExpert.calls - before == 2 * 5  # only iterations 2 and 3 were labelled again
    assert [h["iteration"] for h in resumed.history] == [0, 1, 2, 3]
    np.testing.assert_array_equal(resumed.data.features, whole.data.features)
    np.testing.assert_array_equal(resumed.data.labels, whole.data.labels)
    with pytest.raises(ValueError, match="other settings"):
        run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), demos, DAggerConfig(iterations=4, chunk_size=CHUNK),
                   out_dir=tmp_path, progress=False)


def test_relabel_checks_the_expert_and_keeps_to_its_budget():
    episodes = roll_out(ToyBackend(), ToyExpert, [0, 1], progress=False)
    data = relabel(episodes, ToyExpert(), NearestLearner(), CHUNK, "x", limit=3, progress=False)
    assert len(data) == 3 and set(data.source) == {"x"}
    strided = relabel(episodes, ToyExpert(), NearestLearner(), CHUNK, "x", stride=CHUNK, progress=False)
    assert set(strided.step % CHUNK) == {0} and len(strided) == sum(len(range(0, len(e.actions), CHUNK)) for e in episodes)
    with pytest.raises(ValueError, match="stride"):
        relabel(episodes, ToyExpert(), NearestLearner(), CHUNK, "x", stride=0, progress=False)

    class Wrong(ToyExpert):
        def act(self, observation: Any, info: Any = None) -> np.ndarray:
            return np.zeros((CHUNK + 1, 1), np.float32)

    with pytest.raises(ValueError, match="shape"):
        relabel(episodes, Wrong(), NearestLearner(), CHUNK, "x", progress=False)

    class Nan(ToyExpert):
        def act(self, observation: Any, info: Any = None) -> np.ndarray:
            return np.full((CHUNK, 1), np.nan, np.float32)

    with pytest.raises(ValueError, match="non-finite"):
        relabel(episodes, Nan(), NearestLearner(), CHUNK, "x", progress=False)


def test_demonstrations_file_round_trip_and_selection(tmp_path):
    demos = _demos()
    path = demos.save(tmp_path / "d.npz")
    back = Demonstrations.load(path)
    for key in ("features", "labels", "episode", "step", "source"):
        np.testing.assert_array_equal(getattr(back, key), getattr(demos, key))
    assert set(back.every(CHUNK).step % CHUNK) == {0}
    assert back.first_episodes(2).num_episodes == 2
    np.save(tmp_path / "other.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", features=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved Demonstrations"):
        Demonstrations.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="one row each"):
        Demonstrations(np.zeros((2, 1)), np.zeros((3, CHUNK, 1)), np.zeros(2), np.zeros(2), np.zeros(2))


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="episodes_per_iteration"):
        DAggerConfig(episodes_per_iteration=0)
    with pytest.raises(ValueError, match="labels_per_iteration"):
        DAggerConfig(labels_per_iteration=0)
    empty = Demonstrations(np.zeros((0, 1)), np.zeros((0, CHUNK, 1)), np.zeros(0), np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="no demonstrations"):
        run_dagger(NearestLearner(), ToyExpert(), ToyBackend(), empty, DAggerConfig(chunk_size=CHUNK))


def test_example_runs(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "examples" / "dagger_pusht.py"
    argv = [str(script), "--model", "tiny-pusht", "--demos", "2", "--iterations", "1", "--episodes", "2",
            "--labels", "4", "--starts", "2", "--num-envs", "2", "--max-frames", "16",
            "--out", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "BC on 2 demos (4 samples)" in out and "4 labels added" in out and "(8 samples)" in out
    assert (tmp_path / "run" / "state.json").is_file() and (tmp_path / "run" / "learner-1").is_dir()


def test_generated_dataset_feeds_the_learner_whole_or_not_at_all(tmp_path, capsys):
    from world_gym.cli import main
    from world_gym.data.integrity import DatasetIntegrityError
    from world_gym.learning import from_dataset
    from world_gym.policies.pusht_state_bc import PushTStateBC

    out = tmp_path / "wm_demos"
    argv = ["generate", "IRASim-PushT-v0", "--policy", "expert_proposal,noise=0,chunk_size=8", "--episodes", "2",
            "--out", str(out), "--model", "tiny-pusht", "--max-frames", "16", "--device", "cpu", "--quiet",
            "--num-envs", "2"]
    assert main(argv) == 0
    demos = from_dataset(out, PushTStateBC(), chunk_size=8)
    assert len(demos) == 32 and demos.num_episodes == 2 and set(demos.source) == {"wm_demos"}
    assert demos.labels.shape == (32, 8, 2) and len(demos.every(8)) == 4
    # the chunk of frame 0 is the 8 actions the expert took from it, as stored
    from world_gym.data.episodes import load_episodes

    stored = load_episodes(out, cache=False, progress=False)
    first = stored.episode_rows()[0]
    np.testing.assert_array_equal(demos.labels[demos.episode == stored.episode_index[first[0]]][0],
                                  stored.actions[first[:8]])
    data = next((out / "data").glob("*/*.parquet"))
    data.write_bytes(data.read_bytes()[:-64])
    with pytest.raises(DatasetIntegrityError, match="truncated or corrupt"):
        from_dataset(out, PushTStateBC(), chunk_size=8)
