"""Health checks, run before any effect is read: sample ratio, crossover users, sample
size and implausibly large lifts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

SRM_THRESHOLD = 0.001
"""p-value under which a sample ratio mismatch is flagged (Fabijan et al. (2019),
"Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD)."""


@dataclass(frozen=True)
class SampleRatioResult:
    """Chi-square goodness of fit of the users per arm to the configured weights."""

    arms: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float = math.nan
    df: int = 0
    p_value: float = math.nan
    threshold: float = SRM_THRESHOLD
    reason: str | None = None

    @property
    def passed(self) -> bool:
        """True when the test ran and found no mismatch."""
        return self.reason is None and self.p_value >= self.threshold


class SampleRatioCheck:
    """Pearson's chi-square of the observed users per arm against the weights.

    chi2 = sum (O_i - E_i)^2 / E_i with E_i = N w_i / sum(w), df = arms - 1.

    >>> r = SampleRatioCheck({"control": 5000, "test": 5200}, {"control": 50, "test": 50})
    >>> round(r.compute().p_value, 4)
    0.0477
    """

    def __init__(
        self,
        counts: Mapping[str, int],
        weights: Mapping[str, float],
        threshold: float = SRM_THRESHOLD,
    ) -> None:
        if set(counts) - set(weights):
            unknown = ", ".join(sorted(set(counts) - set(weights)))
            raise ValueError(f"weights: no weight for arm(s) {unknown}")
        self.arms = tuple(weights)
        self.observed = tuple(int(counts.get(arm, 0)) for arm in self.arms)
        self.weights = tuple(float(weights[arm]) for arm in self.arms)
        self.threshold = threshold

    def compute(self) -> SampleRatioResult:
        total, weight_sum = sum(self.observed), sum(self.weights)
        expected = tuple(total * w / weight_sum for w in self.weights) if weight_sum else ()
        base = SampleRatioResult(self.arms, self.observed, expected, threshold=self.threshold)
        if len(self.arms) < 2:
            return _with_reason(base, "a sample ratio needs at least two arms")
        if any(w <= 0 for w in self.weights):
            return _with_reason(base, "every arm needs a positive weight")
        if total == 0:
            return _with_reason(base, "no users in any arm")
        chi2 = sum((o - e) ** 2 / e for o, e in zip(self.observed, expected, strict=True))
        df = len(self.arms) - 1
        return SampleRatioResult(
            self.arms,
            self.observed,
            expected,
            chi2=chi2,
            df=df,
            p_value=float(stats.chi2.sf(chi2, df)),
            threshold=self.threshold,
        )


def _with_reason(result: SampleRatioResult, reason: str) -> SampleRatioResult:
    return SampleRatioResult(
        result.arms, result.observed, result.expected, threshold=result.threshold, reason=reason
    )


@dataclass(frozen=True)
class CrossoverResult:
    """Users seen in more than one arm: counted, listed, and excluded from the analysis."""

    count: int
    users: tuple[int, ...]
    share: float
    """Crossover users over all users seen."""

    @property
    def passed(self) -> bool:
        return self.count == 0


def crossover_result(users: Sequence[int], total_users: int) -> CrossoverResult:
    listed = tuple(sorted(int(u) for u in users))
    share = len(listed) / total_users if total_users else 0.0
    return CrossoverResult(count=len(listed), users=listed, share=share)


@dataclass(frozen=True)
class MinimumSampleResult:
    """Whether every arm reached the minimum number of users before any verdict."""

    minimum: int
    counts: tuple[int, ...]
    arms: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return all(n >= self.minimum for n in self.counts)

    @property
    def short_arms(self) -> tuple[str, ...]:
        return tuple(a for a, n in zip(self.arms, self.counts, strict=True) if n < self.minimum)


@dataclass(frozen=True)
class LiftCheckResult:
    """Twyman's law: a lift beyond what the product plausibly allows is more often a bug
    than a discovery (Kohavi, Tang & Xu 2020, ch. 3)."""

    relative: float
    limit: float

    @property
    def passed(self) -> bool:
        return math.isnan(self.relative) or abs(self.relative) <= self.limit
