"""Growing a trained pose step (:class:`~world_gym.envs.pusht.pose_state.PoseStep`) into a wider or finer
one, so that training continues from it (``dynamics.grow`` of ``world-gym train pose-dynamics``):
contact features as new inputs and wider hidden layers compute the same function as before; more
substeps integrate the same block network in parts of a frame along the agent's path (a step that
starts near the trained one, not equal to it)."""

from __future__ import annotations

from dataclasses import replace

import torch
from omegaconf import DictConfig, OmegaConf

from world_gym.envs.pusht.pose_state import PoseStateConfig

#: the step options ``dynamics.grow`` may change: each makes the step wider or finer, never narrower or coarser
GROWABLE = ("contact_features", "dynamics_hidden", "substeps", "wall_features")


def grown_config(config: PoseStateConfig, grow: DictConfig | dict | None) -> PoseStateConfig:
    """``config`` with the options of ``grow`` (``dynamics.grow``: :data:`GROWABLE` keys), checked to widen
    or refine it.

    Raises:
        ValueError: ``grow`` names another option, narrows the step, lowers its substeps or switches
            contact features off.
    """
    grow = dict(OmegaConf.to_container(grow, resolve=True) if isinstance(grow, DictConfig) else grow or {})
    unknown = sorted(set(grow) - set(GROWABLE))
    if unknown:
        raise ValueError(f"dynamics.grow takes {list(GROWABLE)}, got {unknown}")
    if int(grow.get("dynamics_hidden", config.dynamics_hidden)) < config.dynamics_hidden:
        raise ValueError(f"dynamics.grow.dynamics_hidden={grow['dynamics_hidden']} is narrower than the step's "
                         f"{config.dynamics_hidden}")
    if int(grow.get("substeps", config.substeps)) < config.substeps:
        raise ValueError(f"dynamics.grow.substeps={grow['substeps']} is fewer than the step's {config.substeps}")
    if config.wall_features and not grow.get("wall_features", True):
        raise ValueError("dynamics.grow.wall_features=false: the step already reads wall features")
    if config.contact_features and not grow.get("contact_features", True):
        raise ValueError("dynamics.grow.contact_features=false: the step already reads contact features")
    return replace(config, **grow)


def grow_weights(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``old`` weights placed into a network of the same layers that is as wide or wider (``new``'s
    shapes), so that it computes the same function: an old tensor fills the leading block of its new
    one; a linear layer's new input columns (more features, more hidden units before it) are zero, its
    new output rows keep ``new``'s initialisation and new biases are zero. The new parts then learn
    from the old network's behaviour (function-preserving growth, as in Net2Net). Layers only ``new``
    has (the agent's path of a step grown into substeps) keep their initialisation.

    Raises:
        ValueError: ``old`` has a layer ``new`` lacks, or a layer differs in number of dimensions or is narrower.
    """
    if set(old) - set(new):
        raise ValueError(f"the grown step lacks layers of the trained one: {sorted(set(old) - set(new))}")
    out = {}
    for name, target in new.items():
        if name not in old:
            out[name] = target.detach().clone()
            continue
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
