"""Growing a trained pose step (:class:`~world_gym.envs.pusht.pose_state.PoseStep`) into a wider one
that computes the same function, so that training continues from it (``dynamics.grow`` of
``world-gym train pose-dynamics``): contact features as new inputs, wider hidden layers."""

from __future__ import annotations

from dataclasses import replace

import torch
from omegaconf import DictConfig, OmegaConf

from world_gym.envs.pusht.pose_state import PoseStateConfig

#: the step options ``dynamics.grow`` may change: each makes the step wider, never narrower
GROWABLE = ("contact_features", "dynamics_hidden")


def grown_config(config: PoseStateConfig, grow: DictConfig | dict | None) -> PoseStateConfig:
    """``config`` with the options of ``grow`` (``dynamics.grow``: :data:`GROWABLE` keys), checked to widen it.

    Raises:
        ValueError: ``grow`` names another option, narrows the step or switches contact features off.
    """
    grow = dict(OmegaConf.to_container(grow, resolve=True) if isinstance(grow, DictConfig) else grow or {})
    unknown = sorted(set(grow) - set(GROWABLE))
    if unknown:
        raise ValueError(f"dynamics.grow takes {list(GROWABLE)}, got {unknown}")
    if int(grow.get("dynamics_hidden", config.dynamics_hidden)) < config.dynamics_hidden:
        raise ValueError(f"dynamics.grow.dynamics_hidden={grow['dynamics_hidden']} is narrower than the step's "
                         f"{config.dynamics_hidden}")
    if config.contact_features and not grow.get("contact_features", True):
        raise ValueError("dynamics.grow.contact_features=false: the step already reads contact features")
    return replace(config, **grow)


def grow_weights(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``old`` weights placed into a network of the same layers that is as wide or wider (``new``'s
    shapes), so that it computes the same function: an old tensor fills the leading block of its new
    one; a linear layer's new input columns (more features, more hidden units before it) are zero, its
    new output rows keep ``new``'s initialisation and new biases are zero. The new parts then learn
    from the old network's behaviour (function-preserving growth, as in Net2Net).

    Raises:
        ValueError: the layers differ in name, in number of dimensions, or a new one is narrower.
    """
    if set(old) != set(new):
        raise ValueError(f"the step networks' layers differ: {sorted(set(old) ^ set(new))}")
    out = {}
    for name, target in new.items():
        source = old[name]
        if source.dim() != target.dim() or any(a > b for a, b in zip(source.shape, target.shape)):
            raise ValueError(f"{name}: cannot grow {tuple(source.shape)} into {tuple(target.shape)}")
        grown = target.detach().clone()
        if grown.dim() == 2:
            grown[:, source.shape[1]:] = 0  # new inputs (features or hidden units) change nothing
        else:
            grown.zero_()
        grown[tuple(slice(0, n) for n in source.shape)] = source
        out[name] = grown
    return out
