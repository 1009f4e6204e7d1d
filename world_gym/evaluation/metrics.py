"""Statistics of policy evaluation: confidence intervals per policy, agreement across policies.

Per policy: :func:`clopper_pearson` (exact binomial interval of a success rate) and
:func:`bootstrap_ci` (percentile bootstrap of any statistic, e.g. mean max coverage). Across
policies, world model against ground truth: :func:`pearson`, :func:`spearman` (Pearson of average
ranks, ties shared) and :func:`mmrv`, the mean maximum rank violation of SIMPLER (Li et al. 2024).

Everything is plain numpy (the binomial quantiles come from a bisection on the regularized
incomplete beta function), so the harness needs no scipy; tests check the figures against scipy.

>>> round(pearson([0.1, 0.5, 0.9], [0.2, 0.4, 0.8]), 4)
0.982
>>> round(mmrv([0.1, 0.5, 0.9], [0.2, 0.8, 0.4]), 4)  # policies 2 and 3 swapped, real gap 0.4
0.2667
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "clopper_pearson", "mmrv", "pearson", "rankdata", "spearman"]


def _betacf(a: float, b: float, x: float) -> float:
    # Lentz's continued fraction for the incomplete beta function (Numerical Recipes 6.4).
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of the Beta(a, b) distribution (bisection to 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion.

    Args:
        successes: number of successful episodes ``k``.
        trials: number of episodes ``n`` (> 0).
        confidence: coverage of the interval, e.g. 0.95.

    Returns:
        ``(low, high)``; ``low = 0`` when ``k = 0`` and ``high = 1`` when ``k = n``.

    >>> [round(v, 4) for v in clopper_pearson(5, 10)]
    [0.1871, 0.8129]
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else beta_ppf(alpha / 2, successes, trials - successes + 1)
    high = 1.0 if successes == trials else beta_ppf(1 - alpha / 2, successes + 1, trials - successes)
    return low, high


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over episodes.

    Args:
        values: one value per episode (NaNs are dropped).
        statistic: reduces a resample to a number (default: the mean).
        confidence: coverage of the interval.
        num_resamples: bootstrap resamples.
        seed: seed of the resampling, so reports are repeatable.

    Returns:
        ``(low, high)``, or ``(nan, nan)`` when no finite value is given.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(num_resamples, arr.size))
    stats = np.array([statistic(arr[row]) for row in idx]) if statistic is not np.mean else arr[idx].mean(axis=1)
    alpha = 1.0 - confidence
    return float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got shapes {a.shape} and {b.shape}")
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant or fewer than 2 points."""
    a, b = _paired(x, y)
    if a.size < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks from 1, tied values sharing their average rank (scipy's ``method="average"``)."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size, np.float64)
    sorted_a = a[order]
    i = 0
    while i < a.size:
        j = i
        while j + 1 < a.size and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    a, b = _paired(x, y)
    return pearson(rankdata(a), rankdata(b))


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation (SIMPLER): how far wrong the simulator's ranking can lead you.

    For each policy ``i``, the largest real performance gap ``|real_i - real_j|`` over the policies
    ``j`` that the simulator orders differently from reality (``(sim_i > sim_j) != (real_i >
    real_j)``, so a tie on one side only counts); the mean over ``i``. 0 is a perfect ranking; it
    is in the units of the performance measure (e.g. success rate).

    Args:
        sim: performance of each policy in the world model.
        real: performance of the same policies in the ground truth.

    Returns:
        MMRV, or NaN for no policies.
    """
    s, r = _paired(sim, real)
    if s.size == 0:
        return math.nan
    violated = (s[:, None] > s[None, :]) != (r[:, None] > r[None, :])
    gaps = np.abs(r[:, None] - r[None, :]) * violated
    return float(np.round(gaps.max(axis=1).mean(), 12))
