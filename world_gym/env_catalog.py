"""The registered env ids as a static table: registration without torch, and what ``world-gym envs`` lists.

Each :class:`CatalogEntry` names the Gymnasium id, the env family that builds it and the module
that defines that family. :func:`register_ids` registers every id with Gymnasium (the same
entry points :func:`world_gym.registration.register_family` uses) without importing torch, so
``import world_gym`` and ``world-gym --help`` stay fast; the family module is imported the first
time an env of that family is built (:func:`load_family`).

The figures are measured ones, with the command that produced them in ``docs/benchmarks.md`` and
the model cards; they are shown by ``world-gym envs`` and must be updated with the models.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    """One registered world-model env.

    Attributes:
        env_id: the Gymnasium id.
        family: the env family's name (:class:`world_gym.registration.EnvFamily.name`).
        module: the module that defines and registers the family.
        model: the default world model (a shipped name, or where the env looks for converted weights).
        summary: what the env is, in one line.
        fidelity: measured fidelity against the ground truth, or ``"-"`` when not measured here.
        speed: measured frames per second, with the hardware, or ``"-"``.
        card: the documentation page of the env or its model.
    """

    env_id: str
    family: str
    module: str
    model: str
    summary: str
    fidelity: str
    speed: str
    card: str


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        env_id="IRASim-PushT-v0",
        family="pusht",
        module="world_gym.envs.pusht.family",
        model="pusht-irasim-pose",
        summary="IRASim Frame-Ada DiT on pose tokens; drop-in for gym_pusht/PushT-v0 (96x96 pixels)",
        fidelity="block IoU 0.927 (15 steps), 0.748 (150 steps); unseen-policy coverage Pearson 0.993",
        speed="68.5 frames/s (1 env, 1 CPU thread); 572.5 with model=\"pusht-irasim-pose-cd\"",
        card="docs/models/pusht-irasim-pose.md",
    ),
    CatalogEntry(
        env_id="PoseState-PushT-v0",
        family="pusht_pose",
        module="world_gym.envs.pusht.family",
        model="pusht-pose-state",
        summary="deterministic pose-state step on the same pose codec; drop-in for gym_pusht/PushT-v0",
        fidelity="block IoU 0.957 (15 steps), 0.883 (150 steps); unseen behaviours 0.917 / 0.713",
        speed="327.4 frames/s (1 env, 1 CPU thread; 474.4 with compile=True)",
        card="docs/models/pusht-pose-state.md",
    ),
    CatalogEntry(
        env_id="IRASim-LanguageTable-v0",
        family="languagetable",
        module="world_gym.envs.languagetable",
        model="official IRASim-XL/2 (convert with world-gym convert-irasim)",
        summary="the IRASim authors' Language-Table model, 288x512 frames, 2-D end-effector deltas",
        fidelity="-",
        speed="-",
        card="docs/envs/irasim_official.md",
    ),
    CatalogEntry(
        env_id="IRASim-RT1-v0",
        family="rt1",
        module="world_gym.envs.rt1",
        model="official IRASim-XL/2 (convert with world-gym convert-irasim)",
        summary="the IRASim authors' RT-1 model, 256x320 frames, 7-D arm motion + gripper",
        fidelity="-",
        speed="-",
        card="docs/envs/irasim_official.md",
    ),
    CatalogEntry(
        env_id="IRASim-Bridge-v0",
        family="bridge",
        module="world_gym.envs.bridge",
        model="official IRASim-XL/2 (convert with world-gym convert-irasim)",
        summary="the IRASim authors' Bridge model, 256x320 frames, 7-D arm motion + gripper",
        fidelity="-",
        speed="-",
        card="docs/envs/irasim_official.md",
    ),
)


def register_ids() -> None:
    """Register every catalogued id with Gymnasium (skipping ids already registered)."""
    for entry in CATALOG:
        register_gym_id(entry.env_id, entry.family)


def register_gym_id(env_id: str, family: str) -> None:
    """Register ``env_id`` with Gymnasium as family ``family``'s env, single and vector (unless it is already)."""
    import gymnasium as gym

    if env_id in gym.registry:
        return
    gym.register(
        id=env_id,
        entry_point="world_gym.env:WorldModelEnv",
        vector_entry_point="world_gym.vector_env:WorldModelVectorEnv",
        kwargs={"family": family},
    )


def load_family(name: str) -> bool:
    """Import the module that defines env family ``name``, if the catalog knows it.

    Args:
        name: the family's name (``"pusht"``).

    Returns:
        True when a module was imported, False when the catalog has no such family.
    """
    modules = {entry.family: entry.module for entry in CATALOG}
    if name not in modules:
        return False
    importlib.import_module(modules[name])
    return True
