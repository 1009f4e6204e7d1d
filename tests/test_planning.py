"""Planning: planners find a toy model's optimum, imagine candidates in one batched call, are
deterministic, reject bad input, plan in the real Push-T simulator, and keep the public contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world_gym.assets import bundled_model_path
from world_gym.planning import (
    CEMPlanner,
    GoalImageObjective,
    Imagination,
    LatentObjective,
    MPPIPlanner,
    RankingPlanner,
    RewardHeadObjective,
    colored_noise,
    make_planner,
)
from world_gym.planning.toy import PointMass, PointMassProposal
from world_gym.reward_models import RewardContext, RewardHead, RewardOutput
from world_gym.world_model import WorldModel

BLANK = np.zeros((8, 8, 3), np.uint8)


def final_distance(planner: RankingPlanner, model: PointMass) -> float:
    plan = planner.last_decision.plan
    return float(np.linalg.norm(plan.sum(axis=0) - model.goal.numpy()))


@pytest.mark.parametrize("kind", ["ranking", "cem", "mppi"])
def test_planners_find_the_toy_optimum(kind: str) -> None:
    model = PointMass(goal=(3.0, -1.0))
    kwargs = {"proposal": PointMassProposal(horizon=4), "num_samples": 2048} if kind == "ranking" else \
        {"num_samples": 128, "iterations": 6}
    planner = make_planner(kind, model, objective=model.objective(), horizon=4, seed=0, **kwargs)
    chunk = planner.act(BLANK)
    assert chunk.shape == (4, 2) and chunk.dtype == np.float32
    assert final_distance(planner, model) < (0.35 if kind == "ranking" else 0.1)


def test_more_candidates_never_rank_worse_on_a_deterministic_model() -> None:
    model = PointMass(goal=(2.0, 2.0))
    distances = []
    for k in (1, 4, 16, 64, 256):
        planner = RankingPlanner(model, model.objective(), num_samples=k, horizon=4,
                                 proposal=PointMassProposal(horizon=4), seed=3)
        planner.act(BLANK)
        distances.append(final_distance(planner, model))
    assert all(b <= a + 1e-9 for a, b in zip(distances, distances[1:])), distances  # nested draws: same seed


def test_candidates_are_imagined_in_one_batched_call(micro_model: WorldModel) -> None:
    calls = []
    rollout = micro_model.rollout_latents

    def counted(context, *args, **kwargs):
        calls.append(context.shape[0])
        return rollout(context, *args, **kwargs)

    micro_model.rollout_latents = counted
    scored = []

    class CountingHead(RewardHead):
        name = "counting"

        def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
            scored.append(frames.shape)
            return RewardOutput(reward=frames.mean(axis=(2, 3, 4)).astype(np.float32),
                                success=np.zeros(frames.shape[:2], bool))

    imagination = Imagination(micro_model)
    proposal = PointMassProposal(horizon=6)
    proposal.act = lambda frame, info=None: np.random.default_rng(len(calls) + len(scored)).uniform(0, 512, (6, 2))
    planner = RankingPlanner(imagination, RewardHeadObjective(CountingHead()), num_samples=12, horizon=6,
                             execute=3, proposal=proposal, seed=0)
    assert planner.act(np.zeros((32, 32, 3), np.uint8)).shape == (3, 2)
    assert calls == [12]  # one rollout call for all 12 candidates
    assert scored == [(12, 1, 32, 32, 3)]  # reduce="final": only each candidate's last frame is decoded
    assert planner.last_decision.model_calls == 1 and planner.last_decision.imagined_frames == 72

    cem = CEMPlanner(imagination, RewardHeadObjective(CountingHead()), num_samples=8, horizon=6, iterations=3)
    calls.clear()
    cem.act(np.zeros((32, 32, 3), np.uint8))
    assert calls == [8, 8, 8]  # one batched call per round


def test_latent_objectives_do_not_decode(micro_model: WorldModel) -> None:
    micro_model.decode = lambda latents: pytest.fail("a latent objective decoded frames")
    goal = np.full((32, 32, 3), 200, np.uint8)
    planner = MPPIPlanner(Imagination(micro_model), GoalImageObjective(goal, space="latent"), num_samples=6,
                          horizon=4, iterations=2, seed=0)
    assert planner.act(np.zeros((32, 32, 3), np.uint8)).shape == (4, 2)


@pytest.mark.parametrize("cls", [RankingPlanner, CEMPlanner, MPPIPlanner])
def test_planners_are_deterministic_under_a_seed(cls: type, micro_model: WorldModel) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    goal = np.full((32, 32, 3), 128, np.uint8)

    def run(seed: int) -> np.ndarray:
        kwargs = {"proposal": _UniformProposal(5)} if cls is RankingPlanner else {"iterations": 2}
        planner = cls(Imagination(micro_model), GoalImageObjective(goal), num_samples=6, horizon=5, seed=seed, **kwargs)
        planner.reset(seed=seed)
        return np.concatenate([planner.act(frame), planner.act(frame)])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


class _UniformProposal:
    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray, info: dict | None = None) -> np.ndarray:
        return self.rng.uniform(0, 512, (self.horizon, 2)).astype(np.float32)


def test_bad_input_raises_clear_errors(micro_model: WorldModel) -> None:
    model = PointMass()
    objective = model.objective()
    with pytest.raises(ValueError, match="num_samples"):
        CEMPlanner(model, objective, num_samples=0)
    with pytest.raises(ValueError, match="horizon 65 is longer"):
        CEMPlanner(model, objective, horizon=65)
    with pytest.raises(ValueError, match="execute"):
        CEMPlanner(model, objective, horizon=4, execute=5)
    with pytest.raises(ValueError, match="needs a proposal"):
        RankingPlanner(model, objective)
    with pytest.raises(ValueError, match=r"\(horizon, action_dim\) = \(4, 2\) chunk, got \(3, 2\)"):
        RankingPlanner(model, objective, horizon=4, proposal=PointMassProposal(horizon=3)).act(BLANK)
    nan = LatentObjective(lambda z: torch.full(z.shape[:2], float("nan")), name="broken")
    with pytest.raises(ValueError, match="objective 'broken' returned NaN"):
        CEMPlanner(model, nan, horizon=4).act(BLANK)
    wrong = LatentObjective(lambda z: torch.zeros(z.shape[0]), name="flat")
    with pytest.raises(ValueError, match="expected"):
        CEMPlanner(model, wrong, horizon=4).act(BLANK)
    from world_gym.reward_models.pusht_latent_coverage import PushTLatentCoverage

    with pytest.raises(ValueError, match="pose tokens"):  # 4-channel VAE latents: cannot be scored
        CEMPlanner(Imagination(micro_model), PushTLatentCoverage())
    with pytest.raises(ValueError, match="needs a goal image"):
        CEMPlanner(Imagination(micro_model), GoalImageObjective(), iterations=1).act(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown planner kind"):
        make_planner("gradient", model, objective=objective)


def test_colored_noise_is_unit_scale_and_smooth() -> None:
    rng = np.random.default_rng(0)
    white, red = colored_noise(rng, 0.0, (256, 16, 2)), colored_noise(rng, 2.0, (256, 16, 2))
    assert red.shape == (256, 16, 2) and abs(red.std() - 1) < 0.05
    step = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert step(red) < 0.5 * step(white)


# --- Push-T: the analytic coverage, the real simulator as the model, the contract ---------------------

pusht = pytest.importorskip("gym_pusht")


def test_tee_coverage_matches_gym_pusht() -> None:
    from world_gym.envs.pusht.ground_truth import GOAL_POSE, coverage
    from world_gym.reward_models.pusht_latent_coverage import tee_coverage

    rng = np.random.default_rng(0)
    poses = np.concatenate([GOAL_POSE[None], GOAL_POSE + rng.normal(0, [15, 15, 0.3], (40, 3)),
                            np.c_[rng.uniform(100, 400, (20, 2)), rng.uniform(-3, 3, 20)]])
    np.testing.assert_allclose(tee_coverage(poses), [coverage(p) for p in poses], atol=1e-9)


def test_simulator_model_reproduces_gym_pusht() -> None:
    from world_gym.envs.pusht.ground_truth import make_pusht_env
    from world_gym.envs.pusht.simulator_model import PushTSimulator
    from world_gym.reward_models.pusht_latent_coverage import tokens_to_block_poses

    env = make_pusht_env()
    frame, info = env.reset(seed=4)
    for _ in range(3):  # a moving agent: the start state has a velocity
        frame, _, _, _, info = env.step(np.array([200.0, 300.0]))
    actions = np.random.default_rng(0).uniform(100, 400, (1, 12, 2)).astype(np.float32)
    sim = PushTSimulator()
    imagined = tokens_to_block_poses(sim.imagine(sim.start(frame, info), actions).latents[0], 4.0)
    true = []
    for action in actions[0]:
        _, _, _, _, info = env.step(action)
        true.append(info["block_pose"])
    np.testing.assert_allclose(imagined[:, :2], np.asarray(true)[:, :2], atol=0.5)
    with pytest.raises(ValueError, match="needs the true state"):
        sim.start(frame)


def _episode_max_coverage(policy, seed: int, steps: int) -> float:
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    env = make_pusht_env()
    # a start the block is half on the goal: what a few decisions can change
    frame, info = env.reset(seed=seed, options={"reset_to_state": [120.0, 400.0, 280.0, 270.0, np.pi / 4 + 0.4]})
    policy.reset(seed=seed)
    best, done = 0.0, 0
    while done < steps:
        for action in policy.act(frame, info):
            frame, _, terminated, _, info = env.step(action)
            best, done = max(best, info["coverage"]), done + 1
            if terminated:
                return best
    return best


def test_ranking_with_the_real_simulator_beats_random() -> None:
    planner = make_planner("ranking", "gym-pusht", proposal=_UniformProposal(8), num_samples=16, horizon=8, seed=0)
    planned = np.mean([_episode_max_coverage(planner, seed, 24) for seed in range(2)])
    alone = make_planner("ranking", "gym-pusht", proposal=_UniformProposal(8), num_samples=1, horizon=8, seed=0)
    random = np.mean([_episode_max_coverage(alone, seed, 24) for seed in range(2)])
    assert planned > random + 0.05, (planned, random)


def test_contract_call_on_the_shipped_pusht_model() -> None:
    from world_gym.envs.pusht.family import load_initial_states

    frame = load_initial_states().get(0).frame
    policy = _UniformProposal(8)
    planner = make_planner("ranking", "IRASim-PushT-v0", proposal=policy, num_samples=16, horizon=8, execute=8, seed=0)
    planner.reset(seed=0)
    chunk = planner.act(frame)
    assert chunk.shape == (8, 2) and chunk.dtype == np.float32
    assert planner.chunk_size == 8 and planner.last_decision.model_calls == 1
    assert np.isfinite(planner.last_decision.score)
    planner.reset(seed=0)
    np.testing.assert_array_equal(planner.act(frame), chunk)


def test_tiny_model_with_a_goal_image_objective() -> None:
    tiny = WorldModel.from_pretrained(bundled_model_path("tiny-pusht"))
    frame = np.zeros((96, 96, 3), np.uint8)
    planner = make_planner("cem", tiny, num_samples=4, horizon=3, execute=2, seed=0, objective="goal_latent_mse",
                           goal_image=np.full((96, 96, 3), 255, np.uint8), num_inference_steps=1, iterations=2)
    assert planner.act(frame).shape == (2, 2)


def test_plan_policy_spec() -> None:
    from world_gym.policies.zoo import parse_policy_spec

    (spec,) = parse_policy_spec("planner=plan:ranking,k=4,horizon=8,execute=4,model=gym-pusht,"
                                "proposal=random+chunk_size=8")
    assert spec.name == "planner" and spec.chunk_size == 4
    policy = spec.make()
    from world_gym.envs.pusht.ground_truth import make_pusht_env

    frame, info = make_pusht_env().reset(seed=0)
    policy.reset(seed=0)
    assert policy.act(frame, info).shape == (4, 2)
    with pytest.raises(ValueError, match="must equal the horizon"):
        parse_policy_spec("plan:ranking,horizon=8,model=gym-pusht,proposal=random+chunk_size=4")
