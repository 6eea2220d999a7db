"""The stats engine's contracts: sufficient statistics add up, degenerate input gives a
reason instead of a crash, the bootstrap is seeded and agrees with the analytic intervals."""

import math

import numpy as np
import pytest

from analysis.bootstrap import PoissonBootstrap
from analysis.health import SampleRatioCheck, crossover_result
from analysis.inference import (
    CupedDeltaTest,
    CupedTTest,
    DeltaMethodTest,
    MannWhitneyTest,
    WelchTTest,
)
from analysis.power import PowerAnalysis
from analysis.sufficient import AdjustedMean, AdjustedRatio, SampleMean, SampleRatio


def test_sample_mean_moments_match_numpy():
    values = np.array([3, 0, 7, 1, 1, 9])
    stat = SampleMean.from_values(values)
    assert stat.mean == pytest.approx(values.mean())
    assert stat.variance == pytest.approx(values.var(ddof=1))
    assert stat.estimate_variance == pytest.approx(values.var(ddof=1) / values.size)


def test_adjusted_mean_covariance_matches_numpy():
    y, x = np.array([1, 4, 2, 8, 5]), np.array([0, 3, 1, 6, 6])
    assert AdjustedMean.from_values(y, x).covariance == pytest.approx(np.cov(y, x)[0, 1])


def test_sums_from_two_halves_add_up():
    # what SQL does: per-arm sums are sums of per-user terms, so any split adds up
    y, x = np.arange(10) % 4, np.arange(10) % 3 + 1
    whole = SampleRatio.from_values(y, x)
    a, b = SampleRatio.from_values(y[:4], x[:4]), SampleRatio.from_values(y[4:], x[4:])
    assert whole.num_sum_sq == a.num_sum_sq + b.num_sum_sq
    assert whole.cross_sum == a.cross_sum + b.cross_sum


