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
        """Check an action (chunk) and return it as float32 ``(batch or 1, chunk_size, dim)``.

        Any real numeric dtype (float or integer of any width) is accepted and cast to float32, the
        action space's dtype, before the checks; bool, complex, object and string arrays are not.

        Args:
            actions: one action (chunk), or with ``batch`` one per sub-env.
            chunk_size: actions per step (1: the shape is ``(dim,)``).
            batch: number of sub-envs, or None for a single env.

        Raises:
            ValueError: wrong shape, a non-real-numeric dtype, NaN/inf, or a value outside the
                bounds (with ``batch``, the message names the first sub-env at fault).
        """
        arr = np.asarray(actions)
        expected = (chunk_size, self.dim) if chunk_size > 1 else (self.dim,)
        if batch is not None:
            expected = (batch, *expected)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"actions must be a real numeric array (any float or integer dtype, cast to float32) "
                             f"of shape {expected}, got dtype {arr.dtype}")
        if arr.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} (chunk_size={chunk_size}, action_dim={self.dim}), got {arr.shape}"
            )
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf and is refused below
            arr = arr.astype(np.float32).reshape(batch or 1, chunk_size, self.dim)
        low, high = self.low_array, self.high_array
        problems = (~np.isfinite(arr), (arr < low) | (arr > high))
        for problem, what in zip(problems, ("be finite", f"lie within [{self.low}, {self.high}] per dimension")):
            rows = np.flatnonzero(problem.reshape(len(arr), -1).any(axis=1))
            if len(rows):
                where = f" of sub-env {rows[0]}" if batch is not None else ""
                others = f" (sub-envs at fault: {rows[:10].tolist()})" if batch is not None and len(rows) > 1 else ""
                shown = arr[rows[0]] if chunk_size > 1 else arr[rows[0], 0]
                raise ValueError(f"actions{where} must {what}, got {shown.tolist()}{others}")
        return arr

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
