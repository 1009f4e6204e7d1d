"""Learning in the world model: synthetic demonstrations and DAgger, graded in the real simulator.

- :mod:`world_gym.learning.demos`: roll any policy out in a world model or the real simulator
  (:func:`roll_out`), turn episodes into behaviour-cloning samples (:func:`demonstrations`) or into
  an expert's labels of the frames visited (:func:`relabel`), kept as :class:`Demonstrations`;
  :func:`from_dataset` reads the same samples from a stored LeRobotDataset (what ``world-gym
  generate`` wrote, checked whole first).
- :mod:`world_gym.learning.dagger`: :func:`run_dagger`, with checkpoints and resume.
- :func:`make_backend`: the envs to roll out in, by world-model env id (its vector env, one
  batched model call per chunk) or the env family's real simulator.

``world-gym generate`` writes what a policy does in a world model as a LeRobotDataset; this
package is the in-memory side of the same loop.
"""

from __future__ import annotations

from typing import Any

from world_gym.learning.dagger import DAggerConfig, DAggerResult, run_dagger
from world_gym.learning.demos import (Demonstrations, Episode, Learner, demonstrations, episode_summary, from_dataset,
                                     relabel, roll_out)

__all__ = ["DAggerConfig", "DAggerResult", "Demonstrations", "Episode", "Learner", "demonstrations",
           "episode_summary", "from_dataset", "make_backend", "relabel", "roll_out", "run_dagger"]


def make_backend(env_id: str, num_envs: int, chunk_size: int, real: bool = False, max_episode_frames: int = 300,
                 env_kwargs: dict[str, Any] | None = None) -> Any:
    """Envs to roll policies out in, stepped a chunk at a time.

    Args:
        env_id: a registered world-model env id (e.g. ``IRASim-PushT-v0``).
        num_envs: episodes run at once.
        chunk_size: actions per step.
        real: the env family's real simulator (gym-pusht for Push-T) instead of the world model.
        max_episode_frames: episode limit in actions.
        env_kwargs: further world-model ``gym.make_vec`` arguments (``model``, ``device``, ...).

    Returns:
        A backend of :mod:`world_gym.evaluation.rollouts` (``reset`` by seed, ``step`` by chunk).
    """
    from world_gym.evaluation.harness import EvaluationConfig, Evaluator

    config = EvaluationConfig(env_id=env_id, num_envs=num_envs, max_episode_frames=max_episode_frames,
                              env_kwargs=dict(env_kwargs or {}))
    if real and not config.resolved_ground_truth_id():
        raise ValueError(f"{env_id} has no real simulator to roll out in")
    return Evaluator(config, progress=False).backend("ground_truth" if real else "world_model", chunk_size)
