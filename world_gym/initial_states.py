"""Initial-state sources: where an imagined episode's first frame comes from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class InitialState:
    """A start frame ``(H, W, 3)`` uint8 and what is known about it (seed, privileged state, goal)."""

    frame: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class InitialStateSource(ABC):
    """An indexed collection of start states; ``reset`` draws from it with the env's ``np_random``."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of episodes :meth:`sample` draws from."""

    @abstractmethod
    def get(self, episode: int) -> InitialState:
        """The start state of ``episode``."""

    def sample(self, rng: np.random.Generator) -> tuple[int, InitialState]:
        """A uniformly drawn episode index and its state."""
        episode = int(rng.integers(len(self)))
        return episode, self.get(episode)


class FrameBank(InitialStateSource):
    """Start frames held in memory, optionally with per-frame arrays of extra info.

    Args:
        frames: ``(N, H, W, 3)`` uint8.
        extras: arrays with leading dimension ``N`` (e.g. ``seed``, ``block_pose``), copied into
            ``InitialState.info``.

    >>> bank = FrameBank(np.zeros((3, 8, 8, 3), np.uint8), {"seed": np.arange(3)})
    >>> bank.get(2).info["seed"]
    2
    """

    def __init__(self, frames: np.ndarray, extras: dict[str, np.ndarray] | None = None) -> None:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.shape} {frames.dtype}")
        self.frames = frames
        self.extras = dict(extras or {})
        for key, value in self.extras.items():
            if len(value) != len(frames):
                raise ValueError(f"extra {key!r} has {len(value)} entries for {len(frames)} frames")

    @classmethod
    def from_npz(cls, path: str | Path) -> "FrameBank":
        """Load ``frames`` and any other arrays from an ``.npz`` file."""
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(arrays.pop("frames"), arrays)

    def save_npz(self, path: str | Path) -> None:
        np.savez_compressed(path, frames=self.frames, **self.extras)

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, episode: int) -> InitialState:
        if not 0 <= episode < len(self):
            raise IndexError(f"episode {episode} out of range: this source has {len(self)} episodes")
        info = {k: v[episode].item() if v[episode].ndim == 0 else v[episode].copy() for k, v in self.extras.items()}
        return InitialState(self.frames[episode].copy(), info)
