"""Policy specs from short strings and from zoo manifests, for the evaluation harness and its CLI.

A spec string is ``[name=]kind[:path][,key=value...]``:

=====================================  ==========================================================
``random,chunk_size=8``                uniform targets in ``[0, 512]^2`` (seeded per episode)
``cnn_bc:zoo/bc_steps4000``            :class:`~world_gym.policies.cnn_bc.CNNBCPolicy` directory
``lerobot:path/pretrained_model``      LeRobot policy directory (``chunk_size=k`` for chunks)
``sb3:model.zip,algorithm=PPO``        stable-baselines3 model
``replay:replays.npz,noise=10``        open-loop replays by seed (:mod:`world_gym.policies.replay`);
                                       ``replay`` alone: the shipped scripted-expert replays of
                                       gym-pusht seeds 0..49 (``world_gym/assets``)
``pixel_expert,noise=5``               the scripted expert on the state read off the frame
                                       (:mod:`world_gym.policies.pusht_pixel_expert`)
``expert_proposal,noise=35``           the memoryless noisy expert on the frame, a planner's proposal
                                       (:mod:`world_gym.policies.pusht_expert_proposal`)
``novel:greedy,chunk_size=8``          a frame-reading policy unlike the models' training mix
                                       (:mod:`world_gym.policies.pusht_novel`: ``idle``, ``greedy``,
                                       ``wrong_goal``, ``quitter``, ``laggard``, ``jitter``,
                                       ``stress_<family>``; other options are the policy's)
``plan:ranking,k=16,proposal=...``     a planner (:mod:`world_gym.planning.spec`); the proposal's
                                       commas written ``+``: ``proposal=expert_proposal+noise=35``
``zoo:zoo``                            every policy listed in ``zoo/zoo.json``
=====================================  ==========================================================

Kinds are a :class:`~world_gym.registry.Registry` (:data:`KINDS`) with the entry-point group
``world_gym.policy_kinds``: ``plan`` is declared there by this package (the planners build on the
policies, not the other way round), and other packages add kinds the same way.

A zoo manifest ``zoo.json`` holds ``{"policies": [{"name", "kind", "path", "options",
"description"}]}`` with paths relative to the manifest's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gymnasium import spaces

from world_gym.policies.base import Policy, PolicySpec, RandomPolicy
from world_gym.registry import Registry

MANIFEST = "zoo.json"
SHIPPED_REPLAYS = "pusht_expert_replays.npz"  # PushTExpert in gym-pusht from seeds 0..49 (50/50 successes)
PUSHT_LOW, PUSHT_HIGH = 0.0, 512.0


def _cast(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def _random(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    chunk = int(options.get("chunk_size", 8))
    shape = (chunk, 2) if chunk > 1 else (2,)
    # a space per policy: each env's policy is seeded on its own
    return (lambda: RandomPolicy(spaces.Box(PUSHT_LOW, PUSHT_HIGH, shape, np.float32))), chunk


def _cnn_bc(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.cnn_bc import CNNBCNet, CNNBCPolicy

    net = CNNBCNet.from_pretrained(path, device=options.get("device", "cpu"))
    chunk = options.get("chunk_size")
    policy = CNNBCPolicy(net, chunk)
    return (lambda: CNNBCPolicy(net, chunk)), policy.chunk_size


def _lerobot(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.lerobot_policy import LeRobotPolicy

    chunk = options.get("chunk_size")
    base = LeRobotPolicy.from_pretrained(path, device=options.get("device", "cpu"), chunk_size=chunk)
    if chunk is None:  # per-step mode keeps queues: each env needs its own copy
        return base.clone, 1
    return (lambda: LeRobotPolicy(base.policy, base.preprocessor, base.postprocessor, chunk)), int(chunk)


def _sb3(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.sb3_policy import SB3Policy

    base = SB3Policy.load(path, algorithm=options.get("algorithm", "PPO"), device=options.get("device", "cpu"))
    return (lambda: SB3Policy(base.model, base.deterministic, base.action_shape)), base.chunk_size or 1


def _replay(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.replay import ActionReplayPolicy

    chunk = int(options.get("chunk_size", 8))
    if path is None:
        from world_gym.assets import asset_path

        path = str(asset_path(SHIPPED_REPLAYS))
    base = ActionReplayPolicy.from_npz(path, chunk_size=chunk, noise=float(options.get("noise", 0.0)))
    return (lambda: ActionReplayPolicy(base.actions, chunk, base.noise)), chunk


def _pixel_expert(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.pusht_pixel_expert import PixelPushTExpert

    chunk, noise = int(options.get("chunk_size", 8)), float(options.get("noise", 0.0))
    return (lambda: PixelPushTExpert(noise=noise, chunk_size=chunk)), chunk


def _expert_proposal(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.pusht_expert_proposal import PushTExpertProposal

    chunk, noise = int(options.get("chunk_size", 8)), float(options.get("noise", 35.0))
    return (lambda: PushTExpertProposal(noise=noise, chunk_size=chunk)), chunk


def _novel(path: str | None, options: dict[str, Any]) -> tuple[Callable[[], Policy], int]:
    from world_gym.policies.pusht_novel import make_novel_policy

    if not path:
        raise ValueError("the novel kind needs a policy name, e.g. 'novel:greedy'")
    chunk = int(options.get("chunk_size", 8))
    kwargs = {k: v for k, v in options.items() if k != "chunk_size"}
    make_novel_policy(path, chunk, **kwargs)  # fail at parse time on a bad name or option
    return (lambda: make_novel_policy(path, chunk, **kwargs)), chunk


PolicyKind = Callable[[str | None, dict[str, Any]], tuple[Callable[[], Policy], int]]
#: Policy kinds by name, ``(path, options) -> (make_policy, chunk_size)``: the ones below and the entry
#: points of the ``world_gym.policy_kinds`` group (``plan``: :func:`world_gym.planning.spec.plan_policy`).
KINDS: Registry[PolicyKind] = Registry("policy kind", "world_gym.policy_kinds")
for _name, _kind in {"random": _random, "cnn_bc": _cnn_bc, "lerobot": _lerobot, "sb3": _sb3, "replay": _replay,
                     "pixel_expert": _pixel_expert, "expert_proposal": _expert_proposal, "novel": _novel}.items():
    KINDS.register(_name, _kind)


def make_spec(kind: str, path: str | None = None, name: str | None = None, options: dict[str, Any] | None = None,
              description: str = "") -> PolicySpec:
    """One :class:`PolicySpec` of a registered kind.

    Args:
        kind: a key of :data:`KINDS`.
        path: its checkpoint (directory or file), when the kind has one.
        name: report name (default: the path's stem or the kind).
        options: kind options (``chunk_size``, ``noise``, ``device``, ``algorithm``).
        description: one line for reports.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; known: {sorted(KINDS)} and 'zoo'")
    options = dict(options or {})
    make, chunk = KINDS[kind](path, options)
    stamp = None
    if path is not None and Path(path).exists():
        target = Path(path)
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return PolicySpec(name or (Path(path).stem if path else kind), make, chunk, description or kind,
                      {"kind": kind, "path": str(path) if path else None, "options": options, "files": stamp})


def load_zoo(root: str | Path, names: list[str] | None = None) -> list[PolicySpec]:
    """The policies of a zoo manifest (``<root>/zoo.json``), optionally only ``names``."""
    root = Path(root)
    manifest = json.loads((root / MANIFEST).read_text())
    specs = []
    for entry in manifest["policies"]:
        if names and entry["name"] not in names:
            continue
        path = str(root / entry["path"]) if entry.get("path") else None
        specs.append(make_spec(entry["kind"], path, entry["name"], entry.get("options"), entry.get("description", "")))
    return specs


def parse_policy_spec(text: str) -> list[PolicySpec]:
    """Specs from ``[name=]kind[:path][,key=value...]`` (``zoo:DIR`` expands to the zoo's policies)."""
    head, *opts = text.split(",")
    options = {k: _cast(v) for k, v in (o.split("=", 1) for o in opts)}
    name = None
    if "=" in head.split(":", 1)[0]:
        name, head = head.split("=", 1)
    kind, _, path = head.partition(":")
    if kind == "zoo":
        return load_zoo(path or "zoo", options.get("only", "").split("+") if options.get("only") else None)
    return [make_spec(kind, path or None, name, options)]
