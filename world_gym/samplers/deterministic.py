"""The ``"deterministic"`` sampler: a backbone that brings its own recurrent ``rollout``.

A next-frame model without noise (:class:`~world_gym.backbones.state_space.StateSpaceBackbone`)
steps any number of actions in one call: ``backbone.rollout(context, context_actions,
context_mask, actions)``. There is nothing to sample, so the step count is ignored. Such a backbone
names this sampler in its ``sampler`` attribute, and a world model then always rolls it out with it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from world_gym.samplers.base import ClipPlan, Generators, NoiseSchedule, Sampler, register_sampler


class DeterministicSampler(Sampler):
    """Runs ``backbone.rollout`` over all actions at once (no noise, no steps, no clips).

    Args:
        schedule, options: unused (a sampler factory's arguments).
    """

    name = "deterministic"

    def __init__(self, schedule: NoiseSchedule | None = None, options: dict[str, Any] | None = None) -> None:
        if options:
            raise ValueError(f"the deterministic sampler takes no options, got {sorted(options)}")

    def problem(self, backbone: nn.Module, steps: int) -> str | None:
        if not callable(getattr(backbone, "rollout", None)):
            return f"{type(backbone).__name__} has no rollout(context, context_actions, context_mask, actions)"
        return None

    def rollout(self, backbone: nn.Module, context: torch.Tensor, context_actions: torch.Tensor,
                context_mask: torch.Tensor, actions: torch.Tensor, plan: ClipPlan, steps: int,
                generator: Generators = None) -> torch.Tensor:
        return backbone.rollout(context, context_actions, context_mask, actions)


register_sampler(DeterministicSampler.name, DeterministicSampler)
