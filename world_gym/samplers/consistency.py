"""Consistency sampling over latent clips: one or two backbone calls per clip, from one sample.

A consistency model (Song et al. 2023; the latent consistency models of Luo et al. 2023) maps any
point ``x_t`` of the teacher's probability-flow trajectory to the trajectory's clean end. Here the
student is a backbone of the teacher's own class and config (an IRASim DiT), read through the
boundary condition of consistency models::

    f(x_t, t) = c_skip(t) * x_t + c_out(t) * x0_hat(x_t, t)

where ``x0_hat`` is the backbone's output turned into clean latents by the schedule's
``prediction_type`` (``sample``: the output itself; ``epsilon``, ``v_prediction``: converted), and
``c_skip(t) = s^2 / ((k t)^2 + s^2)``, ``c_out(t) = k t / sqrt((k t)^2 + s^2)`` with ``s`` the
``sigma_data`` and ``k`` the ``timestep_scaling`` options (LCM's 0.5 and 10): ``f(x, 0) = x``, and
for ``t`` above a few steps ``f`` is the backbone's clean estimate, so a student initialised from
its teacher starts as the teacher's one-step sampler.

Sampling (:class:`ConsistencySampler`, registered as ``"consistency"``): the new frames start as
noise at the first timestep, ``f`` gives their clean latents; with a second step they are
re-noised to the second timestep with fresh noise and ``f`` is applied again. The conditioning
frames stay clean throughout, as in the diffusion samplers. Training: :func:`consistency_distillation_loss`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from world_gym.samplers.base import ClipSampler, Generators, NoiseSchedule, register_sampler

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

#: Options of the ``"consistency"`` sampler and their defaults.
CONSISTENCY_DEFAULTS: dict[str, Any] = {"timesteps": None, "sigma_data": 0.5, "timestep_scaling": 10.0}


def alphas_cumprod(schedule: NoiseSchedule) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 0 .. num_train_timesteps - 1`` of ``schedule`` (float64, as diffusers builds it)."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(**schedule.to_dict())
    return scheduler.alphas_cumprod.to(torch.float64)


def trailing_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps evenly spaced down from the last one (diffusers' ``trailing`` spacing:
    ``[999]`` for one step, ``[999, 499]`` for two over 1000)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ratio = num_train_timesteps / steps
    return [int(round(num_train_timesteps - i * ratio)) - 1 for i in range(steps)]


def boundary_scalings(t: torch.Tensor, sigma_data: float, timestep_scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out)`` of the consistency boundary condition at timesteps ``t`` (``f(x, 0) = x``)."""
    scaled = timestep_scaling * t.to(torch.float64)
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


def predicted_clean(
    output: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """A backbone's ``output`` at noisy ``x`` as clean latents, by the schedule's ``prediction_type``.

    Args:
        output, x: ``(B, T, C, H, W)``.
        alpha_bar: ``(B,)`` the noisy clip's ``alpha_bar_t``.
        prediction_type: ``"sample"``, ``"epsilon"`` or ``"v_prediction"``.
    """
    if prediction_type == "sample":
        return output
    a = alpha_bar.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    if prediction_type == "epsilon":
        return (x - (1 - a).sqrt() * output) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * x - (1 - a).sqrt() * output
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected sample, epsilon or v_prediction")


class ConsistencyFunction:
    """``f(x_t, t)`` of a backbone over a schedule (see the module docstring).

    Args:
        schedule: the training noise schedule (its ``alpha_bar`` and ``prediction_type``).
        sigma_data, timestep_scaling: the boundary condition's ``s`` and ``k``.
    """

    def __init__(self, schedule: NoiseSchedule, sigma_data: float = 0.5, timestep_scaling: float = 10.0) -> None:
        if sigma_data <= 0 or timestep_scaling <= 0:
            raise ValueError(f"sigma_data and timestep_scaling must be > 0, got {sigma_data}, {timestep_scaling}")
        self.schedule = schedule
        self.alpha_bar = alphas_cumprod(schedule)
        self.sigma_data = float(sigma_data)
        self.timestep_scaling = float(timestep_scaling)

    def __call__(self, backbone: Denoiser, x: torch.Tensor, t: torch.Tensor, actions: torch.Tensor,
                 action_mask: torch.Tensor) -> torch.Tensor:
        """Clean latents ``(B, T, C, H, W)`` of the noisy clip ``x`` at timesteps ``t`` ``(B,)`` (one backbone call)."""
        alpha_bar = self.alpha_bar.to(t.device)[t.long()]
        x0 = predicted_clean(backbone(x, t, actions, action_mask), x, alpha_bar, self.schedule.prediction_type)
        c_skip, c_out = boundary_scalings(t, self.sigma_data, self.timestep_scaling)
        shape = (-1, *([1] * (x.dim() - 1)))
        return c_skip.to(x.dtype).view(shape) * x + c_out.to(x.dtype).view(shape) * x0

    def noise_to(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise`` for timesteps ``t`` ``(B,)``."""
        a = self.alpha_bar.to(t.device)[t.long()].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def draw_noise(shape: tuple[int, ...], batch: int, generator: Generators, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise ``(batch, *shape)`` drawn on the CPU (one generator per batch element
    when ``generator`` is a list, so an env's noise does not depend on its neighbours)."""
    if isinstance(generator, list):
        if len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
        noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generator])
    else:
        noise = torch.randn((batch, *shape), generator=generator, dtype=torch.float32)
    return noise.to(like.device, like.dtype)


