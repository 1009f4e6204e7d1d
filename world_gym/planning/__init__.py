"""Model-based planning: planners that are policies, imagining their candidates in a world model.

>>> from world_gym.planning import make_planner  # doctest: +SKIP
>>> planner = make_planner("ranking", "IRASim-PushT-v0", proposal=policy, num_samples=16, horizon=8,
...                        execute=8, seed=0)  # doctest: +SKIP
>>> planner.reset(seed=0)  # doctest: +SKIP
>>> chunk = planner.act(frame)  # (8, 2) float32 targets  # doctest: +SKIP

* :class:`Imagination`: ``K`` candidates imagined from one frame in one batched world-model call.
* :class:`RankingPlanner`, :class:`CEMPlanner` (iCEM), :class:`MPPIPlanner`: receding-horizon
  planners following the :class:`~world_gym.policies.base.Policy` protocol.
* Objectives: :class:`RewardHeadObjective`, :class:`GoalImageObjective`, :class:`LatentObjective`;
  task objectives live with their task (Push-T:
  :class:`~world_gym.reward_models.pusht_latent_coverage.PushTLatentCoverage`).
* The real simulator as the model: ``make_planner(kind, "gym-pusht", ...)``, then
  ``planner.act(frame, info)`` with gym-pusht's ``info`` (it carries the true state).
"""

from world_gym.planning.factory import PLANNERS, make_planner, resolve_model, resolve_objective
from world_gym.planning.imagination import Imagination, ImaginationModel, Imagined, Start
from world_gym.planning.objectives import GoalImageObjective, LatentObjective, Objective, RewardHeadObjective
from world_gym.planning.planners import (
    CEMPlanner,
    Decision,
    MPPIPlanner,
    Planner,
    PlannerStats,
    RankingPlanner,
    colored_noise,
)

__all__ = [
    "PLANNERS",
    "CEMPlanner",
    "Decision",
    "GoalImageObjective",
    "Imagination",
    "ImaginationModel",
    "Imagined",
    "LatentObjective",
    "MPPIPlanner",
    "Objective",
    "Planner",
    "PlannerStats",
    "RankingPlanner",
    "Start",
    "colored_noise",
    "make_planner",
    "resolve_model",
    "resolve_objective",
]
