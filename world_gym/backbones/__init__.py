"""Dynamics backbones, registered by name (:data:`BACKBONES`): what a world model's ``backbone`` names.

A backbone is an ``nn.Module`` built by ``factory(backbone_config: dict)``. It exposes
``config.num_frames`` and ``config.latent_size``, and is either a denoiser over whole clips,
``backbone(x, t, actions, action_mask) -> prediction`` (sampled by a
:class:`~world_gym.samplers.base.ClipSampler`), or names in its ``sampler`` attribute the sampler
that rolls it out (``"deterministic"``: it has its own ``rollout``).

Built in: ``"IRASim"`` (:mod:`world_gym.backbones.irasim`). Packages add backbones through the
``world_gym.backbones`` entry-point group, so a saved model of theirs loads by name in a fresh
process; the Push-T pose-state backbone is declared that way by this project's own package.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from world_gym.backbones.irasim import IRASim, IRASimConfig, make_irasim
from world_gym.registry import Registry

BackboneFactory = Callable[[dict[str, Any]], nn.Module]
#: Backbone factories by name: registered ones and the entry points of the ``world_gym.backbones`` group.
BACKBONES: Registry[BackboneFactory] = Registry("backbone", "world_gym.backbones")


def register_backbone(name: str, factory: BackboneFactory) -> None:
    """Make a dynamics backbone loadable by name from a world-model config.

    Args:
        name: what ``WorldModelConfig.backbone`` names.
        factory: ``(backbone_config: dict) -> nn.Module``. The module is called as
            ``backbone(x, t, actions, action_mask) -> epsilon`` over whole clips and exposes
            ``config.num_frames`` and ``config.latent_size``; a backbone whose ``sampler``
            attribute names a sampler (``"deterministic"``) is rolled out by that sampler instead.

    A package can declare the factory instead, so that models load without importing it first::

        [project.entry-points."world_gym.backbones"]
        MyDiT = "my_package.dit:make_backbone"
    """
    BACKBONES.register(name, factory)


register_backbone("IRASim", make_irasim)

__all__ = ["BACKBONES", "BackboneFactory", "IRASim", "IRASimConfig", "register_backbone"]
