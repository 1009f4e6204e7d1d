"""Receding-horizon planners that are policies: ranking, CEM (with the iCEM refinements) and MPPI.

Each planner follows :class:`world_gym.policies.base.Policy`: ``reset(seed)``, ``act(observation,
info=None)`` returning ``(execute, action_dim)`` targets, and ``chunk_size = execute``. At every
``act`` it starts the model's imagination from the frame it is given, imagines candidate action
sequences of ``horizon`` actions (all candidates of one round in one batched model call), scores
them with an :class:`~world_gym.planning.objectives.Objective`, and returns the first ``execute``
actions of the plan; the next ``act`` plans again from the frame that follows (receding horizon).

A *proposal* is any object with ``reset(seed)`` and ``act(frame)`` returning a ``(horizon,
action_dim)`` chunk; it is called with the frame as its only argument, ``num_samples`` times per
decision, and must give a new random draw at each call (a memoryless stochastic policy).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from world_gym.planning.imagination import ImaginationModel, Start
from world_gym.planning.objectives import Objective
from world_gym.validation import check_count

logger = logging.getLogger(__name__)
REDUCTIONS = ("final", "sum", "max")


@dataclass
class Decision:
    """What one ``act`` did.

    Attributes:
        plan: ``(horizon, A)`` the chosen sequence (its first ``execute`` actions were returned).
        score: the plan's score (NaN when it was not imagined: one candidate, or MPPI's mean).
        scores: the scores of the last round of candidates.
        best_latents: ``(horizon, C, h, w)`` the imagined latents of the best candidate seen.
        seconds: wall time of the decision.
        model_calls, imagined_frames: batched model calls and frames imagined in it.
    """

    plan: np.ndarray
    score: float
    scores: np.ndarray
    best_latents: torch.Tensor | None
    seconds: float
    model_calls: int
    imagined_frames: int


@dataclass
class PlannerStats:
    """Totals since the last ``reset``."""

    decisions: int = 0
    seconds: float = 0.0
    model_calls: int = 0
    imagined_frames: int = 0
    history: list[float] = field(default_factory=list)


class Planner:
    """Base class: validation, proposal draws, batched scoring and the receding-horizon loop.

    Args:
        model: what the planner imagines with (:class:`~world_gym.planning.Imagination` over a world
            model, the real simulator, ...).
        objective: what it maximises.
        num_samples: candidates per round (``K``).
        horizon: actions per candidate (``H``).
        execute: actions returned per decision (default: ``horizon``); ``chunk_size`` is this.
        proposal: a stochastic policy whose chunks are the candidates (ranking) or the first round's
            population (CEM, MPPI); optional for CEM and MPPI.
        reduce: how per-step scores make a candidate's score: ``"final"`` (its last step only: frame
            objectives decode ``K`` frames, not ``K x H``), ``"sum"`` or ``"max"``.
        seed: seeds the planner's noise, the model's noise and the proposal at :meth:`reset`.
        verbose: log one line per decision at INFO.
        callback: called with each :class:`Decision`.

    Raises:
        ValueError: ``num_samples`` < 1, a horizon the model cannot roll out, ``execute`` outside
            ``[1, horizon]``, an unknown ``reduce``, an objective that cannot score this model.
    """

    needs_proposal = False

    def __init__(self, model: ImaginationModel, objective: Objective, num_samples: int = 16, horizon: int = 8,
                 execute: int | None = None, proposal: Any = None, reduce: str = "final", seed: int | None = 0,
                 verbose: bool = False, callback: Callable[[Decision], None] | None = None) -> None:
        if not isinstance(model, ImaginationModel):
            raise TypeError(f"model must be an ImaginationModel (e.g. world_gym.planning.Imagination), "
                            f"got {type(model).__name__}")
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be a world_gym.planning.Objective, got {type(objective).__name__}")
        self.num_samples = check_count("num_samples", num_samples, optional=False)
        self.horizon = check_count("horizon", horizon, optional=False)
        model.check_horizon(self.horizon)
        self.execute = self.horizon if execute is None else check_count("execute", execute, optional=False)
        if self.execute > self.horizon:
            raise ValueError(f"execute ({self.execute}) must be at most horizon ({self.horizon})")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if proposal is None and self.needs_proposal:
            raise ValueError(f"{type(self).__name__} needs a proposal policy (reset(seed), act(frame))")
        if proposal is not None and not (callable(getattr(proposal, "act", None))
                                         and callable(getattr(proposal, "reset", None))):
            raise ValueError(f"proposal must have reset(seed) and act(frame); got {type(proposal).__name__}")
        objective.check(model)
        self.model = model
        self.objective = objective
        self.proposal = proposal
        self.reduce = reduce
        self.verbose = verbose
        self.callback = callback
        self.action_dim = model.action_dim
        self.low, self.high = np.asarray(model.action_low, np.float32), np.asarray(model.action_high, np.float32)
        self.last_decision: Decision | None = None
        self.reset(seed)

    @property
    def chunk_size(self) -> int:
        """Actions per :meth:`act` (the harness steps envs this many at a time)."""
        return self.execute

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous plan; ``seed`` fixes the planner's, the model's and the proposal's noise."""
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
        if self.proposal is not None:
            self.proposal.reset(seed=seed)
        self.previous_plan: np.ndarray | None = None
        self.stats = PlannerStats()

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """Plan from ``observation`` (a ``(H, W, 3)`` uint8 frame) and return ``(execute, A)`` float32 targets.

        ``info`` is passed to the model's ``start``: a model that needs the true state (the real
        simulator as the model) reads it from there (gym-pusht's ``info``); a world model ignores it
        except for ``info["goal_image"]``, which goal objectives read.
        """
        t0 = time.perf_counter()
        calls, frames = self.model.calls, self.model.imagined_frames
        start = self.model.start(observation, info)
        self._best: tuple[float, np.ndarray | None, torch.Tensor | None] = (-np.inf, None, None)
        self._last_scores = np.full(0, np.nan)
        plan = np.asarray(self._plan(start), np.float32)
        self.previous_plan = plan
        score, best_plan, best_latents = self._best
        decision = Decision(
            plan=plan, score=score if best_plan is not None and np.array_equal(best_plan, plan) else float("nan"),
            scores=self._last_scores, best_latents=best_latents, seconds=time.perf_counter() - t0,
            model_calls=self.model.calls - calls, imagined_frames=self.model.imagined_frames - frames,
        )
        self.last_decision = decision
        s = self.stats
        s.decisions += 1
        s.seconds += decision.seconds
        s.model_calls += decision.model_calls
        s.imagined_frames += decision.imagined_frames
        s.history.append(decision.score)
        if self.verbose:
            logger.info("%s decision %d: score %.4f, %d calls, %d imagined frames, %.2fs", type(self).__name__,
                        s.decisions, decision.score, decision.model_calls, decision.imagined_frames, decision.seconds)
        if self.callback is not None:
            self.callback(decision)
        return plan[: self.execute].copy()

    def _plan(self, start: Start) -> np.ndarray:
        raise NotImplementedError

    def draw_proposals(self, frame: np.ndarray, n: int) -> np.ndarray:
        """``n`` chunks ``(n, horizon, A)`` from the proposal, each checked for shape and finiteness."""
        chunks = []
        for _ in range(n):
            chunk = np.asarray(self.proposal.act(frame), np.float32)
            if chunk.shape == (self.action_dim,) and self.horizon == 1:
                chunk = chunk[None]
            if chunk.shape != (self.horizon, self.action_dim):
                raise ValueError(f"the proposal's act(frame) must return a (horizon, action_dim) = "
                                 f"({self.horizon}, {self.action_dim}) chunk, got {chunk.shape}")
            if not np.isfinite(chunk).all():
                raise ValueError("the proposal returned non-finite actions")
            chunks.append(chunk)
        return np.stack(chunks)

    def evaluate(self, start: Start, candidates: np.ndarray) -> np.ndarray:
        """Scores ``(K,)`` of ``candidates`` ``(K, H, A)`` (clipped to the action bounds), imagined in
        one batched model call; also tracks the best candidate seen in this decision."""
        candidates = np.clip(candidates, self.low, self.high).astype(np.float32)
        decode = "none"
        if self.objective.needs_frames:
            decode = "final" if self.reduce == "final" else "all"
        imagined = self.model.imagine(start, candidates, decode=decode, generator=self.generator)
        latents = imagined.latents[:, -1:] if self.reduce == "final" else imagined.latents
        steps = np.asarray(self.objective.score(latents, imagined.frames, start, self.model), np.float64)
        if steps.shape != tuple(latents.shape[:2]):
            raise ValueError(f"objective {self.objective.name!r} returned scores of shape {steps.shape}, "
                             f"expected {tuple(latents.shape[:2])} (candidates, steps)")
        if not np.isfinite(steps).all():
            bad = int((~np.isfinite(steps)).any(axis=1).sum())
            raise ValueError(f"objective {self.objective.name!r} returned NaN or infinite scores for {bad} of "
                             f"{len(steps)} candidates")
        scores = {"final": steps[:, -1], "sum": steps.sum(axis=1), "max": steps.max(axis=1)}[self.reduce]
        best = int(np.argmax(scores))
        if scores[best] > self._best[0]:
            self._best = (float(scores[best]), candidates[best].copy(), imagined.latents[best].detach().clone())
        self._last_scores = scores
        return scores

    def shifted_previous(self) -> np.ndarray | None:
        """The previous plan moved ``execute`` steps on, its last action repeated (warm start)."""
        if self.previous_plan is None:
            return None
        rest = self.previous_plan[self.execute:]
        pad = np.repeat(self.previous_plan[-1:], self.horizon - len(rest), axis=0)
        return np.concatenate([rest, pad]).astype(np.float32)


