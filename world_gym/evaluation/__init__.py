"""Policy evaluation in world models against their ground truth (``world-gym evaluate``).

- :mod:`~world_gym.evaluation.metrics`: Clopper-Pearson and bootstrap intervals, Pearson,
  Spearman, MMRV.
- :mod:`~world_gym.evaluation.rollouts`: vectorized episodes from given start seeds.
- :mod:`~world_gym.evaluation.harness`: both sides per policy, cached results, comparison.
- :mod:`~world_gym.evaluation.report`: markdown report, scatter plot, side-by-side videos.
LeRobot's ``lerobot-eval`` inside a world model: :mod:`world_gym.lerobot_env`.
"""

from world_gym.evaluation.harness import EvaluationConfig, compare, evaluate_policies, summarize_episodes
from world_gym.evaluation.metrics import bootstrap_ci, clopper_pearson, mmrv, pearson, spearman

__all__ = [
    "EvaluationConfig",
    "bootstrap_ci",
    "clopper_pearson",
    "compare",
    "evaluate_policies",
    "mmrv",
    "pearson",
    "spearman",
    "summarize_episodes",
]
