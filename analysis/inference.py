"""Two-sample tests on sufficient statistics, one small class per test.

Each test takes the control's and the test arm's statistics and ``compute()`` returns a
frozen ``EffectResult``: the absolute difference (test - control) and the relative one
(test / control - 1), each with a confidence interval, and a two-sided p-value. Degenerate
input (an empty arm, no denominator, zero variance) gives a result whose ``reason`` says
why and whose numbers are NaN; nothing raises halfway through a report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from analysis.sufficient import AdjustedMean, AdjustedRatio, SampleMean, SampleRatio

NAN_PAIR = (math.nan, math.nan)


@dataclass(frozen=True)
class EffectResult:
    """The effect of the test arm over control, from one test."""

    method: str
    alpha: float
    control_mean: float = math.nan
    test_mean: float = math.nan
    absolute: float = math.nan
    absolute_ci: tuple[float, float] = NAN_PAIR
    relative: float = math.nan
    relative_ci: tuple[float, float] = NAN_PAIR
    std_error: float = math.nan
    p_value: float = math.nan
    df: float | None = None
    """Degrees of freedom of the t distribution; None for the normal."""
    variance_reduction: float | None = None
    """CUPED only: the share of the effect's variance that the covariate removed."""
    reason: str | None = None
    """Why there are no numbers; None when the test ran."""

    @property
    def ok(self) -> bool:
        return self.reason is None

    def significant(self) -> bool:
        return self.ok and self.p_value < self.alpha


def effect_from_estimates(
    method: str,
    alpha: float,
    control_mean: float,
    test_mean: float,
    control_var: float,
    test_var: float,
    df: float | None = None,
) -> EffectResult:
    """The effect from two independent arm estimates and the variances of the estimates.

    Absolute: d = m_t - m_c, se = sqrt(v_t + v_c), a t (Welch df) or normal interval.
    Relative: r = m_t / m_c - 1 with the delta-method variance v_t / m_c^2 + m_t^2 v_c / m_c^4
    (Kohavi, Tang & Xu (2020), "Trustworthy Online Controlled Experiments", ch. 18; the
    same as gbstats' frequentist relative effect).
    """
    se = math.sqrt(control_var + test_var)
    if not se > 0:
        return EffectResult(
            method,
            alpha,
            control_mean,
            test_mean,
            reason="zero variance in both arms: every user has the same value",
        )
    dist = stats.norm if df is None else stats.t(df)
    crit = float(dist.ppf(1 - alpha / 2))
    diff = test_mean - control_mean
    p_value = float(2 * dist.sf(abs(diff) / se))
    relative, relative_ci = math.nan, NAN_PAIR
    if control_mean != 0:
        relative = test_mean / control_mean - 1
        rel_se = math.sqrt(
            test_var / control_mean**2 + test_mean**2 * control_var / control_mean**4
        )
        relative_ci = (relative - crit * rel_se, relative + crit * rel_se)
    return EffectResult(
        method=method,
        alpha=alpha,
        control_mean=control_mean,
        test_mean=test_mean,
        absolute=diff,
        absolute_ci=(diff - crit * se, diff + crit * se),
        relative=relative,
        relative_ci=relative_ci,
        std_error=se,
        p_value=p_value,
        df=df,
    )


