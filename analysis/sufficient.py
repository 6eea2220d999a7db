"""Per-arm sufficient statistics: everything the tests need, and nothing per user.

The layout follows GrowthBook's gbstats (``SampleMeanStatistic``, ``RatioStatistic`` and
their regression-adjusted versions): sums, sums of squares and cross-products, from which
means, variances and covariances follow. SQL or numpy produce the sums; the tests in
``analysis.inference`` read only these objects.

Variances use the unbiased ``n - 1`` denominator, as ``numpy.var(ddof=1)`` and
``scipy.stats.ttest_ind`` do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def _covariance(n: int, sum_a: float, sum_b: float, sum_ab: float) -> float:
    """Unbiased sample covariance from sums; NaN below two observations."""
    if n < 2:
        return math.nan
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


@dataclass(frozen=True)
class SampleMean:
    """A per-user metric in one arm: n, sum and sum of squares.

    >>> s = SampleMean.from_values([1, 2, 3, 4])
    >>> s.mean, round(s.variance, 4)
    (2.5, 1.6667)
    """

    n: int
    sum: float
    sum_sq: float

    @classmethod
    def from_values(cls, values: ArrayLike) -> SampleMean:
        y = np.asarray(values, dtype=np.float64)
        return cls(n=int(y.size), sum=float(y.sum()), sum_sq=float(np.dot(y, y)))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of the per-user values (clipped at 0 against rounding)."""
        return max(_covariance(self.n, self.sum, self.sum, self.sum_sq), 0.0)

    @property
    def estimate_variance(self) -> float:
        """Variance of the mean."""
        return self.variance / self.n if self.n else math.nan


@dataclass(frozen=True)
class SampleRatio:
    """A ratio metric in one arm (sum of numerators over sum of denominators, the user
    being the unit): n, sums, sums of squares and the cross-product.

    >>> r = SampleRatio.from_values([1, 0, 2], [2, 1, 3])
    >>> r.mean
    0.5
    """

    n: int
    num_sum: float
    num_sum_sq: float
    den_sum: float
    den_sum_sq: float
    cross_sum: float

    @classmethod
    def from_values(cls, numerators: ArrayLike, denominators: ArrayLike) -> SampleRatio:
        y = np.asarray(numerators, dtype=np.float64)
        x = np.asarray(denominators, dtype=np.float64)
        return cls(
            n=int(y.size),
            num_sum=float(y.sum()),
            num_sum_sq=float(np.dot(y, y)),
            den_sum=float(x.sum()),
            den_sum_sq=float(np.dot(x, x)),
            cross_sum=float(np.dot(y, x)),
        )

    @property
    def mean(self) -> float:
        return self.num_sum / self.den_sum if self.den_sum else math.nan

    @property
    def num_variance(self) -> float:
        return _covariance(self.n, self.num_sum, self.num_sum, self.num_sum_sq)

    @property
    def den_variance(self) -> float:
        return _covariance(self.n, self.den_sum, self.den_sum, self.den_sum_sq)

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.num_sum, self.den_sum, self.cross_sum)

    @property
    def variance(self) -> float:
        """Variance of the linearised per-user value ``(y - R x) / mean(x)``.

        Delta method for a ratio of means, Deng, Knoblich & Lu (2018), "Applying the Delta
        Method in Metric Analytics", KDD, section 3.2: Var(Ybar/Xbar) ~ (1/n) (s_y^2/mu_x^2
        - 2 mu_y s_xy/mu_x^3 + mu_y^2 s_x^2/mu_x^4); this is n times that.
        """
        if self.n < 2 or not self.den_sum:
            return math.nan
        mu_x = self.den_sum / self.n
        ratio = self.mean
        value = (
            self.num_variance - 2 * ratio * self.covariance + ratio**2 * self.den_variance
        ) / mu_x**2
        return max(value, 0.0)

    @property
    def estimate_variance(self) -> float:
        """Variance of the ratio estimate (delta method)."""
        return self.variance / self.n if self.n else math.nan


@dataclass(frozen=True)
class AdjustedMean:
    """A per-user metric with a pre-experiment covariate (CUPED): the metric's and the
    covariate's sums and their cross-product."""

    metric: SampleMean
    covariate: SampleMean
    cross_sum: float

    @classmethod
    def from_values(cls, values: ArrayLike, covariate: ArrayLike) -> AdjustedMean:
        y = np.asarray(values, dtype=np.float64)
        x = np.asarray(covariate, dtype=np.float64)
        return cls(SampleMean.from_values(y), SampleMean.from_values(x), float(np.dot(y, x)))

    @property
    def n(self) -> int:
        return self.metric.n

    @property
    def covariance(self) -> float:
        """Covariance of the metric with the covariate."""
        return _covariance(self.n, self.metric.sum, self.covariate.sum, self.cross_sum)


@dataclass(frozen=True)
class AdjustedRatio:
    """A ratio metric with a pre-experiment covariate: the ratio's statistics, the
    covariate's, and the covariate's cross-products with numerator and denominator."""

    metric: SampleRatio
    covariate: SampleMean
    num_cross_sum: float
    den_cross_sum: float

    @classmethod
    def from_values(
        cls, numerators: ArrayLike, denominators: ArrayLike, covariate: ArrayLike
    ) -> AdjustedRatio:
        y = np.asarray(numerators, dtype=np.float64)
        x = np.asarray(denominators, dtype=np.float64)
        z = np.asarray(covariate, dtype=np.float64)
        return cls(
            SampleRatio.from_values(y, x),
            SampleMean.from_values(z),
            float(np.dot(y, z)),
            float(np.dot(x, z)),
        )

    @property
    def n(self) -> int:
        return self.metric.n

    @property
    def covariance(self) -> float:
        """Covariance of the linearised ratio ``(y - R x) / mean(x)`` with the covariate
        (Deng et al. 2018, section 3.2, applied to the CUPED covariance)."""
        m = self.metric
        if self.n < 2 or not m.den_sum:
            return math.nan
        cov_yz = _covariance(self.n, m.num_sum, self.covariate.sum, self.num_cross_sum)
        cov_xz = _covariance(self.n, m.den_sum, self.covariate.sum, self.den_cross_sum)
        return (cov_yz - m.mean * cov_xz) / (m.den_sum / self.n)
