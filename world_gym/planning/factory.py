"""``make_planner``: a planner from a kind name and an env id, a world model or the real simulator.

An env family names its planning defaults in ``EnvFamily.extra`` as ``"module:attribute"`` strings,
so this module imports no task module:

* ``planning_objective``: a factory ``(model) -> Objective``, the default objective;
* ``planning_simulator``: a factory ``() -> ImaginationModel``, the real simulator as a model;
* ``planning_imagination``: keyword arguments of :class:`~world_gym.planning.Imagination` for the
  family's world model (cheaper sampling settings for planning).

Without ``planning_objective`` the default is the family's reward head on decoded frames, or, when
that head is ``zero``, the goal image's latent MSE (``goal_image=`` or ``info["goal_image"]``).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from world_gym.planning.imagination import Imagination, ImaginationModel
from world_gym.planning.objectives import GoalImageObjective, Objective, RewardHeadObjective
from world_gym.planning.planners import CEMPlanner, MPPIPlanner, Planner, RankingPlanner
from world_gym.registration import FAMILIES, EnvFamily
from world_gym.reward_models import REWARD_HEADS, RewardHead
from world_gym.world_model import WorldModel

PLANNERS: dict[str, type[Planner]] = {"ranking": RankingPlanner, "cem": CEMPlanner, "mppi": MPPIPlanner}
IMAGINATION_KWARGS = ("num_inference_steps", "sampler", "ensemble", "frames_per_pass", "max_horizon")
SIMULATOR_NAMES = ("gym-pusht", "gym_pusht", "ground_truth")


def load_attribute(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    return getattr(importlib.import_module(module), attribute)


def _family_of(name: str) -> EnvFamily | None:
    import world_gym.envs  # noqa: F401  (registers the families)

    for family in FAMILIES.values():
        if name in (family.env_id, family.name):
            return family
    return None


def _simulator_family(name: str) -> EnvFamily | None:
    import world_gym.envs  # noqa: F401

    for family in FAMILIES.values():
        if "planning_simulator" in family.extra and name in (*SIMULATOR_NAMES, family.ground_truth_id):
            return family
    return None


def resolve_model(target: Any, device: str = "cpu", **imagination_kwargs: Any) -> tuple[ImaginationModel, EnvFamily | None]:
    """An :class:`ImaginationModel` (and its env family, when known) from an env id, a family's
    ground-truth id (the real simulator), a :class:`WorldModel`, a model directory or a model."""
    if isinstance(target, ImaginationModel):
        if imagination_kwargs:
            raise ValueError(f"{sorted(imagination_kwargs)} apply to a world model, not to a ready {type(target).__name__}")
        return target, None
    if isinstance(target, WorldModel):
        return Imagination(target, **imagination_kwargs), None
    if not isinstance(target, str):
        raise TypeError(f"expected an env id, 'gym-pusht', a WorldModel or an ImaginationModel, got {type(target).__name__}")
    simulator = _simulator_family(target)
    if simulator is not None:
        if imagination_kwargs:
            raise ValueError(f"{sorted(imagination_kwargs)} apply to a world model, not to the real simulator")
        return load_attribute(simulator.extra["planning_simulator"])(), simulator
    family = _family_of(target)
    if family is not None:
        model = family.make_model(device=device)
        kwargs = {**family.extra.get("planning_imagination", {}), **imagination_kwargs}
        if family.max_episode_frames is not None:
            kwargs.setdefault("max_horizon", family.max_episode_frames)
        return Imagination(model, **kwargs), family
    try:
        model = WorldModel.from_pretrained(target, device=device)
    except FileNotFoundError as err:
        known = sorted(f.env_id for f in FAMILIES.values())
        raise ValueError(f"{target!r} is neither a registered env id ({known}), a real simulator "
                         f"({list(SIMULATOR_NAMES)}) nor a world-model directory") from err
    return Imagination(model, **imagination_kwargs), None


def resolve_objective(objective: Any, model: ImaginationModel, family: EnvFamily | None,
                      goal_image: np.ndarray | None = None) -> Objective:
    """An :class:`Objective` from an instance, a reward head (instance or registered name),
    ``"goal_latent_mse"`` / ``"goal_mse"`` (goal image), ``"default"``/None (the family's)."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, RewardHead):
        return RewardHeadObjective(objective, task=family.task if family else None, goal_image=goal_image)
    if objective in ("goal_latent_mse", "goal_mse"):
        return GoalImageObjective(goal_image, space="latent" if objective == "goal_latent_mse" else "pixels")
    if isinstance(objective, str) and objective != "default":
        if objective not in REWARD_HEADS and ":" in objective:
            return load_attribute(objective)(model)
        head_kwargs = family.reward_model_kwargs if family is not None and objective == family.reward_model else {}
        return RewardHeadObjective(objective, task=family.task if family else None, goal_image=goal_image,
                                   **head_kwargs)
    if objective not in (None, "default"):
        raise TypeError(f"objective must be an Objective, a RewardHead or a name, got {type(objective).__name__}")
    if family is not None and "planning_objective" in family.extra:
        return load_attribute(family.extra["planning_objective"])(model)
    if family is not None and family.reward_model != "zero":
        return RewardHeadObjective(family.reward_model, task=family.task, goal_image=goal_image,
                                   **family.reward_model_kwargs)
    return GoalImageObjective(goal_image, space="latent" if type(model).encode is not ImaginationModel.encode
                              else "pixels")


def make_planner(kind: str, env_id_or_model: Any, proposal: Any = None, num_samples: int = 16, horizon: int = 8,
                 execute: int | None = None, seed: int | None = 0, objective: Any = None, **kw: Any) -> Planner:
    """A planner that is a policy (``reset(seed)``, ``act(frame, info=None)``, ``chunk_size``).

    >>> import numpy as np
    >>> from world_gym.planning.toy import PointMass
    >>> model = PointMass(goal=(2.0, 1.0))
    >>> planner = make_planner("cem", model, objective=model.objective(), num_samples=32, horizon=4, seed=0)
    >>> planner.reset(seed=0)
    >>> planner.act(np.zeros((8, 8, 3), np.uint8)).shape
    (4, 2)

    Args:
        kind: ``"ranking"``, ``"cem"`` or ``"mppi"``.
        env_id_or_model: a registered env id (its world model and default objective: Push-T's
            latent coverage for ``IRASim-PushT-v0`` and ``PoseState-PushT-v0``), ``"gym-pusht"``
            (the real simulator; then ``act(frame, info)`` must carry gym-pusht's info), a
            :class:`~world_gym.world_model.WorldModel`, a model directory, or an
            :class:`~world_gym.planning.ImaginationModel`.
        proposal: a stochastic policy with ``reset(seed)`` and ``act(frame)`` returning
            ``(horizon, action_dim)``; required for ``"ranking"``.
        num_samples, horizon, execute, seed: see :class:`~world_gym.planning.Planner`.
        objective: None (the env's default), an :class:`~world_gym.planning.Objective`, a reward
            head (instance or registered name), ``"goal_latent_mse"`` or ``"goal_mse"``.
        **kw: ``goal_image`` (for goal objectives), ``device``, the
            :class:`~world_gym.planning.Imagination` settings (``ensemble``, ``num_inference_steps``,
            ``sampler``, ``frames_per_pass``, ``max_horizon``), and the planner's own arguments
            (``reduce``, ``iterations``, ``init_std``, ``temperature``, ``verbose`` ...).

    Raises:
        ValueError: an unknown kind or env, or any of the planner's own checks.
    """
    if kind not in PLANNERS:
        raise ValueError(f"unknown planner kind {kind!r}; known: {sorted(PLANNERS)}")
    goal_image = kw.pop("goal_image", None)
    device = kw.pop("device", "cpu")
    imagination_kwargs = {k: kw.pop(k) for k in IMAGINATION_KWARGS if k in kw}
    model, family = resolve_model(env_id_or_model, device=device, **imagination_kwargs)
    return PLANNERS[kind](model, resolve_objective(objective, model, family, goal_image), num_samples=num_samples,
                          horizon=horizon, execute=execute, proposal=proposal, seed=seed, **kw)