def welch_df(control_var: float, control_n: int, test_var: float, test_n: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the variances of the two means
    (Welch (1947), Biometrika 34:28-35)."""
    numerator = (control_var + test_var) ** 2
    denominator = control_var**2 / (control_n - 1) + test_var**2 / (test_n - 1)
    return numerator / denominator if denominator > 0 else math.inf


class TwoSampleTest(ABC):
    """Template: ``compute()`` checks the input is usable, then calls ``_compute()``."""

    method: str = ""

    def __init__(self, alpha: float = 0.05) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        self.alpha = alpha

    def compute(self) -> EffectResult:
        if reason := self._degenerate():
            return EffectResult(self.method, self.alpha, reason=reason)
        return self._compute()

    def _degenerate(self) -> str | None:
        for arm, n in zip(("control", "test"), self._sizes(), strict=True):
            if n == 0:
                return f"the {arm} arm has no users"
            if n < 2:
                return f"the {arm} arm has a single user: no variance to estimate"
        return None

    @abstractmethod
    def _sizes(self) -> tuple[int, int]: ...

    @abstractmethod
    def _compute(self) -> EffectResult: ...


class WelchTTest(TwoSampleTest):
    """Welch's unequal-variance t-test for a per-user mean.

    >>> control, test = SampleMean.from_values([1, 2, 3]), SampleMean.from_values([2, 3, 5])
    >>> r = WelchTTest(control, test).compute()
    >>> round(r.absolute, 4), round(r.p_value, 4)
    (1.3333, 0.2846)
    """

    method = "welch t-test"

    def __init__(self, control: SampleMean, test: SampleMean, alpha: float = 0.05) -> None:
        super().__init__(alpha)
        self.control, self.test = control, test

    def _sizes(self) -> tuple[int, int]:
        return self.control.n, self.test.n

    def _compute(self) -> EffectResult:
        c, t = self.control, self.test
        vc, vt = c.estimate_variance, t.estimate_variance
        return effect_from_estimates(
            self.method, self.alpha, c.mean, t.mean, vc, vt, welch_df(vc, c.n, vt, t.n)
        )


class DeltaMethodTest(TwoSampleTest):
    """z-test of a ratio metric (sum of numerators over sum of denominators, users as the
    unit) with delta-method variances (Deng, Knoblich & Lu 2018)."""

    method = "delta method"

    def __init__(self, control: SampleRatio, test: SampleRatio, alpha: float = 0.05) -> None:
        super().__init__(alpha)
        self.control, self.test = control, test

    def _sizes(self) -> tuple[int, int]:
        return self.control.n, self.test.n

    def _degenerate(self) -> str | None:
        if reason := super()._degenerate():
            return reason
        for arm, stat in (("control", self.control), ("test", self.test)):
            if stat.den_sum == 0:
                return f"the {arm} arm has a zero denominator (no exposures or no posts shown)"
        return None

    def _compute(self) -> EffectResult:
        c, t = self.control, self.test
        return effect_from_estimates(
            self.method, self.alpha, c.mean, t.mean, c.estimate_variance, t.estimate_variance
        )


def _pooled_slope(covariances: Sequence[tuple[int, float, float]]) -> float:
    """Within-arm pooled regression slope from (n, cov(metric, x), var(x)) per arm: the
    slope of x in the OLS fit metric ~ 1 + arm + x. CUPED's theta (Deng, Xu, Kohavi &
    Walker (2013), "Improving the Sensitivity of Online Controlled Experiments by
    Utilizing Pre-Experiment Data", WSDM, section 3.2), estimated within arms so that
    the effect equals the OLS treatment coefficient."""
    num = sum((n - 1) * cov for n, cov, _ in covariances)
    den = sum((n - 1) * var for n, _, var in covariances)
    return num / den if den > 0 else math.nan


class CupedTTest(TwoSampleTest):
    """CUPED on a per-user mean: Y - theta (X - mean X) with a pre-experiment covariate X,
    then Welch's t-test on the adjusted values (Deng et al. 2013). The result's
    ``variance_reduction`` is 1 - Var(adjusted effect) / Var(unadjusted effect)."""

    method = "CUPED t-test"

    def __init__(self, control: AdjustedMean, test: AdjustedMean, alpha: float = 0.05) -> None:
        super().__init__(alpha)
        self.control, self.test = control, test

    def _sizes(self) -> tuple[int, int]:
        return self.control.n, self.test.n

    def _compute(self) -> EffectResult:
        c, t = self.control, self.test
        arms = [(a.n, a.covariance, a.covariate.variance) for a in (c, t)]
        theta = _pooled_slope(arms)
        if math.isnan(theta):
            return EffectResult(
                self.method,
                self.alpha,
                reason="the pre-experiment covariate is constant: nothing to adjust for",
            )
        x_mean = (c.covariate.sum + t.covariate.sum) / (c.n + t.n)
        means, variances = [], []
        for a in (c, t):
            means.append(a.metric.mean - theta * (a.covariate.mean - x_mean))
            var = a.metric.variance - 2 * theta * a.covariance + theta**2 * a.covariate.variance
            variances.append(max(var, 0.0) / a.n)
        df = welch_df(variances[0], c.n, variances[1], t.n)
        result = effect_from_estimates(
            self.method, self.alpha, means[0], means[1], variances[0], variances[1], df
        )
        raw = c.metric.estimate_variance + t.metric.estimate_variance
        return _with_reduction(result, raw)


class CupedDeltaTest(TwoSampleTest):
    """CUPED on a ratio metric: the linearised ratio (y - R x) / mean(x) regressed on the
    pre-experiment covariate, then a z-test (Deng et al. 2013 with the linearisation of
    Deng et al. 2018; gbstats' regression-adjusted ratio works the same way)."""

    method = "CUPED delta method"

    def __init__(self, control: AdjustedRatio, test: AdjustedRatio, alpha: float = 0.05) -> None:
        super().__init__(alpha)
        self.control, self.test = control, test

    def _sizes(self) -> tuple[int, int]:
        return self.control.n, self.test.n

    def _degenerate(self) -> str | None:
        ratio_test = DeltaMethodTest(self.control.metric, self.test.metric, self.alpha)
        return ratio_test._degenerate()

    def _compute(self) -> EffectResult:
        c, t = self.control, self.test
        arms = [(a.n, a.covariance, a.covariate.variance) for a in (c, t)]
        theta = _pooled_slope(arms)
        if math.isnan(theta):
            return EffectResult(
                self.method,
                self.alpha,
                reason="the pre-experiment covariate is constant: nothing to adjust for",
            )
        z_mean = (c.covariate.sum + t.covariate.sum) / (c.n + t.n)
        means, variances = [], []
        for a in (c, t):
            means.append(a.metric.mean - theta * (a.covariate.mean - z_mean))
            var = a.metric.variance - 2 * theta * a.covariance + theta**2 * a.covariate.variance
            variances.append(max(var, 0.0) / a.n)
        result = effect_from_estimates(
            self.method, self.alpha, means[0], means[1], variances[0], variances[1]
        )
        raw = c.metric.estimate_variance + t.metric.estimate_variance
        return _with_reduction(result, raw)


def _with_reduction(result: EffectResult, raw_variance: float) -> EffectResult:
    if not result.ok or not raw_variance > 0:
        return result
    return replace(result, variance_reduction=1 - result.std_error**2 / raw_variance)


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm's step-down adjusted p-values (Holm (1979), Scand. J. Statist. 6:65-70); NaNs
    (tests that did not run) stay NaN and do not count.

    >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    adjusted = np.full(p.shape, math.nan)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return tuple(float(v) for v in adjusted)


@dataclass(frozen=True)
class RankTestResult:
    """Mann-Whitney U: a secondary view of whether test values tend to exceed control's."""

    p_value: float = math.nan
    u_statistic: float = math.nan
    """U of the test arm."""
    prob_superiority: float = math.nan
    """P(test > control) + P(tie) / 2 = U / (n_test n_control)."""
    reason: str | None = None


class MannWhitneyTest:
    """Two-sided Mann-Whitney U test with the normal approximation, tie and continuity
    corrections (scipy.stats.mannwhitneyu, method="asymptotic")."""

    def __init__(self, control: ArrayLike, test: ArrayLike) -> None:
        self.control = np.asarray(control, dtype=np.float64)
        self.test = np.asarray(test, dtype=np.float64)

    def compute(self) -> RankTestResult:
        for arm, values in (("control", self.control), ("test", self.test)):
            if values.size == 0:
                return RankTestResult(reason=f"the {arm} arm has no users")
        joined = np.concatenate([self.control, self.test])
        if np.all(joined == joined[0]):
            return RankTestResult(reason="every user has the same value")
        result = stats.mannwhitneyu(
            self.test, self.control, alternative="two-sided", method="asymptotic"
        )
        u = float(result.statistic)
        return RankTestResult(
            p_value=float(result.pvalue),
            u_statistic=u,
            prob_superiority=u / (self.test.size * self.control.size),
        )
