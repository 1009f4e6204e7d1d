"""The policy protocol: what the evaluation harness, the examples and data collection call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces


@runtime_checkable
class Policy(Protocol):
    """Anything that acts from an observation.

    ``act`` returns one action ``(action_dim,)`` or an action chunk ``(chunk, action_dim)``; the
    caller checks it against the env's action space. ``info`` is the env's last info dict, which
    ground-truth envs fill with privileged state (scripted experts read it; image policies ignore it).
    A policy that acts in chunks says so with an integer attribute ``chunk_size``; the evaluation
    harness then steps the envs ``chunk_size`` actions at a time (one world-model pass per chunk).
    """

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode so far; ``seed`` makes a stochastic policy repeatable."""

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """The action (or chunk) to take now."""


class RandomPolicy:
    """Uniform samples from an action space, seeded at reset.

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> policy = RandomPolicy(spaces.Box(0, 512, (4, 2), np.float32))
    >>> policy.reset(seed=0)
    >>> policy.act(None).shape
    (4, 2)
    """

    def __init__(self, action_space: spaces.Space) -> None:
        self.action_space = action_space

    def reset(self, seed: int | None = None) -> None:
        self.action_space.seed(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        return np.asarray(self.action_space.sample())


@dataclass
class PolicySpec:
    """A named way to build policies, one per env of a vectorized evaluation.

    Attributes:
        name: the policy's name in reports (also its cache key: keep it unique and stable).
        make: builds a fresh policy; called once per sub-env (share heavy weights inside it).
        chunk_size: actions per ``act`` (the env steps this many at a time).
        description: one line for reports.
        fingerprint: anything that changes the policy's behaviour (checkpoint path, noise level);
            a cached result with another fingerprint is recomputed.
    """

    name: str
    make: Callable[[], Policy]
    chunk_size: int = 1
    description: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
