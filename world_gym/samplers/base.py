"""The sampler protocol: how a world model turns context and actions into new latent frames.

A backbone only predicts; a :class:`Sampler` is the rollout strategy around it. Samplers are found
by name in :data:`SAMPLERS` (``SamplerConfig.name``, or ``sampler=`` of ``gym.make`` and
:meth:`~world_gym.world_model.WorldModel.rollout`); packages add more through the
``world_gym.samplers`` entry-point group. A factory is called as ``factory(schedule, options)``
with the model's training :class:`NoiseSchedule` and the config's sampler options.

Two shapes of sampler exist:

- a :class:`ClipSampler` generates one clip at a time (``sample_clip``) and chains clips in latent
  space, each conditioned on the last ``history`` frames: the diffusers schedulers
  (:mod:`world_gym.samplers.diffusion`); a consistency sampler (one or two denoiser calls per
  clip) or a masked-autoregressive decoder (tokens of a clip unmasked over a few passes) is a
  ``ClipSampler`` with its own ``sample_clip``.
- a backbone with its own recurrent ``rollout`` (a deterministic next-frame model) is run by the
  ``"deterministic"`` sampler (:mod:`world_gym.samplers.deterministic`), which any number of
  actions runs in one call. Such a backbone names it in its ``sampler`` attribute.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from world_gym.registry import Registry

Generators = torch.Generator | list[torch.Generator] | None


@dataclass
class NoiseSchedule:
    """The forward process the backbone was trained with (IRASim: 1000 steps, linear 1e-4..0.02)."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClipPlan:
    """How a rollout is cut into clips (from the world model's config).

    Attributes:
        history: clean conditioning frames per clip.
        frames_per_pass: new frames kept from each clip.
        max_new_frames: new frames one clip of the backbone holds (its ``num_frames - history``).
        clip_padding: None, ``"zeros"`` or ``"repeat_last"`` (see ``WorldModelConfig.clip_padding``).
        ensemble: each clip is the mean of this many samples.
    """

    history: int
    frames_per_pass: int
    max_new_frames: int
    clip_padding: str | None = None
    ensemble: int = 1


class Sampler(ABC):
    """Rolls a backbone out: latents of the frames that ``actions`` produce after a context."""

    #: the registry name (set by each implementation)
    name: str = "sampler"

    def problem(self, backbone: nn.Module, steps: int) -> str | None:
        """Why this sampler cannot sample ``backbone`` with ``steps`` steps; None if it can (cheap:
        no backbone call)."""
        return None

    @abstractmethod
    def rollout(
        self,
        backbone: nn.Module,
        context: torch.Tensor,
        context_actions: torch.Tensor,
        context_mask: torch.Tensor,
        actions: torch.Tensor,
        plan: ClipPlan,
        steps: int,
        generator: Generators = None,
    ) -> torch.Tensor:
        """Generate one latent frame per action.

        Args:
            backbone: the dynamics network.
            context: ``(B, h, C, h_l, w_l)`` conditioning latents.
            context_actions: ``(B, h, A)`` normalised actions of the context frames.
            context_mask: ``(B, h)`` bool, which context frames have a known action.
            actions: ``(B, L, A)`` normalised actions, ``L >= 1``.
            plan: how the rollout is cut into clips.
            steps: denoising steps per clip (samplers without steps ignore it).
            generator: CPU generator for the noise, or one per batch element.

        Returns:
            ``(B, L, C, h_l, w_l)`` latents.
        """