EMPTY_MEAN = SampleMean(0, 0.0, 0.0)
SOME = SampleMean.from_values([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("control", "test", "reason"),
    [
        (EMPTY_MEAN, SOME, "the control arm has no users"),
        (SOME, EMPTY_MEAN, "the test arm has no users"),
        (SampleMean.from_values([5]), SOME, "the control arm has a single user"),
        (SampleMean.from_values([2, 2, 2]), SampleMean.from_values([2, 2]), "zero variance"),
    ],
)
def test_welch_degenerate_input_gives_a_reason(control, test, reason):
    result = WelchTTest(control, test).compute()
    assert not result.ok
    assert reason in (result.reason or "")
    assert math.isnan(result.p_value)


def test_welch_zero_variance_in_one_arm_still_runs():
    result = WelchTTest(SampleMean.from_values([2, 2, 2]), SOME).compute()
    assert result.ok
    assert result.df == pytest.approx(3)


def test_relative_effect_is_nan_when_control_is_zero():
    result = WelchTTest(SampleMean.from_values([0, 0, 0, 0]), SOME).compute()
    assert result.ok
    assert math.isnan(result.relative)


def test_delta_method_without_exposures_gives_a_reason():
    empty = SampleRatio.from_values([0, 0], [0, 0])
    some = SampleRatio.from_values([1, 0, 2], [3, 2, 2])
    result = DeltaMethodTest(empty, some).compute()
    assert result.reason is not None
    assert "zero denominator" in result.reason


def test_cuped_with_a_constant_covariate_gives_a_reason():
    c = AdjustedMean.from_values([1, 2, 3, 4], [0, 0, 0, 0])
    t = AdjustedMean.from_values([2, 3, 4, 5], [0, 0, 0, 0])
    assert "constant" in (CupedTTest(c, t).compute().reason or "")
    rc = AdjustedRatio.from_values([1, 0, 1], [2, 2, 1], [0, 0, 0])
    rt = AdjustedRatio.from_values([1, 1, 1], [2, 2, 1], [0, 0, 0])
    assert "constant" in (CupedDeltaTest(rc, rt).compute().reason or "")


def test_cuped_on_an_empty_arm_gives_a_reason():
    empty = AdjustedRatio.from_values([], [], [])
    some = AdjustedRatio.from_values([1, 1, 0], [2, 2, 1], [1, 0, 3])
    assert "no users" in (CupedDeltaTest(empty, some).compute().reason or "")


def test_bad_alpha_is_refused_with_its_name():
    with pytest.raises(ValueError, match="alpha"):
        WelchTTest(SOME, SOME, alpha=1.5)


def test_mann_whitney_degenerate_input():
    assert MannWhitneyTest([], [1, 2]).compute().reason == "the control arm has no users"
    assert MannWhitneyTest([1, 1], [1, 1]).compute().reason == "every user has the same value"


def test_sample_ratio_degenerate_input():
    assert SampleRatioCheck({}, {"control": 1, "test": 1}).compute().reason == "no users in any arm"
    assert SampleRatioCheck({"a": 3}, {"a": 1}).compute().reason is not None
    with pytest.raises(ValueError, match="weights"):
        SampleRatioCheck({"control": 3, "other": 2}, {"control": 1, "test": 1})


def test_crossover_is_listed_sorted():
    result = crossover_result([9, 3, 5], total_users=100)
    assert result.users == (3, 5, 9)
    assert result.share == pytest.approx(0.03)
    assert not result.passed


def test_power_degenerate_input():
    assert PowerAnalysis(0.0, 0.0, 100, 100, baseline=1.0).compute(0.05).reason is not None
    assert PowerAnalysis(1.0, 1.0, 1, 100, baseline=1.0).compute(0.05).reason is not None
    zero_base = PowerAnalysis(1.0, 1.0, 100, 100, baseline=0.0).compute(0.05)
    assert zero_base.reason == "the baseline is zero"
    assert zero_base.mde_absolute > 0


def _users(rng, n, rate):
    exposures = 1 + rng.poisson(3, size=n)
    hits = rng.binomial(exposures, rate)
    return np.column_stack([hits, exposures])


def test_bootstrap_is_seeded_and_agrees_with_the_delta_method():
    rng = np.random.default_rng(5)
    control, test = _users(rng, 4000, 0.2), _users(rng, 4000, 0.22)
    metrics = {"hitrate": (0, 1), "hits_per_user": (0, None)}
    first = PoissonBootstrap(control, test, metrics, replicates=1000, seed=3).compute()
    again = PoissonBootstrap(control, test, metrics, replicates=1000, seed=3).compute()
    other = PoissonBootstrap(control, test, metrics, replicates=1000, seed=4).compute()
    assert first == again
    assert first != other
    delta = DeltaMethodTest(
        SampleRatio.from_values(control[:, 0], control[:, 1]),
        SampleRatio.from_values(test[:, 0], test[:, 1]),
    ).compute()
    boot = first["hitrate"]
    assert boot.std_error == pytest.approx(delta.std_error, rel=0.1)
    for got, want in zip(boot.absolute_ci, delta.absolute_ci, strict=True):
        assert got == pytest.approx(want, abs=0.25 * delta.std_error)
    welch = WelchTTest(
        SampleMean.from_values(control[:, 0]), SampleMean.from_values(test[:, 0])
    ).compute()
    assert first["hits_per_user"].std_error == pytest.approx(welch.std_error, rel=0.1)


def test_bootstrap_on_an_empty_arm_gives_a_reason():
    result = PoissonBootstrap(
        np.zeros((0, 2)), np.ones((5, 2)), {"m": (0, 1)}, replicates=10
    ).compute()
    assert result["m"].reason == "the control arm has no users"


def test_bootstrap_with_zero_denominators_gives_a_reason():
    zeros = np.zeros((5, 2))
    result = PoissonBootstrap(zeros, zeros, {"m": (0, 1)}, replicates=10).compute()
    assert result["m"].reason is not None