class RankingPlanner(Planner):
    """Ranking planner: ``K`` chunks from a proposal policy, imagined in one batched call, scored, and
    the best one's first ``execute`` actions executed (IRASim's planning loop).

    With ``num_samples=1`` there is nothing to rank: the proposal's chunk is executed without
    imagining it (the base policy itself).

    >>> import numpy as np
    >>> from world_gym.planning.toy import PointMass, PointMassProposal
    >>> model = PointMass(goal=(3.0, -1.0))
    >>> planner = RankingPlanner(model, model.objective(), num_samples=32, horizon=4, proposal=PointMassProposal(),
    ...                          seed=0)
    >>> planner.act(np.zeros((8, 8, 3), np.uint8)).shape
    (4, 2)
    """

    needs_proposal = True

    def _plan(self, start: Start) -> np.ndarray:
        candidates = self.draw_proposals(start.frame, self.num_samples)
        if self.num_samples == 1:
            return candidates[0]
        scores = self.evaluate(start, candidates)
        return np.clip(candidates[int(np.argmax(scores))], self.low, self.high)


def colored_noise(rng: np.random.Generator, beta: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Gaussian noise ``(K, H, A)`` whose power falls as ``1 / f**beta`` along the horizon (axis 1),
    scaled to unit standard deviation (``beta=0``: white; iCEM uses 2-4 for smooth motions)."""
    k, h, a = shape
    if beta == 0 or h == 1:
        return rng.standard_normal(shape)
    freqs = np.fft.rfftfreq(h)
    freqs[0] = 1.0 / h
    scale = freqs ** (-beta / 2.0)
    spectrum = (rng.standard_normal((k, a, len(freqs))) + 1j * rng.standard_normal((k, a, len(freqs)))) * scale
    x = np.fft.irfft(spectrum, n=h, axis=-1)
    x /= max(float(x.std()), 1e-12)
    return np.transpose(x, (0, 2, 1))


class _SamplingPlanner(Planner):
    """Shared parts of CEM and MPPI: the Gaussian over sequences, warm start, proposal first round."""

    def __init__(self, model: ImaginationModel, objective: Objective, num_samples: int = 64, horizon: int = 8,
                 execute: int | None = None, proposal: Any = None, iterations: int = 3, init_std: float = 0.25,
                 noise_beta: float = 2.0, warm_start: bool = True, **kwargs: Any) -> None:
        self.iterations = check_count("iterations", iterations, optional=False)
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0 (a fraction of the action range), got {init_std!r}")
        if noise_beta < 0:
            raise ValueError(f"noise_beta must be >= 0, got {noise_beta!r}")
        self.init_std, self.noise_beta, self.warm_start = float(init_std), float(noise_beta), bool(warm_start)
        super().__init__(model, objective, num_samples, horizon, execute, proposal, **kwargs)

    def initial_mean(self) -> np.ndarray:
        """The shifted previous plan (warm start), else the middle of the action range."""
        warm = self.shifted_previous() if self.warm_start else None
        if warm is not None:
            return warm
        return np.broadcast_to((self.low + self.high) / 2, (self.horizon, self.action_dim)).astype(np.float32)

    def sample(self, mean: np.ndarray, std: np.ndarray, n: int) -> np.ndarray:
        noise = colored_noise(self.rng, self.noise_beta, (n, self.horizon, self.action_dim))
        return np.clip(mean + std * noise, self.low, self.high)

    def first_round(self, start: Start, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The proposal's chunks when there is a proposal (the previous plan in place of one of them),
        else samples around ``mean``."""
        if self.proposal is None:
            return self.sample(mean, std, self.num_samples)
        population = self.draw_proposals(start.frame, self.num_samples)
        warm = self.shifted_previous() if self.warm_start else None
        if warm is not None and self.num_samples > 1:
            population[-1] = warm
        return population


class CEMPlanner(_SamplingPlanner):
    """Cross-entropy method with the iCEM refinements (Pinneri et al. 2020): coloured noise along
    the horizon, a fraction of the elites carried into the next round, the shifted previous plan as
    the first mean (warm start), momentum on the Gaussian, and the best sequence ever seen executed.

    Args:
        iterations: rounds per decision (one batched model call each).
        elite_fraction: the share of each round kept as elites (at least 2).
        keep_elites: the share of the elites carried over into the next round's population.
        init_std: the first round's standard deviation, as a fraction of the action range.
        momentum: weight of the old mean and std in each update.
        noise_beta: the coloured noise's exponent (0: white).
        warm_start: start from the shifted previous plan.
        other arguments: as :class:`Planner` (with a proposal, the first round is its chunks).
    """

    def __init__(self, model: ImaginationModel, objective: Objective, num_samples: int = 64, horizon: int = 8,
                 execute: int | None = None, proposal: Any = None, iterations: int = 3, elite_fraction: float = 0.1,
                 keep_elites: float = 0.3, momentum: float = 0.1, **kwargs: Any) -> None:
        if not 0 < elite_fraction <= 1:
            raise ValueError(f"elite_fraction must be in (0, 1], got {elite_fraction!r}")
        if not 0 <= keep_elites <= 1 or not 0 <= momentum < 1:
            raise ValueError(f"keep_elites must be in [0, 1] and momentum in [0, 1), got {keep_elites!r}, {momentum!r}")
        self.elite_fraction, self.keep_elites, self.momentum = float(elite_fraction), float(keep_elites), float(momentum)
        super().__init__(model, objective, num_samples, horizon, execute, proposal, iterations, **kwargs)

    def _plan(self, start: Start) -> np.ndarray:
        k = self.num_samples
        n_elites = min(k, max(2, int(round(self.elite_fraction * k))))
        n_keep = min(n_elites, int(round(self.keep_elites * n_elites)))
        mean = self.initial_mean()
        std = np.full_like(mean, self.init_std) * (self.high - self.low)
        kept = np.zeros((0, self.horizon, self.action_dim), np.float32)
        for it in range(self.iterations):
            if it == 0:
                population = self.first_round(start, mean, std)
            else:
                population = self.sample(mean, std, k)
                population[: len(kept)] = kept
                if it == self.iterations - 1:
                    population[-1] = mean
            scores = self.evaluate(start, population)
            elites = population[np.argsort(-scores, kind="stable")[:n_elites]]
            mean = self.momentum * mean + (1 - self.momentum) * elites.mean(axis=0)
            std = self.momentum * std + (1 - self.momentum) * elites.std(axis=0)
            kept = elites[:n_keep]
        return self._best[1]


class MPPIPlanner(_SamplingPlanner):
    """Model-predictive path integral control: each round samples around the current plan, weights
    the candidates by ``exp(score / temperature)`` and moves the plan to their weighted mean (and, as
    TD-MPC's MPPI does, the sampling spread to their weighted standard deviation); the final mean is
    executed.

    Args:
        temperature: of the weights, relative to the round's score spread (``max - min``): small
            values approach taking the best candidate, large ones the plain mean.
        min_std: the smallest sampling spread, as a fraction of the action range.
        iterations, init_std, noise_beta, warm_start: as :class:`CEMPlanner`.
        other arguments: as :class:`Planner` (with a proposal, the first round is its chunks).
    """

    def __init__(self, model: ImaginationModel, objective: Objective, num_samples: int = 64, horizon: int = 8,
                 execute: int | None = None, proposal: Any = None, iterations: int = 3, temperature: float = 0.05,
                 min_std: float = 0.01, **kwargs: Any) -> None:
        if not temperature > 0 or not min_std >= 0:
            raise ValueError(f"temperature must be > 0 and min_std >= 0, got {temperature!r}, {min_std!r}")
        self.temperature, self.min_std = float(temperature), float(min_std)
        super().__init__(model, objective, num_samples, horizon, execute, proposal, iterations, **kwargs)

    def _plan(self, start: Start) -> np.ndarray:
        mean = self.initial_mean()
        std = np.full_like(mean, self.init_std) * (self.high - self.low)
        for it in range(self.iterations):
            population = self.first_round(start, mean, std) if it == 0 else self.sample(mean, std, self.num_samples)
            if it > 0:
                population[0] = mean
            scores = self.evaluate(start, population)
            spread = max(float(scores.max() - scores.min()), 1e-12)
            weights = np.exp((scores - scores.max()) / (self.temperature * spread))
            weights /= weights.sum()
            mean = np.einsum("k,kha->ha", weights, population).astype(np.float32)
            weighted_std = np.sqrt(np.einsum("k,kha->ha", weights, (population - mean) ** 2))
            std = np.maximum(weighted_std, self.min_std * (self.high - self.low))
        return np.clip(mean, self.low, self.high)
