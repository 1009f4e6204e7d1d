"""Diffusion over latent clips: noise schedule, diffusers samplers, and the training loss.

The conditioning (history) frames stay clean: during training they are neither noised nor in the
loss, and during sampling the clean latents are written back after every scheduler step, as IRASim
does. Samplers are diffusers schedulers picked by name; the number of steps is a runtime option.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Only schedulers whose model input is the noisy sample itself (``scale_model_input`` is the
# identity), so that clean conditioning latents can sit beside noisy ones in one tensor.
SAMPLERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "dpm_solver": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "deis": DEISMultistepScheduler,
}
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "pndm": {"skip_prk_steps": True},
    "dpm_solver": {"algorithm_type": "dpmsolver++", "solver_order": 2},
    "ddim": {"clip_sample": False, "set_alpha_to_one": False},
    "ddpm": {"clip_sample": False},
}

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


@dataclass
class SamplerConfig:
    """Which diffusers scheduler samples, with how many steps and extra scheduler options.

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
            raise ValueError(f"unknown sampler {self.name!r}; choose one of {sorted(SAMPLERS)}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_scheduler(schedule: NoiseSchedule, name: str, options: dict[str, Any] | None = None) -> SchedulerMixin:
    """A fresh diffusers scheduler of kind ``name`` over ``schedule`` (schedulers keep state: one per clip)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    kwargs = {**schedule.to_dict(), **SAMPLER_DEFAULTS.get(name, {}), **(options or {})}
    return SAMPLERS[name](**kwargs)


def _step_kwargs(
    scheduler: SchedulerMixin, generator: torch.Generator | list[torch.Generator] | None
) -> dict[str, Any]:
    params = inspect.signature(scheduler.step).parameters
    return {"generator": generator} if "generator" in params and generator is not None else {}


@torch.no_grad()
def sample_clip(
    denoiser: Denoiser,
    context: torch.Tensor,
    actions: torch.Tensor,
    action_mask: torch.Tensor,
    scheduler: SchedulerMixin,
    num_inference_steps: int,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Generate the frames after ``context`` in one diffusion pass.

    Args:
        denoiser: ``(x, t, actions, action_mask) -> epsilon`` over whole clips.
        context: ``(B, h, C, H, W)`` clean conditioning latents.
        actions: ``(B, T, A)`` normalised actions of the whole clip (``T > h``).
        action_mask: ``(B, T)`` bool; False for frames without an action.
        scheduler: a fresh scheduler from :func:`make_scheduler`.
        num_inference_steps: denoising steps.
        generator: CPU generator for the initial noise (and stochastic samplers): same seed, same
            clip. A list gives each batch element its own generator, so that an env's frames do not
            depend on which other envs step beside it.

    Returns:
        ``(B, T - h, C, H, W)`` generated latents.
    """
    b, h = context.shape[:2]
    n_new = actions.shape[1] - h
    if isinstance(scheduler, PNDMScheduler) and not scheduler.config.skip_prk_steps and num_inference_steps < 4:
        raise ValueError(
            f"PNDM with Runge-Kutta warm-up (skip_prk_steps=False) needs num_inference_steps >= 4, "
            f"got {num_inference_steps}; use more steps or another sampler (ddim, dpm_solver, unipc)"
        )
    if n_new < 1:
        raise ValueError(f"the clip has {actions.shape[1]} frames but {h} of them are context")
    shape = (n_new, *context.shape[2:])
    if isinstance(generator, list):
        if len(generator) != b:
            raise ValueError(f"got {len(generator)} generators for a batch of {b}")
        noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generator])
    else:
        noise = torch.randn((b, *shape), generator=generator, dtype=torch.float32)
    x = torch.cat([context, noise.to(context.device, context.dtype) * scheduler.init_noise_sigma], dim=1)
    scheduler.set_timesteps(num_inference_steps, device=context.device)
    extra = _step_kwargs(scheduler, generator)
    for t in scheduler.timesteps:
        eps = denoiser(x, t.expand(b).to(context.device), actions, action_mask)
        x = scheduler.step(eps, t, x, **extra).prev_sample
        x[:, :h] = context
    return x[:, h:]


def diffusion_loss(
    denoiser: Denoiser,
    train_scheduler: DDPMScheduler,
    latents: torch.Tensor,
    actions: torch.Tensor,
    action_mask: torch.Tensor,
    history: int,
    action_dropout: float = 0.0,
    weight: torch.Tensor | None = None,
    history_noise: float = 0.0,
) -> torch.Tensor:
    """Diffusion MSE on the frames after the ``history`` clean ones.

    The target follows the schedule's ``prediction_type``: the noise (``epsilon``, IRASim), the
    velocity ``alpha_t * noise - sigma_t * x0`` (``v_prediction``) or the clean latents (``sample``).

    Args:
        denoiser: the backbone.
        train_scheduler: a ``DDPMScheduler`` of the training noise schedule (for ``add_noise``).
        latents: ``(B, T, C, H, W)`` clean latent clip.
        actions, action_mask: as in :func:`sample_clip`.
        history: number of leading clean conditioning frames.
        action_dropout: probability of replacing every action of a sample by "no action"
            (IRASim trains with 0.1).
        weight: optional non-negative weights broadcastable to the generated frames'
            ``(B, T - history, C, H, W)``; the loss is then their weighted mean.
        history_noise: the conditioning frames get Gaussian noise of a standard deviation drawn
            per sample from ``U(0, history_noise)`` (the targets stay clean). A rollout conditions
            on frames it generated itself, with errors; trained only on clean history, errors
            compound (GameNGen's noise augmentation, used against exactly that drift).
    """
    b = latents.shape[0]
    t = torch.randint(0, train_scheduler.config.num_train_timesteps, (b,), device=latents.device)
    noise = torch.randn_like(latents)
    noisy = train_scheduler.add_noise(latents, noise, t)
    context = latents[:, :history]
    if history_noise > 0:
        sigma = history_noise * torch.rand(b, *([1] * (latents.dim() - 1)), device=latents.device)
        context = context + sigma * torch.randn_like(context)
    noisy = torch.cat([context, noisy[:, history:]], dim=1)
    if action_dropout > 0:
        keep = torch.rand(b, device=latents.device) >= action_dropout
        action_mask = action_mask & keep[:, None]
    pred = denoiser(noisy, t, actions, action_mask)
    kind = train_scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = train_scheduler.get_velocity(latents, noise, t)
    elif kind == "sample":
        target = latents
    else:
        raise ValueError(f"unknown prediction_type {kind!r}")
    if weight is None:
        return F.mse_loss(pred[:, history:].float(), target[:, history:].float())
    err = (pred[:, history:].float() - target[:, history:].float()).pow(2)
    weight = weight.float().expand_as(err)
    return (err * weight).sum() / weight.sum()
