"""Open-loop replays of recorded action sequences, keyed by the episode's start seed.

The harness resets every policy with the episode seed, and the same seed gives the same start in
the world model and in gym-pusht; a replay policy then plays the actions some policy (the scripted
expert) took from that start in the ground truth. In gym-pusht (deterministic physics) a clean
replay reproduces the recorded outcome exactly; in a world model it succeeds only if the imagined
physics follow the real ones, which makes replays a sharp fidelity probe. ``noise`` (pixels,
Gaussian, per action) degrades them into a graded family.

Replays ignore observations: they measure the simulator, not a visual policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class ActionReplayPolicy:
    """Replays ``actions[seed]`` chunk by chunk, then holds the last action.

    Args:
        actions: mapping from start seed to ``(T, action_dim)`` actions.
        chunk_size: actions returned per ``act``.
        noise: std (action units) of Gaussian noise added to every replayed action.
        low, high: action bounds to clip to.
    """

    def __init__(self, actions: dict[int, np.ndarray], chunk_size: int = 8, noise: float = 0.0,
                 low: float = 0.0, high: float = 512.0) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.actions = {int(k): np.asarray(v, np.float32) for k, v in actions.items()}
        self.chunk_size = chunk_size
        self.noise = float(noise)
        self.low, self.high = low, high
        self._sequence: np.ndarray | None = None
        self._t = 0
        self._rng = np.random.default_rng()

    @classmethod
    def from_npz(cls, path: str | Path, **kwargs: Any) -> "ActionReplayPolicy":
        """Load replays saved as ``seed_<n>`` arrays in an ``.npz`` file (see :meth:`save_npz`)."""
        with np.load(path) as data:
            return cls({int(k.split("_", 1)[1]): data[k] for k in data.files}, **kwargs)

    def save_npz(self, path: str | Path) -> None:
        """Save the recorded sequences (``seed_<n>`` arrays)."""
        np.savez_compressed(path, **{f"seed_{k}": v for k, v in self.actions.items()})

    def reset(self, seed: int | None = None) -> None:
        """Start the replay of the episode that began from ``seed`` (required)."""
        if seed is None or int(seed) not in self.actions:
            raise KeyError(f"no recorded actions for seed {seed}; have {len(self.actions)} seeds")
        self._sequence = self.actions[int(seed)]
        self._t = 0
        self._rng = np.random.default_rng(int(seed) + 7919)

    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> np.ndarray:
        """The next ``(chunk_size, action_dim)`` recorded actions (plus noise)."""
        if self._sequence is None:
            raise RuntimeError("call reset(seed) before act()")
        idx = np.minimum(np.arange(self._t, self._t + self.chunk_size), len(self._sequence) - 1)
        self._t += self.chunk_size
        chunk = self._sequence[idx].copy()
        if self.noise > 0:
            chunk += self._rng.normal(0.0, self.noise, chunk.shape).astype(np.float32)
        return np.clip(chunk, self.low, self.high).astype(np.float32)
