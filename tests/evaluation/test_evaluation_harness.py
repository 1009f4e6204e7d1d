"""The evaluation runner, the cached two-sided harness and its report, on micro models and fake envs."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from world_gym.evaluation import harness as harness_mod
from world_gym.evaluation.harness import EvaluationConfig, Evaluator, compare, evaluate_policies, summarize_episodes
from world_gym.evaluation.report import markdown_report, side_by_side_videos, write_report
from world_gym.evaluation.rollouts import EnvListBackend, VectorEnvBackend, run_episodes
from world_gym.policies.base import PolicySpec, RandomPolicy
from world_gym.vector_env import WorldModelVectorEnv


class CountdownEnv(gym.Env):
    """Succeeds after ``seed % 5 + 1`` steps when the action's x is above 256, else runs to the limit."""

    observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = spaces.Box(0, 512, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left, self.t = seed % 5 + 1, 0
        return np.full((8, 8, 3), seed, np.uint8), {"start": seed}

    def step(self, action):
        self.t += 1
        self.left -= int(action[0] > 256)
        cov = 1.0 - self.left / 6
        done = self.left <= 0
        return np.full((8, 8, 3), self.t, np.uint8), float(done), done, self.t >= 12, {"coverage": cov, "is_success": done}


class ConstantPolicy:
    def __init__(self, x, chunk=3):
        self.x, self.chunk_size, self.seeds = x, chunk, []

    def reset(self, seed=None):
        self.seeds.append(seed)

    def act(self, observation, info=None):
        return np.full((self.chunk_size, 2), self.x, np.float32)


def test_env_list_backend_runs_every_seed_with_few_envs():
    backend = EnvListBackend(CountdownEnv, num_envs=2, chunk_size=3)
    made = []
    stats = run_episodes(backend, lambda: made.append(ConstantPolicy(400)) or made[-1], [0, 1, 2, 3, 9], record_seeds=[2])
    assert [e.seed for e in stats.episodes] == [0, 1, 2, 3, 9]
    assert all(e.success for e in stats.episodes)
    assert [e.length for e in stats.episodes] == [1, 2, 3, 4, 5]  # the chunk stops at success
    assert stats.episodes[2].frames.shape == (4, 8, 8, 3)  # start frame + 3 steps
    assert stats.episodes[0].max_coverage == pytest.approx(1.0)
    assert sorted(s for p in made for s in p.seeds) == [0, 1, 2, 3, 9] and len(made) == 2


def test_failing_policy_hits_the_time_limit():
    stats = run_episodes(EnvListBackend(CountdownEnv, 3, 4), lambda: ConstantPolicy(100, 4), [0, 1])
    assert not any(e.success for e in stats.episodes)
    assert [e.length for e in stats.episodes] == [12, 12]


def test_wrong_chunk_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="chunk_size"):
        run_episodes(EnvListBackend(CountdownEnv, 1, 4), lambda: ConstantPolicy(100, 3), [0])


def test_vector_env_backend_partial_resets_keep_starts(micro_model, micro_frames):
    env = WorldModelVectorEnv(num_envs=2, model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=4,
                              max_episode_frames=6)
    stats = run_episodes(VectorEnvBackend(env, 4), lambda: RandomPolicy(spaces.Box(0, 512, (4, 2), np.float32)),
                         [5, 1, 3], record_seeds=[5, 3])
    assert [e.seed for e in stats.episodes] == [5, 1, 3]
    assert [e.length for e in stats.episodes] == [6, 6, 6]  # 4 + 2: the chunk is cut at the frame limit
    for seed in (5, 3):  # each episode starts from its own initial state
        assert np.array_equal(stats.episodes[[5, 1, 3].index(seed)].frames[0], micro_frames.frames[seed])
    assert np.isnan(stats.episodes[0].max_coverage)  # the zero head reports no coverage


def _spec(name, x):
    return PolicySpec(name, lambda: ConstantPolicy(x), chunk_size=3, fingerprint={"x": x})


@pytest.fixture
def fake_sides(monkeypatch, micro_model, micro_frames):
    """World model: the micro model; ground truth: CountdownEnv."""

    def wm_backend(self, chunk):
        env = WorldModelVectorEnv(num_envs=self.config.num_envs, model=micro_model, initial_states=micro_frames,
                                  device="cpu", chunk_size=chunk, max_episode_frames=self.config.max_episode_frames)
        self.reward_head = env.parts.reward_head.name
        return VectorEnvBackend(env, chunk)

    monkeypatch.setattr(Evaluator, "_world_model_backend", wm_backend)
    monkeypatch.setattr(Evaluator, "_ground_truth_backend", lambda self, chunk: EnvListBackend(CountdownEnv, 2, chunk))
    monkeypatch.setattr(EvaluationConfig, "resolved_ground_truth_id", lambda self: "countdown")


