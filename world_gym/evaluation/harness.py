"""Evaluate policies in a world model and in its ground truth from the same starts; cache per policy.

For every :class:`~world_gym.policies.base.PolicySpec` and each side (``world_model``,
``ground_truth``), :func:`evaluate_policies` runs one episode per seed with
:func:`~world_gym.evaluation.rollouts.run_episodes` and writes
``<out>/results/<side>/<policy>.json``. A later run with the same settings reads those files
instead of running again (resume after an interruption, or add policies to an evaluation); a file
whose settings differ is recomputed. Frames of a few seeds go to ``<out>/episodes/`` for videos.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from world_gym.evaluation import metrics
from world_gym.evaluation.rollouts import EnvListBackend, EpisodeRecord, RunStats, VectorEnvBackend, run_episodes
from world_gym.policies.base import PolicySpec

if TYPE_CHECKING:
    from world_gym.registration import EnvFamily

SIDES = ("world_model", "ground_truth")


@dataclass
class EvaluationConfig:
    """What to evaluate on and how.

    Attributes:
        env_id: registered world-model env id.
        seeds: start seeds (gym-pusht reset seeds for Push-T), one episode each.
        num_envs: sub-envs run at once on each side.
        max_episode_frames: episode limit in primitive actions, on both sides.
        env_kwargs: further ``gym.make_vec`` arguments of the world model (``model``, ``device``,
            ``num_inference_steps``, ``sampler`` ...).
        reward_model: reward head name (None: the env family's default).
        reward_model_kwargs: its arguments.
        ground_truth_id: ground-truth env id; None for the family's; "" to skip the ground truth.
        ground_truth_kwargs: arguments of its factory.
        video_seeds: seeds whose frames are kept for side-by-side videos.
        out_dir: results folder.
        world_model: evaluate in the world model (False: ground truth only, e.g. to grade a zoo).
    """

    env_id: str = "IRASim-PushT-v0"
    seeds: Sequence[int] = tuple(range(50))
    num_envs: int = 10
    max_episode_frames: int = 300
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    reward_model: str | None = None
    reward_model_kwargs: dict[str, Any] = field(default_factory=dict)
    ground_truth_id: str | None = None
    ground_truth_kwargs: dict[str, Any] = field(default_factory=dict)
    video_seeds: Sequence[int] = ()
    out_dir: str | Path = "outputs/evaluation"
    world_model: bool = True

    def side_settings(self, side: str, spec: PolicySpec) -> dict[str, Any]:
        """Everything a cached result of ``spec`` on ``side`` depends on."""
        common = {"seeds": [int(s) for s in self.seeds], "max_episode_frames": self.max_episode_frames,
                  "chunk_size": spec.chunk_size, "policy": spec.name, "policy_fingerprint": spec.fingerprint}
        if side == "world_model":
            return {**common, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                    "reward_model": self.reward_model, "reward_model_kwargs": self.reward_model_kwargs}
        return {**common, "ground_truth_id": self.resolved_ground_truth_id(), "kwargs": self.ground_truth_kwargs}

    def family(self) -> EnvFamily | None:
        """The env family of :attr:`env_id` (None for an id registered without one)."""
        import world_gym  # noqa: F401  (registers the families)
        from world_gym.registration import get_family

        name = gym.spec(self.env_id).kwargs.get("family")
        return get_family(name) if name else None

    def resolved_ground_truth_id(self) -> str:
        """The ground-truth env id ("" when none)."""
        if self.ground_truth_id is not None:
            return self.ground_truth_id
        family = self.family()
        return (family.ground_truth_id or "") if family is not None else ""


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finite(data: Any) -> Any:
    # JSON has no NaN: undefined figures (no coverage, a constant side) are written as null.
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_finite(data), indent=2, default=str))
    os.replace(tmp, path)  # atomic: an interrupted write never leaves a half file that looks cached


def summarize_episodes(episodes: list[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """Success rate with its Clopper-Pearson interval, mean max coverage with a bootstrap interval,
    mean episode length."""
    n = len(episodes)
    k = sum(bool(e["success"]) for e in episodes)
    cov = np.array([math.nan if e["max_coverage"] is None else e["max_coverage"] for e in episodes], np.float64)
    has_cov = bool(np.isfinite(cov).any())
    low, high = metrics.clopper_pearson(k, n, confidence) if n else (math.nan, math.nan)
    c_low, c_high = metrics.bootstrap_ci(cov, confidence=confidence) if has_cov else (math.nan, math.nan)
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else math.nan,
        "success_ci": [low, high],
        "mean_max_coverage": float(np.nanmean(cov)) if has_cov else None,
        "coverage_ci": [c_low, c_high] if has_cov else None,
        "mean_length": float(np.mean([e["length"] for e in episodes])) if n else math.nan,
    }


class Evaluator:
    """Builds the backends once per chunk size and runs/caches each policy on each side."""

    def __init__(self, config: EvaluationConfig, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out_dir)
        self._backends: dict[tuple[str, int], Any] = {}
        self.reward_head: str | None = None
        #: the episodes bar of :func:`evaluate_policies` (advanced per finished or cached episode), if any
        self.bar: tqdm | None = None

    def _world_model_backend(self, chunk_size: int) -> VectorEnvBackend:
        import world_gym  # noqa: F401  (registers the env ids)

        kwargs = dict(self.config.env_kwargs)
        if self.config.reward_model is not None:
            kwargs["reward_model"] = self.config.reward_model
            kwargs["reward_model_kwargs"] = self.config.reward_model_kwargs
        env = gym.make_vec(self.config.env_id, num_envs=self.config.num_envs, vectorization_mode="vector_entry_point",
                           chunk_size=chunk_size, max_episode_frames=self.config.max_episode_frames, **kwargs)
        head = env.unwrapped.parts.reward_head if hasattr(env.unwrapped, "parts") else None
        self.reward_head = getattr(head, "name", type(head).__name__) if head is not None else None
        return VectorEnvBackend(env, chunk_size)

    def _ground_truth_backend(self, chunk_size: int) -> EnvListBackend:
        gt_id = self.config.resolved_ground_truth_id()
        kwargs = {"max_episode_steps": self.config.max_episode_frames, **self.config.ground_truth_kwargs}
        family = self.config.family()
        # the family declares how its ground truth is built and drawn (e.g. gym-pusht with state
        # observations, frames rendered on demand); any other id is a plain gym.make
        if family is not None and family.make_ground_truth is not None and gt_id == family.ground_truth_id:
            factory: Callable[..., gym.Env] = family.make_ground_truth
            make = lambda: factory(**kwargs)  # noqa: E731
            render = family.render_ground_truth
        else:
            make = lambda: gym.make(gt_id, **kwargs)  # noqa: E731
            render = None
        return EnvListBackend(make, self.config.num_envs, chunk_size, render)

    def backend(self, side: str, chunk_size: int) -> Any:
        """The (cached) backend of ``side`` stepping ``chunk_size`` actions at a time."""
        key = (side, chunk_size)
        if key not in self._backends:
            build = self._world_model_backend if side == "world_model" else self._ground_truth_backend
            self._backends[key] = build(chunk_size)
        return self._backends[key]

    def sides(self) -> tuple[str, ...]:
        """The sides evaluated (no ground truth when there is none)."""
        sides = SIDES if self.config.resolved_ground_truth_id() else ("world_model",)
        sides = tuple(s for s in sides if s != "world_model" or self.config.world_model)
        if not sides:
            raise ValueError("nothing to evaluate: no world model and no ground truth")
        return sides

    def result_path(self, side: str, spec: PolicySpec) -> Path:
        return self.out / "results" / side / f"{spec.name}.json"

    def run(self, spec: PolicySpec, side: str) -> dict[str, Any]:
        """Result of ``spec`` on ``side``: read from the cache when its settings match, else run."""
        settings = self.config.side_settings(side, spec)
        path = self.result_path(side, spec)
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("fingerprint") == _fingerprint(settings):
                if self.bar is not None:
                    self.bar.update(len(self.config.seeds))
                return cached
        backend = self.backend(side, spec.chunk_size)
        bar = self.bar
        if bar is not None:
            bar.set_postfix_str(f"{spec.name} [{side}]")
        stats: RunStats = run_episodes(backend, spec.make, self.config.seeds, self.config.video_seeds, spec.name,
                                       on_episode=lambda _: bar.update() if bar is not None else None)
        for record in stats.episodes:
            self._save_frames(side, spec.name, record)
        episodes = [e.to_dict() for e in stats.episodes]
        result = {
            "policy": spec.name, "side": side, "description": spec.description, "fingerprint": _fingerprint(settings),
            "settings": settings, "reward_head": self.reward_head if side == "world_model" else "ground truth",
            "summary": summarize_episodes(episodes), "episodes": episodes,
            "timing": {"wall_s": round(stats.wall_s, 3), "policy_s": round(stats.policy_s, 3),
                       "env_s": round(stats.env_s, 3), "env_steps": stats.env_steps},
        }
        _write_json(path, result)
        return result

    def _save_frames(self, side: str, name: str, record: EpisodeRecord) -> None:
        if record.frames is None:
            return
        path = self.out / "episodes" / side / f"{name}_seed{record.seed}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, frames=record.frames)


def compare(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Pearson, Spearman and MMRV of world model against ground truth across policies.

    Args:
        results: ``results[policy][side]`` as :meth:`Evaluator.run` returns.

    Returns:
        ``{"success_rate": {...}, "mean_max_coverage": {...}}`` with ``pearson``, ``spearman``,
        ``mmrv`` and ``policies`` (how many had both sides); a metric is omitted when a side lacks it.
    """
    out: dict[str, Any] = {}
    for key in ("success_rate", "mean_max_coverage"):
        pairs = [(r["world_model"]["summary"][key], r["ground_truth"]["summary"][key]) for r in results.values()
                 if "ground_truth" in r and "world_model" in r and r["world_model"]["summary"][key] is not None
                 and r["ground_truth"]["summary"][key] is not None]
        if len(pairs) < 2:
            continue
        wm, gt = zip(*pairs)
        out[key] = {"pearson": metrics.pearson(wm, gt), "spearman": metrics.spearman(wm, gt),
                    "mmrv": metrics.mmrv(wm, gt), "policies": len(pairs)}
    return out


def evaluate_policies(specs: Sequence[PolicySpec], config: EvaluationConfig, progress: bool = True) -> dict[str, Any]:
    """Evaluate every policy on both sides, compare, and write ``<out>/summary.json``.

    Args:
        specs: the policies (unique names).
        config: envs, seeds and output folder.
        progress: show progress bars.

    Returns:
        The summary: settings, per-policy results (without per-episode lists) and the comparison.
    """
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    if len(set(int(s) for s in config.seeds)) != len(config.seeds):
        raise ValueError("seeds must be unique")
    evaluator = Evaluator(config, progress)
    sides = evaluator.sides()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    # one bar over every episode of every (policy, side), cached ones included, so it ends at total/total
    with tqdm(total=len(specs) * len(sides) * len(config.seeds), desc="episodes", unit="ep",
              disable=not progress) as bar:
        evaluator.bar = bar
        for spec in specs:
            results[spec.name] = {side: evaluator.run(spec, side) for side in sides}
        bar.set_postfix_str("done")
    evaluator.bar = None
    summary = {
        "env_id": config.env_id,
        "ground_truth_id": config.resolved_ground_truth_id() or None,
        "reward_head": next((r["world_model"]["reward_head"] for r in results.values() if "world_model" in r), None),
        "seeds": [int(s) for s in config.seeds],
        "max_episode_frames": config.max_episode_frames,
        "num_envs": config.num_envs,
        "env_kwargs": config.env_kwargs,
        "policies": {name: {side: {k: r[side][k] for k in ("description", "summary", "timing", "reward_head")}
                            for side in r} for name, r in results.items()},
        "comparison": compare(results),
    }
    _write_json(Path(config.out_dir) / "summary.json", summary)
    return summary
