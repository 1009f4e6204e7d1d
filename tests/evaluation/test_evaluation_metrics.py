"""Interval and agreement metrics of the evaluation harness, against known values and scipy."""

import math

import numpy as np
import pytest

from world_gym.evaluation.metrics import betainc, bootstrap_ci, clopper_pearson, mmrv, pearson, rankdata, spearman


@pytest.mark.parametrize("k,n,low,high", [
    (5, 10, 0.187086, 0.812914),   # scipy.stats.binomtest(5, 10).proportion_ci("exact")
    (0, 10, 0.0, 0.308497),        # upper = 1 - 0.025 ** (1 / 10)
    (10, 10, 0.691503, 1.0),
    (1, 50, 0.000506, 0.106469),
])
def test_clopper_pearson_known_values(k, n, low, high):
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(low, abs=2e-6) and hi == pytest.approx(high, abs=2e-6)


def test_clopper_pearson_rejects_bad_counts():
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)
    with pytest.raises(ValueError):
        clopper_pearson(0, 0)


def test_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b, x = rng.uniform(0.5, 30), rng.uniform(0.5, 30), rng.uniform()
        assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-10)
    for k, n in [(3, 17), (25, 50), (49, 50)]:
        ci = stats.binomtest(k, n).proportion_ci(method="exact")
        assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-8)
    x, y = rng.normal(size=12), rng.normal(size=12)
    y[3] = y[5]
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_pearson_matches_numpy_and_is_nan_for_constant():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=20), rng.normal(size=20)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(pearson([1, 1, 1], [0.1, 0.2, 0.3]))


def test_spearman_uses_average_ranks_for_ties():
    assert rankdata([0.5, 0.1, 0.5, 0.9]).tolist() == [2.5, 1.0, 2.5, 4.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # monotone but non-linear: Spearman 1, Pearson below 1
    x = [0.0, 0.1, 0.2, 0.9]
    assert spearman(x, np.exp(np.array(x) * 10)) == pytest.approx(1.0)
    assert pearson(x, np.exp(np.array(x) * 10)) < 0.99


def test_mmrv_definition():
    assert mmrv([0.1, 0.5, 0.9], [0.2, 0.4, 0.8]) == 0.0
    # sim swaps policies 2 and 3 (real 0.8 vs 0.4): both get violation 0.4, policy 1 none
    assert mmrv([0.1, 0.5, 0.9], [0.2, 0.8, 0.4]) == pytest.approx(0.8 / 3)
    # a tie on one side only is a violation from the side of the better policy (SIMPLER's strict
    # comparison: (0.5 > 0.5) != (0.6 > 0.2)), not from the other
    assert mmrv([0.5, 0.5], [0.2, 0.6]) == pytest.approx(0.2)
    # the maximum, not the sum, over the violated pairs
    assert mmrv([0.3, 0.2, 0.1], [0.1, 0.2, 0.3]) == pytest.approx((0.2 + 0.1 + 0.2) / 3)


def test_bootstrap_ci_is_repeatable_and_brackets_the_mean():
    values = np.random.default_rng(2).uniform(size=50)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi
    assert bootstrap_ci(values) == (lo, hi)
    assert bootstrap_ci(values, statistic=np.median)[0] <= np.median(values)
    assert all(math.isnan(v) for v in bootstrap_ci([math.nan, math.nan]))