class ClipSampler(Sampler):
    """A sampler that generates a clip at a time and chains clips in latent space.

    Each pass takes ``plan.frames_per_pass`` actions (padded to a whole clip when
    ``plan.clip_padding`` says so), lets the backbone move the clip into its own coordinates
    (``to_clip_frame`` / ``from_clip_frame``, when it has them), samples ``plan.ensemble`` clips per
    batch element and keeps their mean; the last ``history`` frames condition the next pass.
    Subclasses implement :meth:`sample_clip`.
    """

    @abstractmethod
    def sample_clip(
        self,
        backbone: nn.Module,
        context: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        steps: int,
        generator: Generators = None,
    ) -> torch.Tensor:
        """The frames after ``context`` ``(B, h, C, H, W)`` in one clip of actions ``(B, T, A)``
        (``action_mask`` ``(B, T)``): ``(B, T - h, C, H, W)``."""

    def rollout(
        self,
        backbone: nn.Module,
        context: torch.Tensor,
        context_actions: torch.Tensor,
        context_mask: torch.Tensor,
        actions: torch.Tensor,
        plan: ClipPlan,
        steps: int,
        generator: Generators = None,
    ) -> torch.Tensor:
        h = plan.history
        b, n_actions = actions.shape[:2]
        ones = torch.ones(b, 1, dtype=torch.bool, device=context.device)
        # each clip the mean of k samples; an env's k noises come from its own generator
        k = plan.ensemble
        generators = [g for g in generator for _ in range(k)] if isinstance(generator, list) else generator
        # a backbone may work on each clip in its own coordinates (IRASim's pose_frame)
        to_frame = getattr(backbone, "to_clip_frame", lambda z, a: (z, a, None))
        from_frame = getattr(backbone, "from_clip_frame", lambda z, frame: z)
        outputs = []
        for start in range(0, n_actions, plan.frames_per_pass):
            chunk = actions[:, start : start + plan.frames_per_pass]
            n_new = chunk.shape[1]
            clip_actions = torch.cat([context_actions, pad_chunk(chunk, plan)], dim=1)
            clip_mask = torch.cat([context_mask, ones.expand(b, clip_actions.shape[1] - h)], dim=1)
            clip_mask[:, 0] = False
            frame_context, frame_actions, frame = to_frame(context, clip_actions)
            new = self.sample_clip(
                backbone, frame_context.repeat_interleave(k, 0), frame_actions.repeat_interleave(k, 0),
                clip_mask.repeat_interleave(k, 0), steps, generators,
            )[:, :n_new]
            new = from_frame(new.reshape(b, k, *new.shape[1:]).mean(dim=1), frame)
            outputs.append(new)
            context = torch.cat([context, new], dim=1)[:, -h:]
            context_actions = clip_actions[:, : h + n_new][:, -h:]
            context_mask = clip_mask[:, : h + n_new][:, -h:]
        return torch.cat(outputs, dim=1)


def pad_chunk(chunk: torch.Tensor, plan: ClipPlan) -> torch.Tensor:
    """Fill a short chunk of actions ``(B, n, A)`` up to a whole clip when the plan asks for fixed-length clips.

    Models trained only on full clips (the released IRASim weights) see a short clip as out of
    distribution; they get the full clip with filler actions instead, and only the frames of the
    real actions are kept. Note that temporal attention lets the filler frames influence them.
    """
    mode, missing = plan.clip_padding, plan.max_new_frames - chunk.shape[1]
    if mode is None or missing == 0:
        return chunk
    filler = torch.zeros_like(chunk[:, :1]) if mode == "zeros" else chunk[:, -1:]
    return torch.cat([chunk, filler.expand(-1, missing, -1)], dim=1)


SamplerFactory = Callable[[NoiseSchedule, "dict[str, Any] | None"], Sampler]
#: Samplers by name: registered ones and the entry points of the ``world_gym.samplers`` group.
SAMPLERS: Registry[SamplerFactory] = Registry("sampler", "world_gym.samplers")


def register_sampler(name: str, factory: SamplerFactory) -> None:
    """Make ``name`` a sampler: ``factory(schedule, options) -> Sampler``."""
    SAMPLERS.register(name, factory)


def make_sampler(name: str, schedule: NoiseSchedule, options: dict[str, Any] | None = None) -> Sampler:
    """The sampler ``name`` for a model trained with ``schedule``.

    Raises:
        ValueError: no sampler of that name (the message lists the known ones).
    """
    return SAMPLERS.get(name)(schedule, options)


@dataclass
class SamplerConfig:
    """Which sampler rolls a model out, with how many steps and extra options.

    ``ensemble``: every clip is the mean of this many samples (one: a sample). A simulator like
    gym-pusht is deterministic, so the mean of what the model deems possible is the better
    prediction, by as much as the samples spread; it suits latents whose mean is itself a frame,
    such as pose tokens, and blurs pixel latents.
    """

    name: str = "ddim"
    num_inference_steps: int = 50
    options: dict[str, Any] | None = None
    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; choose one of {SAMPLERS.names()}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
