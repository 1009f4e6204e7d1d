"""Batched imagination: K candidate action sequences imagined from one start in one model call.

A planner needs, for one start frame, the outcome of many action sequences. :class:`Imagination`
encodes the frame once, repeats its conditioning for ``K`` candidates and rolls all ``K x H``
actions out in one batched :meth:`~world_gym.world_model.WorldModel.rollout_latents` call, returning
the latents and, only when asked, decoded frames (all of them, or only each candidate's last).

Any other model a planner can plan with (the real simulator, a toy model in a test) implements the
same small interface, :class:`ImaginationModel`: ``start(frame, info)`` and ``imagine(start, actions,
decode)``, plus the action bounds and counters the planners report.

>>> from world_gym.assets import bundled_model_path
>>> from world_gym.world_model import WorldModel
>>> imagination = Imagination(WorldModel.from_pretrained(bundled_model_path("tiny-pusht")), num_inference_steps=2)
>>> start = imagination.start(np.zeros((96, 96, 3), np.uint8))
>>> out = imagination.imagine(start, np.full((4, 3, 2), 256.0, np.float32), decode="final")
>>> out.latents.shape[:2], out.frames.shape, imagination.calls
(torch.Size([4, 3]), (4, 1, 96, 96, 3), 1)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import numpy as np
import torch

from world_gym.validation import check_count
from world_gym.world_model import WorldModel

DECODE_MODES = ("none", "final", "all")


@dataclass
class Start:
    """Where a decision's imagination starts.

    Attributes:
        frame: the ``(H, W, 3)`` uint8 frame the planner was given.
        latent: its latent ``(C, h, w)`` (what latent objectives compare against), or None.
        payload: what the model needs to roll out from it (a world model's conditioning, a
            simulator's state).
        info: the ``info`` the planner was given (may be empty).
    """

    frame: np.ndarray
    latent: torch.Tensor | None = None
    payload: Any = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Imagined:
    """Outcome of ``K`` candidates over ``H`` actions.

    Attributes:
        latents: ``(K, H, C, h, w)``, one per action.
        frames: uint8 ``(K, T, H_f, W_f, 3)`` when decoded: ``T = H`` (``decode="all"``) or
            ``T = 1``, each candidate's last frame (``decode="final"``); None otherwise.
    """

    latents: torch.Tensor
    frames: np.ndarray | None = None


class ImaginationModel:
    """What a planner plans with. Subclasses implement :meth:`start` and :meth:`imagine`.

    Attributes:
        action_low, action_high: ``(A,)`` bounds of the env-unit actions (candidates are clipped to them).
        max_horizon: the longest action sequence :meth:`imagine` accepts (None: any).
        calls: batched model calls made so far (one per :meth:`imagine`).
        imagined_frames: frames (latents) imagined so far, summed over candidates.
    """

    action_low: np.ndarray
    action_high: np.ndarray
    max_horizon: int | None = None
    needs_state: bool = False

    def __init__(self) -> None:
        self.calls = 0
        self.imagined_frames = 0

    @property
    def action_dim(self) -> int:
        return int(len(self.action_low))

    def start(self, frame: np.ndarray, info: dict[str, Any] | None = None) -> Start:
        """Prepare a rollout from ``frame`` (and, for models that need it, the privileged state in ``info``)."""
        raise NotImplementedError

    def imagine(self, start: Start, actions: np.ndarray, decode: str = "none",
                generator: torch.Generator | None = None) -> Imagined:
        """Roll ``actions`` ``(K, H, A)`` (env units) out from ``start``, ``K`` candidates at once."""
        raise NotImplementedError

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames ``(N, H, W, 3)`` -> latents ``(N, C, h, w)`` (goal latents)."""
        raise NotImplementedError(f"{type(self).__name__} has no frame encoder")

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents ``(..., C, h, w)`` -> uint8 frames ``(..., H, W, 3)`` (videos of imagined plans)."""
        raise NotImplementedError(f"{type(self).__name__} has no frame decoder")

    def check_horizon(self, horizon: int) -> None:
        """Raise ``ValueError`` when the model cannot roll out ``horizon`` actions."""
        check_count("horizon", horizon, optional=False)
        if self.max_horizon is not None and horizon > self.max_horizon:
            raise ValueError(f"horizon {horizon} is longer than this model can roll out (max_horizon={self.max_horizon})")

    def _count(self, actions: np.ndarray) -> None:
        self.calls += 1
        self.imagined_frames += int(actions.shape[0] * actions.shape[1])


def check_decode(decode: str) -> str:
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    return decode


def check_actions(actions: Any, action_dim: int) -> np.ndarray:
    """Validate a ``(K, H, A)`` batch of finite actions; returns it as float32."""
    arr = np.asarray(actions, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] != action_dim:
        raise ValueError(f"actions must have shape (K, H, {action_dim}) with K, H >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("actions must be finite")
    return arr


class Imagination(ImaginationModel):
    """Batched imagination over a :class:`~world_gym.world_model.WorldModel`.

    Args:
        model: the world model.
        num_inference_steps, sampler: sampling overrides (default: the model's).
        ensemble: clips averaged per candidate (``SamplerConfig.ensemble``; default: the model's).
            Fewer is proportionally faster; see the planning docs for what it costs in fidelity.
        frames_per_pass: frames kept per diffusion pass (default: the model's); more frames per
            pass means fewer passes over a long horizon.
        max_horizon: the longest action sequence accepted (default: any).

    The overrides apply during this object's calls only; the model's own config is left as it was.
    """

    def __init__(self, model: WorldModel, num_inference_steps: int | None = None, sampler: str | None = None,
                 ensemble: int | None = None, frames_per_pass: int | None = None,
                 max_horizon: int | None = None) -> None:
        super().__init__()
        if not isinstance(model, WorldModel):
            raise TypeError(f"model must be a WorldModel, got {type(model).__name__}")
        for name, value in (("num_inference_steps", num_inference_steps), ("ensemble", ensemble),
                            ("frames_per_pass", frames_per_pass), ("max_horizon", max_horizon)):
            check_count(name, value)
        self.model = model.eval()
        self.num_inference_steps = num_inference_steps
        self.sampler = sampler
        self.ensemble = ensemble
        self.frames_per_pass = frames_per_pass
        self.max_horizon = max_horizon
        spec = model.action_spec
        self.action_low = np.asarray(spec.low, np.float32)
        self.action_high = np.asarray(spec.high, np.float32)
        self.frame_size: tuple[int, int] = tuple(model.config.frame_size)  # type: ignore[assignment]

    @contextlib.contextmanager
    def _overrides(self) -> Iterator[None]:
        model, saved = self.model, self.model.config
        changes: dict[str, Any] = {}
        if self.ensemble is not None:
            changes["sampler"] = replace(saved.sampler, ensemble=int(self.ensemble))
        if self.frames_per_pass is not None:
            changes["frames_per_pass"] = int(self.frames_per_pass)
        model.config = replace(saved, **changes) if changes else saved
        try:
            yield
        finally:
            model.config = saved

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        return self.model.encode(np.asarray(frames))

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        return self.model.decode(latents)

    def start(self, frame: np.ndarray, info: dict[str, Any] | None = None) -> Start:
        """Encode ``frame`` once; the conditioning is the model's start-of-episode context (one
        frame, no known action), as after ``reset(options={"initial_frame": frame})``."""
        expected = (*self.frame_size, 3)
        arr = np.asarray(frame)
        if arr.dtype != np.uint8 or arr.shape != expected:
            raise ValueError(f"frame must be a uint8 array of shape {expected}, got {arr.dtype} {arr.shape}")
        with torch.no_grad():
            latent = self.model.encode(arr[None])
        context = self.model.initial_context(latent)
        return Start(frame=arr, latent=latent[0], payload=context, info=dict(info or {}))

    @torch.no_grad()
    def imagine(self, start: Start, actions: np.ndarray, decode: str = "none",
                generator: torch.Generator | None = None) -> Imagined:
        """One batched rollout of ``K`` candidates.

        Args:
            start: from :meth:`start`.
            actions: ``(K, H, A)`` env-unit actions.
            decode: ``"none"``, ``"final"`` (each candidate's last frame) or ``"all"``.
            generator: the diffusion noise (CPU generator).

        Returns:
            the latents ``(K, H, C, h, w)`` and the frames asked for.
        """
        acts = check_actions(actions, self.action_dim)
        check_decode(decode)
        self.check_horizon(acts.shape[1])
        k = acts.shape[0]
        context, context_actions, context_mask = start.payload
        expand = lambda t: t.expand(k, *t.shape[1:]).contiguous()  # noqa: E731
        with self._overrides():
            latents = self.model.rollout_latents(
                expand(context), expand(context_actions), expand(context_mask), self.model.normalize_actions(acts),
                generator, self.num_inference_steps, self.sampler,
            )
        self._count(acts)
        frames = None
        if decode == "all":
            frames = self.model.decode(latents)
        elif decode == "final":
            frames = self.model.decode(latents[:, -1:])
        return Imagined(latents=latents, frames=frames)
