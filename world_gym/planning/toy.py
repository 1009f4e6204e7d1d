"""A toy deterministic model with a known optimum, for tests and for trying a planner in milliseconds.

:class:`PointMass`: the latent is a point in the plane, each action ``(dx, dy)`` in ``[-1, 1]^2``
moves it by that much, and :meth:`PointMass.objective` scores minus the distance to ``goal``. From
the origin, any plan whose steps add up to ``goal`` is optimal (score 0) when
``max(|goal|) <= horizon``.

>>> import numpy as np
>>> model = PointMass(goal=(2.0, 0.0))
>>> out = model.imagine(model.start(np.zeros((8, 8, 3), np.uint8)), np.ones((1, 2, 2), np.float32))
>>> out.latents[0, :, :, 0, 0].tolist()
[[1.0, 1.0], [2.0, 2.0]]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from world_gym.planning.imagination import ImaginationModel, Imagined, Start, check_actions, check_decode
from world_gym.planning.objectives import LatentObjective


class PointMass(ImaginationModel):
    """A point moved by its actions; frames are blank ``(8, 8, 3)`` images (the toy has no pixels).

    Args:
        goal: where the objective is best.
        origin: the start point (``info["position"]`` at ``act`` overrides it).
        max_horizon: the longest sequence it accepts.
    """

    def __init__(self, goal: Sequence[float] = (3.0, -1.0), origin: Sequence[float] = (0.0, 0.0),
                 max_horizon: int | None = 64) -> None:
        super().__init__()
        self.goal = torch.tensor(goal, dtype=torch.float64)
        self.origin = np.asarray(origin, np.float64)
        self.action_low = np.full(2, -1.0, np.float32)
        self.action_high = np.full(2, 1.0, np.float32)
        self.max_horizon = max_horizon

    def start(self, frame: np.ndarray, info: dict[str, Any] | None = None) -> Start:
        info = dict(info or {})
        position = torch.as_tensor(np.asarray(info.get("position", self.origin), np.float64))
        return Start(frame=np.asarray(frame), latent=position[:, None, None], payload=position, info=info)

    def imagine(self, start: Start, actions: np.ndarray, decode: str = "none",
                generator: torch.Generator | None = None) -> Imagined:
        acts = check_actions(actions, 2)
        check_decode(decode)
        self.check_horizon(acts.shape[1])
        path = start.payload[None, None] + torch.cumsum(torch.as_tensor(acts, dtype=torch.float64), dim=1)
        self._count(acts)
        frames = None
        if decode != "none":
            frames = np.zeros((len(acts), acts.shape[1] if decode == "all" else 1, 8, 8, 3), np.uint8)
        return Imagined(latents=path[..., None, None], frames=frames)

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        return torch.zeros(len(frames), 2, 1, 1, dtype=torch.float64)

    def objective(self) -> LatentObjective:
        """Minus the distance to ``goal`` at every step."""
        goal = self.goal
        return LatentObjective(lambda z: -(z[..., 0, 0] - goal).norm(dim=-1), name="point_mass_distance")


class PointMassProposal:
    """Uniform random steps in ``[-1, 1]^2``: a stochastic proposal for :class:`PointMass`."""

    def __init__(self, horizon: int = 4) -> None:
        self.horizon = horizon
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.horizon, 2)).astype(np.float32)
