"""Planners as policy specs of ``world-gym evaluate``: ``plan:KIND[,key=value...]``.

    world-gym evaluate --no-world-model --episodes 50 \\
        --policy "plan:ranking,k=16,horizon=8,proposal=expert_proposal+noise=35+chunk_size=8"

Options: ``k`` (candidates, default 16), ``horizon`` (8), ``execute`` (the horizon), ``model`` (the
env id, ``gym-pusht`` or a model directory the planner imagines in; default ``IRASim-PushT-v0``),
``proposal`` (a policy spec whose commas are written ``+``; its ``chunk_size`` must equal the
horizon), ``objective`` (default: the env's), ``seed``; any other option goes to
:func:`~world_gym.planning.make_planner` (``reduce``, ``iterations``, ``ensemble`` ...). With
``model=gym-pusht`` the planner needs gym-pusht's info, which only the ground-truth side of an
evaluation gives: evaluate it with ``--no-world-model``.
"""

from __future__ import annotations

from typing import Any, Callable

from world_gym.planning.factory import IMAGINATION_KWARGS, PLANNERS, make_planner, resolve_model, resolve_objective
from world_gym.policies.base import Policy

DEFAULT_MODEL = "IRASim-PushT-v0"


def plan_policy(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    """The ``plan`` policy kind: ``(make, chunk_size)`` for :func:`world_gym.policies.zoo.make_spec`.

    Args:
        path: the planner kind (``ranking``, ``cem``, ``mppi``; default ``ranking``).
        options: the spec's options (see the module docstring).

    Raises:
        ValueError: an unknown kind, a proposal whose chunk size is not the horizon, or a planner check.
    """
    from world_gym.policies.zoo import parse_policy_spec

    options = dict(options)
    kind = path or "ranking"
    if kind not in PLANNERS:
        raise ValueError(f"unknown planner kind {kind!r} in plan:{kind}; known: {sorted(PLANNERS)}")
    k = int(options.pop("k", options.pop("num_samples", 16)))
    horizon = int(options.pop("horizon", 8))
    execute = int(options.pop("execute", horizon))
    seed = options.pop("seed", 0)
    target = str(options.pop("model", DEFAULT_MODEL))
    objective = options.pop("objective", None)
    proposal_text = options.pop("proposal", None)
    imagination_kwargs = {key: options.pop(key) for key in IMAGINATION_KWARGS if key in options}
    model, family = resolve_model(target, device=options.pop("device", "cpu"), **imagination_kwargs)
    objective = resolve_objective(objective, model, family)
    proposal_spec = None
    if proposal_text is not None:
        specs = parse_policy_spec(str(proposal_text).replace("+", ","))
        if len(specs) != 1:
            raise ValueError(f"proposal must name one policy, got {len(specs)} from {proposal_text!r}")
        proposal_spec = specs[0]
        if proposal_spec.chunk_size != horizon:
            raise ValueError(f"the proposal's chunk_size ({proposal_spec.chunk_size}) must equal the horizon "
                             f"({horizon}): add +chunk_size={horizon} to proposal=")

    def make() -> Policy:
        proposal = proposal_spec.make() if proposal_spec is not None else None
        return make_planner(kind, model, proposal=proposal, num_samples=k, horizon=horizon, execute=execute,
                            seed=seed, objective=objective, **options)

    make()  # fail now, not inside the harness, on a bad option
    return make, execute
