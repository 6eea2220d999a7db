"""Power, minimum detectable effect and sample size for a two-sided normal test.

power(delta) = Phi(delta/se - z) + Phi(-delta/se - z), z = Phi^-1(1 - alpha/2), with
se = sqrt(s_c^2/n_c + s_t^2/n_t): both tails counted, as in statsmodels' NormalIndPower
(Chow, Shao & Wang (2008), "Sample Size Calculations in Clinical Research", 3.2.1). The
per-user variances are the metric's own (the linearised variance for a ratio metric).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy import optimize, stats


@dataclass(frozen=True)
class PowerResult:
    """Power of the primary metric's test at the current sample, and what it would take."""

    alpha: float
    target_power: float
    baseline: float
    control_n: int
    test_n: int
    mde_absolute: float = math.nan
    """Smallest true difference detected with ``target_power`` at the current sample."""
    mde_relative: float = math.nan
    lift: float = math.nan
    """The relative lift that ``users_needed`` is sized for."""
    power_at_lift: float = math.nan
    """Power at the current sample if the true relative lift were ``lift``."""
    control_users_needed: float = math.nan
    test_users_needed: float = math.nan
    reason: str | None = None


class PowerAnalysis:
    """Power of a difference of two means with known per-user variances.

    >>> p = PowerAnalysis(1.0, 1.0, 1000, 1000, baseline=10.0)
    >>> round(p.minimum_detectable_effect(), 4), round(p.power(0.1), 4)
    (0.1253, 0.6088)
    """

    def __init__(
        self,
        control_variance: float,
        test_variance: float,
        control_n: int,
        test_n: int,
        baseline: float,
        alpha: float = 0.05,
        target_power: float = 0.8,
    ) -> None:
        if not alpha < target_power < 1:
            raise ValueError(f"target power must lie in (alpha, 1), got {target_power}")
        self.control_variance, self.test_variance = control_variance, test_variance
        self.control_n, self.test_n = control_n, test_n
        self.baseline, self.alpha, self.target_power = baseline, alpha, target_power
        self._z = float(stats.norm.ppf(1 - alpha / 2))

    def _power_at(self, standardised: float) -> float:
        z = self._z
        return float(stats.norm.cdf(standardised - z) + stats.norm.cdf(-standardised - z))

    def _std_error(self, control_n: float, test_n: float) -> float:
        return math.sqrt(self.control_variance / control_n + self.test_variance / test_n)

    def _standardised_needed(self) -> float:
        """delta / se at which the power reaches the target."""
        upper = self._z + float(stats.norm.ppf(self.target_power)) + 10
        root = optimize.brentq(
            lambda s: self._power_at(s) - self.target_power, 0.0, upper, xtol=1e-14
        )
        return float(root)

    def power(self, delta: float) -> float:
        """Power at the current sample if the true absolute difference were ``delta``."""
        return self._power_at(abs(delta) / self._std_error(self.control_n, self.test_n))

    def minimum_detectable_effect(self) -> float:
        """The absolute difference detected with the target power at the current sample."""
        return self._standardised_needed() * self._std_error(self.control_n, self.test_n)

    def sample_size(self, delta: float) -> tuple[float, float]:
        """Users per arm (control, test), in the current allocation, to detect ``delta``
        with the target power."""
        share = self.control_n / (self.control_n + self.test_n)
        spread = self.control_variance / share + self.test_variance / (1 - share)
        total = spread * (self._standardised_needed() / abs(delta)) ** 2
        return total * share, total * (1 - share)

    def compute(self, lift: float) -> PowerResult:
        """Everything at once, for a relative ``lift`` of the baseline."""
        base = PowerResult(
            alpha=self.alpha,
            target_power=self.target_power,
            baseline=self.baseline,
            control_n=self.control_n,
            test_n=self.test_n,
        )
        if self.control_n < 2 or self.test_n < 2:
            return replace(base, reason="an arm has fewer than two users")
        if not (self.control_variance + self.test_variance > 0):
            return replace(base, reason="zero variance: power is undefined")
        mde = self.minimum_detectable_effect()
        if not self.baseline:
            return replace(base, mde_absolute=mde, reason="the baseline is zero")
        delta = lift * self.baseline
        control_needed, test_needed = self.sample_size(delta)
        return replace(
            base,
            mde_absolute=mde,
            mde_relative=mde / abs(self.baseline),
            lift=lift,
            power_at_lift=self.power(delta),
            control_users_needed=control_needed,
            test_users_needed=test_needed,
        )
