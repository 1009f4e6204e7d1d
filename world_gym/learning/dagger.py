"""DAgger: roll the learner out (in a world model or the real simulator), let an expert label the
frames it visited, aggregate, refit.

Iteration 0 fits the learner on the demonstrations (plain behaviour cloning). Each later
iteration runs the current learner alone (DAgger's mixing coefficient is 0 after the first fit)
for ``episodes_per_iteration`` episodes from fresh start seeds, in whatever backend it is given,
asks the expert for a chunk at up to ``labels_per_iteration`` of the visited frames, adds them to
the data and refits from scratch with the same budget. Run in a world model, the learner's
mistakes and the expert's corrections happen in imagination: no real-simulator step is taken
after the demonstrations.

With ``out_dir``, every iteration leaves a checkpoint (the aggregated data, the learner's weights
when it can save them, ``state.json`` with the history): a call with the same ``out_dir`` and
settings continues after the last finished iteration, refitting the learner on the saved data
(fits are seeded, so the weights are the same ones).

>>> # see examples/dagger_pusht.py for a whole run in the Push-T world model
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from world_gym.evaluation.rollouts import EpisodeBackend
from world_gym.learning.demos import Demonstrations, Learner, episode_summary, relabel, roll_out
from world_gym.policies.base import Policy

logger = logging.getLogger(__name__)

STATE = "state.json"
DATA = "data.npz"


@dataclass
class DAggerConfig:
    """DAgger's schedule.

    Attributes:
        iterations: rollout-label-refit rounds after the first fit.
        episodes_per_iteration: learner episodes per round.
        labels_per_iteration: expert labels per round at most (frames drawn at random from the
            round's episodes); None labels every visited frame.
        chunk_size: actions per label (the learner's chunk).
        first_seed: start seed of the first round's first episode; round ``i`` uses seeds
            ``first_seed + (i - 1) * episodes_per_iteration`` onwards (keep them apart from the
            seeds the result is graded on).
        seed: seed of the fits (``seed + iteration``) and of the label draws.
        label_stride: label only every ``label_stride``-th frame of an episode (``chunk_size``: the
            frames where the learner decided); 1 labels any frame.
    """

    iterations: int = 4
    episodes_per_iteration: int = 10
    labels_per_iteration: int | None = 1000
    chunk_size: int = 8
    first_seed: int = 200_000
    seed: int = 0
    label_stride: int = 1

    def __post_init__(self) -> None:
        for name in ("iterations", "episodes_per_iteration", "chunk_size", "label_stride"):
            if int(getattr(self, name)) < (0 if name == "iterations" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'iterations' else 1}, got {getattr(self, name)}")
        if self.labels_per_iteration is not None and self.labels_per_iteration < 1:
            raise ValueError(f"labels_per_iteration must be >= 1 or None, got {self.labels_per_iteration}")


@dataclass
class DAggerResult:
    """What a run did.

    Attributes:
        learner: the learner after the last fit.
        data: the aggregated samples.
        history: per iteration: rollout success and coverage (in the rollout backend), labels added,
            samples, fit loss, seconds.
    """

    learner: Learner
    data: Demonstrations
    history: list[dict[str, Any]] = field(default_factory=list)


def _save(out: Path, config: dict[str, Any], data: Demonstrations, history: list[dict[str, Any]],
          learner: Learner) -> None:
    data.save(out / DATA)
    iteration = history[-1]["iteration"]
    if hasattr(learner, "save_pretrained"):
        learner.save_pretrained(out / f"learner-{iteration}")
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps({"config": config, "history": history}, indent=2))
    tmp.replace(out / STATE)


def run_dagger(learner: Learner, expert: Policy, backend: EpisodeBackend, demos: Demonstrations,
               config: DAggerConfig | None = None, out_dir: str | Path | None = None,
               on_iteration: Callable[[int, Learner], dict[str, Any] | None] | None = None,
               progress: bool = True) -> DAggerResult:
    """Run DAgger (see the module docstring).

    Args:
        learner: trained from scratch at every fit; shared by the backend's sub-envs, so it must keep
            no state between ``act`` calls (or run with one sub-env).
        expert: labels the learner's frames (a policy returning ``(chunk_size, action_dim)``).
        backend: where the learner is rolled out (a world model's vector env for DAgger in
            imagination, or the real simulator).
        demos: the samples of iteration 0 (:func:`~world_gym.learning.demos.demonstrations`).
        config: the schedule.
        out_dir: checkpoints and resume (None: nothing saved).
        on_iteration: called after each fit with ``(iteration, learner)``; what it returns is added
            to that iteration's history (e.g. a grade in the real simulator).
        progress: progress bars and a log line per iteration.

    Returns:
        The learner, the aggregated data and the history.

    Raises:
        ValueError: ``out_dir`` holds a run with other settings, or the demos are empty.
    """
    config = config or DAggerConfig()
    if len(demos) == 0:
        raise ValueError("no demonstrations to start from")
    settings = {**asdict(config), "demos": len(demos), "demo_episodes": demos.num_episodes}
    out = Path(out_dir) if out_dir is not None else None
    data, history, start = demos, [], 0
    if out is not None and (out / STATE).is_file():
        saved = json.loads((out / STATE).read_text())
        if saved["config"] != settings:
            diff = {k: (saved["config"].get(k), v) for k, v in settings.items() if saved["config"].get(k) != v}
            raise ValueError(f"{out} holds a DAgger run with other settings (saved, now): {diff}; choose a new out_dir")
        data, history = Demonstrations.load(out / DATA), saved["history"]
        start = history[-1]["iteration"] + 1 if history else 0
        logger.info("resuming DAgger in %s after iteration %d (%d samples)", out, start - 1, len(data))
        if start > 0:
            learner.fit(data.features, data.labels, seed=config.seed + start - 1)
    for iteration in range(start, config.iterations + 1):
        t0 = time.perf_counter()
        row: dict[str, Any] = {"iteration": iteration}
        if iteration > 0:
            first = config.first_seed + (iteration - 1) * config.episodes_per_iteration
            seeds = list(range(first, first + config.episodes_per_iteration))
            episodes = roll_out(backend, lambda: learner, seeds, name=f"learner {iteration}", progress=progress)
            summary = episode_summary(episodes)
            new = relabel(episodes, expert, learner, config.chunk_size, source=f"iteration-{iteration}",
                          first_episode=int(data.episode.max()) + 1, limit=config.labels_per_iteration,
                          seed=config.seed + iteration, progress=progress, stride=config.label_stride)
            data = data.concat(new)
            row.update({"rollout_success_rate": summary["success_rate"],
                        "rollout_mean_max_coverage": summary["mean_max_coverage"],
                        "rollout_frames": summary["frames"], "labels_added": len(new)})
        fit = learner.fit(data.features, data.labels, seed=config.seed + iteration)
        row.update({"samples": len(data), "fit_loss": fit.get("loss"), "seconds": time.perf_counter() - t0})
        if on_iteration is not None:
            row.update(on_iteration(iteration, learner) or {})
        history.append(row)
        if out is not None:
            _save(out, settings, data, history, learner)
        if progress:
            logger.info("DAgger iteration %d: %s", iteration, {k: (round(v, 4) if isinstance(v, float) else v)
                                                               for k, v in row.items()})
    return DAggerResult(learner, data, history)