def test_harness_caches_per_policy_and_reports(tmp_path, fake_sides, monkeypatch):
    config = EvaluationConfig(seeds=[0, 1, 2], num_envs=2, max_episode_frames=6, video_seeds=[0], out_dir=tmp_path)
    specs = [_spec("good", 400), _spec("bad", 100), _spec("mid", 300)]
    summary = evaluate_policies(specs, config, progress=False)
    assert summary["reward_head"] == "zero"
    gt = {n: p["ground_truth"]["summary"]["success_rate"] for n, p in summary["policies"].items()}
    assert gt["bad"] == 0.0 and gt["good"] > 0
    assert summary["comparison"]["success_rate"]["policies"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["policies"].keys() == {"good", "bad", "mid"}

    # a second run reads every result from the cache ...
    monkeypatch.setattr(harness_mod, "run_episodes", lambda *a, **k: pytest.fail("should have been cached"))
    assert evaluate_policies(specs, config, progress=False)["policies"] == summary["policies"]
    # ... unless the settings change
    with pytest.raises(pytest.fail.Exception):
        evaluate_policies([_spec("good", 401)], config, progress=False)

    paths = write_report(summary, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| good |" in text and "Pearson" in text and paths["plot"] is not None
    assert len(paths["videos"]) == 3 and all(p.endswith("_seed0.mp4") for p in paths["videos"])


def test_summary_and_comparison_numbers():
    eps = [{"success": s, "max_coverage": c, "length": 10} for s, c in [(True, 1.0), (False, 0.5), (False, None)]]
    s = summarize_episodes(eps)
    assert s["success_rate"] == pytest.approx(1 / 3) and s["mean_max_coverage"] == pytest.approx(0.75)
    assert 0 < s["success_ci"][0] < 1 / 3 < s["success_ci"][1]
    results = {f"p{i}": {side: {"summary": {"success_rate": v, "mean_max_coverage": None}}
                         for side, v in (("world_model", wm), ("ground_truth", g))}
               for i, (wm, g) in enumerate([(0.1, 0.0), (0.5, 0.6), (0.9, 0.8)])}
    c = compare(results)
    assert c["success_rate"]["spearman"] == pytest.approx(1.0) and c["success_rate"]["mmrv"] == 0.0
    assert "mean_max_coverage" not in c


def test_report_without_ground_truth(tmp_path):
    summary = {"env_id": "X", "seeds": [0], "max_episode_frames": 5, "num_envs": 1, "reward_head": "zero",
               "policies": {"a": {"world_model": {"summary": summarize_episodes([{"success": False, "max_coverage": None,
                                                                                 "length": 5}]),
                                                  "timing": {"wall_s": 1.0}}}}, "comparison": {}}
    assert "No comparison" in markdown_report(summary)
    assert side_by_side_videos(tmp_path) == []


def test_ground_truth_only(tmp_path, fake_sides):
    config = EvaluationConfig(seeds=[0, 1], num_envs=2, max_episode_frames=6, out_dir=tmp_path, world_model=False)
    summary = evaluate_policies([_spec("good", 400), _spec("bad", 100)], config, progress=False)
    assert set(summary["policies"]["good"]) == {"ground_truth"} and summary["comparison"] == {}
    assert summary["reward_head"] is None
    assert "| good | n/a | 1.00" in markdown_report(summary)


def test_pusht_rendered_on_demand_matches_pixel_observations():
    from world_gym.envs.pusht.ground_truth import make_pusht_env
    from world_gym.envs.pusht.family import render_ground_truth as render_pusht_observation

    def replay():
        return ConstantPolicy(0, chunk=4)

    class Wiggle(ConstantPolicy):
        def act(self, observation, info=None):
            self.x = (self.x + 97) % 512
            return np.array([[self.x, 512 - self.x]] * self.chunk_size, np.float32)

    runs = []
    for backend in (EnvListBackend(lambda: make_pusht_env(max_episode_steps=12), 2, 4),
                    EnvListBackend(lambda: make_pusht_env("state", max_episode_steps=12), 2, 4, render_pusht_observation)):
        runs.append(run_episodes(backend, lambda: Wiggle(100, 4), [3, 4, 5], record_seeds=[4]).episodes)
    pixels, lazy = runs
    assert [e.to_dict() for e in pixels] == [e.to_dict() for e in lazy]
    assert lazy[0].length == 12 and lazy[0].max_coverage > 0
    assert np.array_equal(pixels[1].frames, lazy[1].frames) and len(lazy[1].frames) == 13
