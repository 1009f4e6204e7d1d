"""Samplers: the rollout strategies around a backbone, registered by name (:data:`SAMPLERS`).

Built in: the diffusers schedulers (``ddim``, ``ddpm``, ``pndm``, ``dpm_solver``, ``unipc``,
``deis``; :mod:`world_gym.samplers.diffusion`), ``consistency`` (one or two calls of a
consistency-distilled backbone per clip; :mod:`world_gym.samplers.consistency`) and
``deterministic`` (a backbone with its own ``rollout``; :mod:`world_gym.samplers.deterministic`). The protocol is in
:mod:`world_gym.samplers.base`.
"""

from world_gym.samplers.base import (
    SAMPLERS,
    ClipPlan,
    ClipSampler,
    NoiseSchedule,
    Sampler,
    SamplerConfig,
    SamplerFactory,
    make_sampler,
    register_sampler,
)
from world_gym.samplers.consistency import ConsistencySampler
from world_gym.samplers.deterministic import DeterministicSampler
from world_gym.samplers.diffusion import SCHEDULERS, DiffusionSampler, register_scheduler

__all__ = ["SAMPLERS", "SCHEDULERS", "ClipPlan", "ClipSampler", "ConsistencySampler", "DeterministicSampler",
           "DiffusionSampler", "NoiseSchedule", "Sampler", "SamplerConfig", "SamplerFactory", "make_sampler",
           "register_sampler", "register_scheduler"]