class ConsistencySampler(ClipSampler):
    """Samples a clip with a consistency-distilled backbone in ``steps`` calls (1 or 2 are the point).

    Args:
        schedule: the model's training noise schedule.
        options: ``timesteps`` (a list used when its length equals the step count; otherwise
            ``steps`` timesteps in trailing spacing, ``[999]`` or ``[999, 499]``), ``sigma_data``
            and ``timestep_scaling`` (the boundary condition, as the student was trained).
    """

    name = "consistency"

    def __init__(self, schedule: NoiseSchedule, options: dict[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(CONSISTENCY_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown consistency sampler options {unknown}; known: {sorted(CONSISTENCY_DEFAULTS)}")
        opts = {**CONSISTENCY_DEFAULTS, **(options or {})}
        self.schedule = schedule
        self.timesteps = None if opts["timesteps"] is None else [int(t) for t in opts["timesteps"]]
        if self.timesteps is not None and (
                not self.timesteps or any(not 0 <= t < schedule.num_train_timesteps for t in self.timesteps)):
            raise ValueError(f"timesteps must be a non-empty list in [0, {schedule.num_train_timesteps}), "
                             f"got {self.timesteps}")
        self.function = ConsistencyFunction(schedule, float(opts["sigma_data"]), float(opts["timestep_scaling"]))

    def timesteps_for(self, steps: int) -> list[int]:
        """The timesteps of a ``steps``-step sample (the ``timesteps`` option when it has that length)."""
        if self.timesteps is not None and len(self.timesteps) == steps:
            return list(self.timesteps)
        return trailing_timesteps(self.schedule.num_train_timesteps, steps)

    def problem(self, backbone: nn.Module, steps: int) -> str | None:
        if steps > self.schedule.num_train_timesteps:
            return f"{steps} steps exceed the schedule's {self.schedule.num_train_timesteps} timesteps"
        return None

    @torch.no_grad()
    def sample_clip(self, backbone: nn.Module, context: torch.Tensor, actions: torch.Tensor,
                    action_mask: torch.Tensor, steps: int, generator: Generators = None) -> torch.Tensor:
        b, h = context.shape[:2]
        n_new = actions.shape[1] - h
        if n_new < 1:
            raise ValueError(f"the clip has {actions.shape[1]} frames but {h} of them are context")
        shape = (n_new, *context.shape[2:])
        x0 = draw_noise(shape, b, generator, context)  # pure noise at the first timestep
        for i, t in enumerate(self.timesteps_for(steps)):
            ts = torch.full((b,), t, device=context.device, dtype=torch.long)
            noisy = x0 if i == 0 else self.function.noise_to(x0, draw_noise(shape, b, generator, context), ts)
            x0 = self.function(backbone, torch.cat([context, noisy], dim=1), ts, actions, action_mask)[:, h:]
        return x0


register_sampler("consistency", ConsistencySampler)


def consistency_distillation_loss(
    student: Denoiser,
    target: Denoiser,
    teacher: Denoiser,
    function: ConsistencyFunction,
    teacher_function: ConsistencyFunction | None,
    latents: torch.Tensor,
    actions: torch.Tensor,
    action_mask: torch.Tensor,
    history: int,
    solver_steps: int = 50,
    skip: int = 1,
    weight: torch.Tensor | None = None,
    history_noise: float = 0.0,
    huber_c: float = 0.001,
) -> torch.Tensor:
    """Consistency distillation with a DDIM teacher over the trained discrete schedule (LCM).

    A clip's new frames are noised to ``t = t_{n+skip}`` of a DDIM grid of ``solver_steps`` steps
    (``t_n = n r - 1`` for ``n = 1 .. solver_steps``, ``r = T / solver_steps``); the teacher takes one
    DDIM step from there to ``s = t_n`` (below ``n = 1``: the clean end); the loss is the pseudo-Huber
    distance between the student's ``f(x_t, t)`` and the target network's (the student's EMA, no
    gradient) ``f(x_s, s)``, and at ``s = 0`` the teacher's own ``x_s`` (the boundary condition).

    Args:
        student, target, teacher: backbones ``(x, t, actions, action_mask) -> output``.
        function: the student's and target's :class:`ConsistencyFunction`.
        teacher_function: reads the teacher's output as clean latents (its schedule's
            ``prediction_type``); None: the same schedule as ``function``.
        latents: ``(B, T, C, H, W)`` clean clips (in the backbone's clip frame).
        actions, action_mask: ``(B, T, A)``, ``(B, T)``.
        history: leading clean conditioning frames (never noised, not in the loss).
        solver_steps: DDIM grid size of the teacher's steps.
        skip: grid steps one teacher step spans (LCM's ``k``).
        weight: optional weights broadcastable to the generated frames ``(B, T - history, C, H, W)``.
        history_noise: the conditioning frames get Gaussian noise of a std drawn per sample from
            ``U(0, history_noise)`` (the same for the three networks), as the teacher trained.
        huber_c: the pseudo-Huber constant ``c`` of ``sqrt(d^2 + c^2) - c`` (LCM: 0.001).

    Returns:
        The scalar loss.
    """
    teacher_function = teacher_function or function
    b, n_total = latents.shape[:2]
    device = latents.device
    n_train = function.schedule.num_train_timesteps
    ratio = n_train // solver_steps
    if ratio < 1 or skip < 1:
        raise ValueError(f"solver_steps must be in [1, {n_train}] and skip >= 1, got {solver_steps}, {skip}")
    index = torch.randint(1, solver_steps + 1, (b,), device=device)  # t = index * ratio - 1 on the grid
    t = (index * ratio - 1).long()
    s_index = index - skip  # one teacher step down; at or below 0: the clean end
    at_end = s_index < 1
    s_model = (s_index.clamp(min=1) * ratio - 1).long()

    context = latents[:, :history]
    if history_noise > 0:
        sigma = history_noise * torch.rand(b, *([1] * (latents.dim() - 1)), device=device)
        context = context + sigma * torch.randn_like(context)
    noise = torch.randn_like(latents[:, history:])
    noisy = torch.cat([context, function.noise_to(latents[:, history:], noise, t)], dim=1)

    pred = function(student, noisy, t, actions, action_mask)[:, history:]
    with torch.no_grad():
        alpha_bar = function.alpha_bar.to(device)
        teacher_x0 = predicted_clean(teacher(noisy, t, actions, action_mask), noisy, alpha_bar[t],
                                     teacher_function.schedule.prediction_type)[:, history:]
        view = (-1, *([1] * (latents.dim() - 1)))
        a_t = alpha_bar[t].to(latents.dtype).view(view)
        a_s = torch.where(at_end, torch.ones_like(alpha_bar[s_model]), alpha_bar[s_model]).to(latents.dtype).view(view)
        eps = (noisy[:, history:] - a_t.sqrt() * teacher_x0) / (1 - a_t).sqrt()
        x_s = a_s.sqrt() * teacher_x0 + (1 - a_s).sqrt() * eps  # the teacher's DDIM step t -> s
        target_out = function(target, torch.cat([context, x_s], dim=1), s_model, actions, action_mask)[:, history:]
        goal = torch.where(at_end.view(view), x_s, target_out)
    d2 = (pred.float() - goal.float()).pow(2)
    err = (d2 + huber_c**2).sqrt() - huber_c
    if weight is None:
        return err.mean()
    weight = weight.float().expand_as(err)
    return (err * weight).sum() / weight.sum()


def clean_regression_loss(
    student: Denoiser, function: ConsistencyFunction, latents: torch.Tensor, actions: torch.Tensor,
    action_mask: torch.Tensor, history: int, weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the student's ``f`` from pure noise (``t = T - 1``, the one-step sample) and the
    true clean frames: an anchor to the data, optional beside :func:`consistency_distillation_loss`."""
    b = latents.shape[0]
    t = torch.full((b,), function.schedule.num_train_timesteps - 1, device=latents.device, dtype=torch.long)
    noisy = torch.cat([latents[:, :history], torch.randn_like(latents[:, history:])], dim=1)
    pred = function(student, noisy, t, actions, action_mask)[:, history:]
    if weight is None:
        return F.mse_loss(pred.float(), latents[:, history:].float())
    err = (pred.float() - latents[:, history:].float()).pow(2)
    weight = weight.float().expand_as(err)
    return (err * weight).sum() / weight.sum()
