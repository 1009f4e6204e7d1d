"""Diffusion over latent clips: the diffusers schedulers as samplers, and the training loss.

The conditioning (history) frames stay clean: during training they are neither noised nor in the
loss, and during sampling the clean latents are written back after every scheduler step, as IRASim
does. Each scheduler of :data:`SCHEDULERS` is registered as a :class:`DiffusionSampler` under its
name (:data:`~world_gym.samplers.base.SAMPLERS`); the number of steps is a runtime option.
"""

from __future__ import annotations

import inspect
from functools import partial
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
from torch import nn

from world_gym.samplers.base import (  # noqa: F401  (NoiseSchedule, SamplerConfig: re-exported)
    ClipSampler,
    Generators,
    NoiseSchedule,
    SamplerConfig,
    register_sampler,
)

# Only schedulers whose model input is the noisy sample itself (``scale_model_input`` is the
# identity), so that clean conditioning latents can sit beside noisy ones in one tensor.
SCHEDULERS: dict[str, type[SchedulerMixin]] = {
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


def make_scheduler(schedule: NoiseSchedule, name: str, options: dict[str, Any] | None = None) -> SchedulerMixin:
    """A fresh diffusers scheduler of kind ``name`` over ``schedule`` (schedulers keep state: one per clip)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown diffusers scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    kwargs = {**schedule.to_dict(), **SAMPLER_DEFAULTS.get(name, {}), **(options or {})}
    return SCHEDULERS[name](**kwargs)


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


class DiffusionSampler(ClipSampler):
    """A diffusers scheduler run clip by clip (:func:`sample_clip`), a fresh scheduler per clip.

    Args:
        scheduler: a name of :data:`SCHEDULERS`.
        schedule: the model's training noise schedule.
        options: extra scheduler options (over :data:`SAMPLER_DEFAULTS`).
    """

    def __init__(self, scheduler: str, schedule: NoiseSchedule, options: dict[str, Any] | None = None) -> None:
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown diffusers scheduler {scheduler!r}; choose one of {sorted(SCHEDULERS)}")
        self.name = scheduler
        self.schedule = schedule
        self.options = options

    def problem(self, backbone: nn.Module, steps: int) -> str | None:
        """Why the scheduler fails on this schedule and step count, found by two steps on a scalar; None if it works."""
        try:
            scheduler = make_scheduler(self.schedule, self.name, self.options)
            if getattr(scheduler.config, "skip_prk_steps", True) is False and steps < 4:
                return "PNDM with Runge-Kutta warm-up (skip_prk_steps=False) needs num_inference_steps >= 4"
            scheduler.set_timesteps(steps)
            x = torch.zeros(1, 1)
            for t in scheduler.timesteps[:2]:
                x = scheduler.step(torch.zeros_like(x), t, x).prev_sample
        except Exception as err:  # noqa: BLE001  (diffusers raises ValueError, NotImplementedError, ...)
            return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        return None

    def sample_clip(self, backbone: nn.Module, context: torch.Tensor, actions: torch.Tensor,
                    action_mask: torch.Tensor, steps: int, generator: Generators = None) -> torch.Tensor:
        scheduler = make_scheduler(self.schedule, self.name, self.options)
        return sample_clip(backbone, context, actions, action_mask, scheduler, steps, generator)


def register_scheduler(name: str, scheduler: type[SchedulerMixin], defaults: dict[str, Any] | None = None) -> None:
    """Make a diffusers scheduler class a sampler called ``name`` (with default options ``defaults``).

    Only schedulers whose model input is the noisy sample itself (``scale_model_input`` the
    identity) fit, so that clean conditioning latents can sit beside noisy ones in one tensor.
    """
    SCHEDULERS[name] = scheduler
    if defaults:
        SAMPLER_DEFAULTS[name] = dict(defaults)
    register_sampler(name, partial(DiffusionSampler, name))


for _name in SCHEDULERS:
    register_sampler(_name, partial(DiffusionSampler, _name))


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
