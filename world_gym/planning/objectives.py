"""What a planner maximises: scores of imagined candidates, per imagined step.

An :class:`Objective` scores the steps it is given, ``(K, T)``, from their latents and, when it
says it needs them (``needs_frames``), their decoded frames; the planner reduces the scores over
the horizon (``"final"``, ``"sum"`` or ``"max"``) and, for ``"final"``, hands over only each
candidate's last step, so a frame objective decodes ``K`` frames, not ``K x H``.

Generic objectives live here: any reward head (:class:`RewardHeadObjective`), a goal image in pixel
or latent space (:class:`GoalImageObjective`), any function of the latents
(:class:`LatentObjective`). Task objectives live with their task (Push-T's coverage read off pose
latents: :mod:`world_gym.reward_models.pusht_latent_coverage`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from world_gym.planning.imagination import ImaginationModel, Start
from world_gym.reward_models import RewardContext, RewardHead, make_reward_head


class Objective:
    """Scores imagined steps; higher is better.

    Attributes:
        name: shown in reports.
        needs_frames: True when :meth:`score` reads decoded frames (else only latents are passed).
    """

    name: str = "objective"
    needs_frames: bool = False

    def check(self, model: ImaginationModel) -> None:
        """Raise ``ValueError`` when this objective cannot score what ``model`` imagines."""

    def score(self, latents: torch.Tensor, frames: np.ndarray | None, start: Start,
              model: ImaginationModel) -> np.ndarray:
        """Scores ``(K, T)`` of the steps given: ``latents`` ``(K, T, C, h, w)``, ``frames`` ``(K, T, H, W, 3)``
        uint8 (only when :attr:`needs_frames`)."""
        raise NotImplementedError


class LatentObjective(Objective):
    """Any function ``latents (K, T, C, h, w) -> scores (K, T)`` as an objective (no decoding).

    >>> objective = LatentObjective(lambda z: -z.flatten(2).norm(dim=-1))
    >>> objective.score(torch.zeros(2, 3, 1, 1, 1), None, None, None).shape
    (2, 3)
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor | np.ndarray], name: str = "latent") -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name

    def score(self, latents: torch.Tensor, frames: np.ndarray | None, start: Start,
              model: ImaginationModel) -> np.ndarray:
        out = self.fn(latents)
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


class RewardHeadObjective(Objective):
    """A reward head's per-frame reward on decoded frames (any registered head, or an instance).

    The head sees the context an env would give it: the start frame as the previous frame, the goal
    image (``goal_image`` here, else ``info["goal_image"]`` at ``act``), the task text and the model's
    encoder.

    Args:
        head: a :class:`~world_gym.reward_models.RewardHead` or a registered name.
        task: instruction text for heads that read one.
        goal_image: a fixed goal image ``(H, W, 3)`` uint8.
        **head_kwargs: arguments of a named head.
    """

    needs_frames = True

    def __init__(self, head: RewardHead | str, task: str | None = None, goal_image: np.ndarray | None = None,
                 **head_kwargs: Any) -> None:
        self.head = make_reward_head(head, **head_kwargs)
        self.name = f"reward_head:{self.head.name}"
        self.task = task
        self.goal_image = None if goal_image is None else np.asarray(goal_image, np.uint8)

    def score(self, latents: torch.Tensor, frames: np.ndarray | None, start: Start,
              model: ImaginationModel) -> np.ndarray:
        if frames is None:
            raise ValueError(f"objective {self.name!r} scores frames, but none were decoded")
        k = frames.shape[0]
        goal = self.goal_image if self.goal_image is not None else start.info.get("goal_image")
        context = RewardContext(
            previous_frames=np.broadcast_to(start.frame, (k, *start.frame.shape)),
            goal_images=None if goal is None else np.broadcast_to(np.asarray(goal, np.uint8), (k, *start.frame.shape)),
            task=[self.task] * k if self.task is not None else None,
            encode=getattr(model, "encode", None),
        )
        return np.asarray(self.head(frames, context).reward, np.float64)


class GoalImageObjective(Objective):
    """Closeness to a goal image: ``-MSE`` of latents (``space="latent"``, no decoding) or of
    decoded pixels in ``[0, 1]`` (``space="pixels"``).

    Args:
        goal_image: ``(H, W, 3)`` uint8; None reads ``info["goal_image"]`` at each decision.
        space: ``"latent"`` or ``"pixels"``.
    """

    def __init__(self, goal_image: np.ndarray | None = None, space: str = "latent") -> None:
        if space not in ("latent", "pixels"):
            raise ValueError(f"space must be 'latent' or 'pixels', got {space!r}")
        self.goal_image = None if goal_image is None else np.asarray(goal_image)
        if self.goal_image is not None and (self.goal_image.dtype != np.uint8 or self.goal_image.ndim != 3):
            raise ValueError(f"goal_image must be a uint8 (H, W, 3) array, got {self.goal_image.dtype} "
                             f"{self.goal_image.shape}")
        self.space = space
        self.needs_frames = space == "pixels"
        self.name = f"goal_{space}_mse"
        self._cache: tuple[bytes, torch.Tensor] | None = None

    def check(self, model: ImaginationModel) -> None:
        if self.space == "latent" and type(model).encode is ImaginationModel.encode:
            raise ValueError(f"objective {self.name!r} needs a model with a frame encoder; "
                             f"{type(model).__name__} has none (use space='pixels')")

    def _goal(self, start: Start) -> np.ndarray:
        goal = self.goal_image if self.goal_image is not None else start.info.get("goal_image")
        if goal is None:
            raise ValueError(f"objective {self.name!r} needs a goal image: GoalImageObjective(goal_image=...) "
                             "or info['goal_image'] at act()")
        goal = np.asarray(goal)
        if goal.shape != start.frame.shape or goal.dtype != np.uint8:
            raise ValueError(f"goal image must be uint8 {start.frame.shape}, got {goal.dtype} {goal.shape}")
        return goal

    def score(self, latents: torch.Tensor, frames: np.ndarray | None, start: Start,
              model: ImaginationModel) -> np.ndarray:
        goal = self._goal(start)
        if self.space == "pixels":
            if frames is None:
                raise ValueError(f"objective {self.name!r} scores frames, but none were decoded")
            diff = frames.astype(np.float32) / 255.0 - goal.astype(np.float32) / 255.0
            return -np.mean(diff * diff, axis=(2, 3, 4), dtype=np.float64)
        key = goal.tobytes()
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, model.encode(goal[None])[0].float().cpu())
        z = latents.float().cpu()
        return -((z - self._cache[1]) ** 2).flatten(2).mean(-1).double().numpy()
