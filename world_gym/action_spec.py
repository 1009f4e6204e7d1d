"""Action conventions of a world model: bounds, scaling to the backbone's units, validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces


@dataclass
class ActionSpec:
    """What one action is, in the env's units, and how the backbone sees it.

    The backbone receives ``(action - offset) * scale``. Push-T: absolute targets in
    ``[0, 512]^2`` with ``offset=256, scale=1/256``; Language-Table: deltas with ``scale=20``.

    Attributes:
        dim: action width.
        low, high: per-dimension bounds in env units (``-inf``/``inf`` allowed).
        scale, offset: per-dimension normalisation, scalars or lists of length ``dim``.
        names: optional names of the dimensions, for docs and errors.
    """

    dim: int
    low: list[float]
    high: list[float]
    scale: list[float] | float = 1.0
    offset: list[float] | float = 0.0
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.low = [float(v) for v in np.broadcast_to(np.asarray(self.low, dtype=np.float64), (self.dim,))]
        self.high = [float(v) for v in np.broadcast_to(np.asarray(self.high, dtype=np.float64), (self.dim,))]
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"action low {self.low} exceeds high {self.high}")

    @property
    def low_array(self) -> np.ndarray:
        return np.asarray(self.low, dtype=np.float32)

    @property
    def high_array(self) -> np.ndarray:
        return np.asarray(self.high, dtype=np.float32)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Env units -> backbone units, float32, any leading shape."""
        scale = np.asarray(self.scale, dtype=np.float64)
        offset = np.asarray(self.offset, dtype=np.float64)
        return ((np.asarray(actions, dtype=np.float64) - offset) * scale).astype(np.float32)

    def space(self, chunk_size: int) -> spaces.Box:
        """The Gymnasium action space: ``(dim,)`` for ``chunk_size == 1``, else ``(chunk_size, dim)``."""
        low, high = self.low_array, self.high_array
        if chunk_size > 1:
            low, high = np.tile(low, (chunk_size, 1)), np.tile(high, (chunk_size, 1))
        return spaces.Box(low=low, high=high, dtype=np.float32)

    def validate(self, actions: Any, chunk_size: int, batch: int | None = None) -> np.ndarray:
        """Check an action (chunk) and return it as float64 ``(batch or 1, chunk_size, dim)``.

        Raises:
            ValueError: wrong shape, non-numeric dtype, NaN/inf, or a value outside the bounds.
        """
        arr = np.asarray(actions)
        expected = (chunk_size, self.dim) if chunk_size > 1 else (self.dim,)
        if batch is not None:
            expected = (batch, *expected)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"actions must be a float (or integer) array of shape {expected}, got dtype {arr.dtype}")
        if arr.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} (chunk_size={chunk_size}, action_dim={self.dim}), got {arr.shape}"
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"actions must be finite, got {arr.tolist()}")
        low, high = np.asarray(self.low), np.asarray(self.high)
        if np.any(arr < low) or np.any(arr > high):
            raise ValueError(f"actions must lie within [{self.low}, {self.high}] per dimension, got {arr.tolist()}")
        return arr.reshape(batch or 1, chunk_size, self.dim)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "low": self.low,
            "high": self.high,
            "scale": self.scale,
            "offset": self.offset,
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ActionSpec":
        return cls(**d)
