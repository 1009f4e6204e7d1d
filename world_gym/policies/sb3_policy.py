"""Adapter: a stable-baselines3 model (PPO, SAC, ...) as a world-gym policy.

SB3 models act through ``model.predict(observation, state, episode_start, deterministic)``;
recurrent ones (sb3-contrib's RecurrentPPO) carry an LSTM state, which this adapter keeps between
calls and clears on ``reset``. Observations go in as the env returns them (SB3 transposes images
itself); ``action_shape`` reshapes flat actions, e.g. ``(chunk, 2)`` for a model trained on a
flattened chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class SB3Policy:
    """A stable-baselines3 model behind :class:`world_gym.policies.base.Policy`.

    Args:
        model: a trained ``stable_baselines3.common.base_class.BaseAlgorithm``.
        deterministic: take the mode of the action distribution (the usual choice in evaluation).
        action_shape: reshape each action to this shape (None keeps the model's).
    """

    def __init__(self, model: Any, deterministic: bool = True, action_shape: tuple[int, ...] | None = None) -> None:
        self.model = model
        self.deterministic = deterministic
        self.action_shape = action_shape
        shape = action_shape or getattr(model.action_space, "shape", None) or ()
        self.chunk_size = shape[0] if len(shape) == 2 else None
        self.reset()

    @classmethod
    def load(cls, path: str | Path, algorithm: str = "PPO", device: str = "cpu", **kwargs: Any) -> "SB3Policy":
        """Load a model saved with ``model.save(path)``.

        Args:
            path: the ``.zip`` file.
            algorithm: class name in ``stable_baselines3`` (``PPO``, ``SAC``, ``TD3``, ...).
            device: where the model runs.
            **kwargs: as for the constructor.
        """
        import stable_baselines3

        algo = getattr(stable_baselines3, algorithm)
        return cls(algo.load(str(path), device=device), **kwargs)

    def reset(self, seed: int | None = None) -> None:
        """Forget the recurrent state; ``seed`` seeds the model's sampling (when not deterministic)."""
        self._state: Any = None
        self._episode_start = np.ones((1,), dtype=bool)
        if seed is not None:
            self.model.set_random_seed(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """The model's action for one observation."""
        action, self._state = self.model.predict(
            observation, state=self._state, episode_start=self._episode_start, deterministic=self.deterministic
        )
        self._episode_start = np.zeros((1,), dtype=bool)
        action = np.asarray(action, np.float32)
        return action.reshape(self.action_shape) if self.action_shape else action
