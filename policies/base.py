"""The policy protocol: what the evaluation harness, the examples and data collection call."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces


@runtime_checkable
class Policy(Protocol):
    """Anything that acts from an observation.

    ``act`` returns one action ``(action_dim,)`` or an action chunk ``(chunk, action_dim)``; the
    caller checks it against the env's action space. ``info`` is the env's last info dict, which
    ground-truth envs fill with privileged state (scripted experts read it; image policies ignore it).
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
