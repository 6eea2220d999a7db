"""Checks that the statistics are right on this platform's data: A/A re-salting (the false
positive rate at alpha, uniform p-values) and interval coverage over simulated experiments
with a planted effect."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from analysis.data import COLUMNS, METRICS, PRIMARY, ArmStats, UserTable, moment_name, moment_terms
from analysis.inference import DeltaMethodTest, EffectResult, WelchTTest
from analysis.sufficient import AdjustedMean, AdjustedRatio, SampleMean, SampleRatio
from experiment.assignment import BUCKETS, bucket

FPR_RANGE = (0.03, 0.07)
COVERAGE_RANGE = (0.92, 0.98)


@dataclass(frozen=True)
class MetricAA:
    """One metric's A/A outcome over every re-salting."""

    metric: str
    tests: int
    """Re-saltings where the test ran (both arms non-degenerate)."""
    false_positives: int
    false_positive_rate: float
    fpr_ci: tuple[float, float]
    """Clopper-Pearson 95 % interval of the rate."""
    ks_statistic: float
    ks_p_value: float
    """Kolmogorov-Smirnov test of the p-values against Uniform(0, 1)."""
    p_value_histogram: tuple[int, ...]
    """Counts of p-values in ten equal bins of [0, 1]."""

    @property
    def passed(self) -> bool:
        low, high = FPR_RANGE
        return low <= self.false_positive_rate <= high and self.ks_p_value >= 0.001


@dataclass(frozen=True)
class AAResult:
    iterations: int
    users: int
    alpha: float
    salt_prefix: str
    control_share: float
    metrics: tuple[MetricAA, ...]
    control_users: tuple[int, ...]
    """Users the bucket function put in the pseudo-control arm, per salt."""

    @property
    def primary(self) -> MetricAA:
        return next(m for m in self.metrics if m.metric == PRIMARY)

    @property
    def passed(self) -> bool:
        """The primary metric's rate and uniformity; the others are reported beside it."""
        return self.primary.passed


def bucket_array(salt: str, encoded_ids: list[bytes]) -> NDArray[np.uint64]:
    """``experiment.assignment.bucket`` for many users at once: the first 8 bytes of
    ``sha256(f"{salt}:{user_id}")`` as big-endian integers, modulo 10,000 (SPEC.md), with
    the digests read by numpy instead of one ``int.from_bytes`` per user.

    >>> bucket_array("feed-ab-2026", [b"1", b"7", b"42"]).tolist()
    [7047, 4000, 8625]
    """
    prefix = f"{salt}:".encode()
    digests = b"".join(hashlib.sha256(prefix + user).digest()[:8] for user in encoded_ids)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64) % np.uint64(BUCKETS)


def _product_matrix(users: UserTable) -> tuple[list[str], NDArray[np.float64]]:
    """Per-user values of every moment term, so that arm sums are one matrix product."""
    cols = {c: users.column(c).astype(np.float64) for c in COLUMNS}
    names, columns = [], []
    for term in moment_terms():
        names.append(moment_name(term))
        if not term:
            columns.append(np.ones(users.user_id.size))
        elif len(term) == 1:
            columns.append(cols[term[0]])
        else:
            columns.append(cols[term[0]] * cols[term[1]])
    return names, np.column_stack(columns)


def _test(
    stat_c: AdjustedMean | AdjustedRatio, stat_t: AdjustedMean | AdjustedRatio, alpha: float
) -> EffectResult:
    if isinstance(stat_c, AdjustedRatio) and isinstance(stat_t, AdjustedRatio):
        return DeltaMethodTest(stat_c.metric, stat_t.metric, alpha).compute()
    if not (isinstance(stat_c, AdjustedMean) and isinstance(stat_t, AdjustedMean)):
        raise TypeError("both arms need the same kind of statistics")
    return WelchTTest(stat_c.metric, stat_t.metric, alpha).compute()


def aa_resalt(
    users: UserTable,
    *,
    iterations: int = 500,
    alpha: float = 0.05,
    control_share: float = 0.5,
    salt_prefix: str = "aa",
    chunk: int = 50,
    progress: Callable[[int], object] | None = None,
) -> AAResult:
    """Re-split ``users`` by the experiment bucket function under ``iterations`` new salts
    (``{salt_prefix}-{i}``) and test every metric between the two pseudo-arms.

    With no real difference between pseudo-arms, a calibrated test rejects at rate alpha
    and its p-values are uniform (Kohavi, Tang & Xu 2020, ch. 19, A/A tests).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if not 0 < control_share < 1:
        raise ValueError(f"control_share must lie in (0, 1), got {control_share}")
    names, products = _product_matrix(users)
    total = products.sum(axis=0)
    threshold = round(control_share * BUCKETS)
    ids = users.user_id.tolist()
    encoded = [str(u).encode() for u in ids]
    p_values: dict[str, list[float]] = {m.name: [] for m in METRICS}
    control_users: list[int] = []
    for start in range(0, iterations, chunk):
        count = min(chunk, iterations - start)
        in_control = np.empty((count, len(ids)), dtype=np.float64)
        for row in range(count):
            salt = f"{salt_prefix}-{start + row}"
            buckets = bucket_array(salt, encoded)
            # the same function as experiment.assignment.bucket, only batched
            if ids and buckets[0] != bucket(salt, ids[0]):  # pragma: no cover
                raise RuntimeError("bucket_array disagrees with experiment.assignment.bucket")
            in_control[row] = buckets < threshold
        control_sums = in_control @ products
        control_users += in_control.sum(axis=1).astype(int).tolist()
        for sums_c in control_sums:
            arm_c = ArmStats.from_moments("control", dict(zip(names, sums_c, strict=True)))
            arm_t = ArmStats.from_moments("test", dict(zip(names, total - sums_c, strict=True)))
            for m in METRICS:
                result = _test(arm_c.metrics[m.name], arm_t.metrics[m.name], alpha)
                if result.ok:
                    p_values[m.name].append(result.p_value)
        if progress is not None:
            progress(count)
    return AAResult(
        iterations=iterations,
        users=len(ids),
        alpha=alpha,
        salt_prefix=salt_prefix,
        control_share=control_share,
        metrics=tuple(_summary(m.name, np.array(p_values[m.name]), alpha) for m in METRICS),
        control_users=tuple(control_users),
    )


def _summary(metric: str, p: NDArray[np.float64], alpha: float) -> MetricAA:
    if p.size == 0:
        nan = math.nan
        return MetricAA(metric, 0, 0, nan, (nan, nan), nan, nan, (0,) * 10)
    positives = int((p < alpha).sum())
    ci = stats.binomtest(positives, p.size).proportion_ci(method="exact")
    ks = stats.kstest(p, "uniform")
    histogram = np.histogram(p, bins=10, range=(0.0, 1.0))[0]
    return MetricAA(
        metric=metric,
        tests=int(p.size),
        false_positives=positives,
        false_positive_rate=positives / p.size,
        fpr_ci=(float(ci.low), float(ci.high)),
        ks_statistic=float(ks.statistic),
        ks_p_value=float(ks.pvalue),
        p_value_histogram=tuple(int(v) for v in histogram),
    )


@dataclass(frozen=True)
class CoverageResult:
    """How often the intervals covered the planted truth."""

    experiments: int
    users_per_experiment: int
    lift: float
    alpha: float
    ratio_coverage: float
    """hitrate-like ratio metric, delta method, absolute difference."""
    ratio_relative_coverage: float
    mean_coverage: float
    """likes-per-user-like mean metric, Welch t-test, absolute difference."""
    mean_relative_coverage: float

    @property
    def passed(self) -> bool:
        low, high = COVERAGE_RANGE
        values = (
            self.ratio_coverage,
            self.ratio_relative_coverage,
            self.mean_coverage,
            self.mean_relative_coverage,
        )
        return all(low <= v <= high for v in values)


def coverage_simulation(
    *,
    experiments: int = 400,
    users: int = 2_000,
    lift: float = 0.1,
    alpha: float = 0.05,
    seed: int = 0,
) -> CoverageResult:
    """Simulate ``experiments`` experiments with a planted relative ``lift`` and count how
    often the intervals hold the truth. Vectorised over experiments x users.

    Users have a like propensity p ~ Beta(2, 12) and exposures 1 + Poisson(Gamma(1, 3));
    hits ~ Binomial(exposures, p (1 + lift) in test); likes ~ Poisson(4 p (1 + lift)).
    The true hitrate is E[p](1 + lift) per exposure, the true likes per user 4 E[p](1 + lift).
    """
    rng = np.random.default_rng(seed)
    a, b = 2.0, 12.0
    mean_p = a / (a + b)
    shape = (experiments, users)
    test = rng.random(shape) < 0.5
    factor = np.where(test, 1 + lift, 1.0)
    propensity = rng.beta(a, b, size=shape)
    exposures = 1 + rng.poisson(rng.gamma(1.0, 3.0, size=shape))
    hits = rng.binomial(exposures, propensity * factor)
    likes = rng.poisson(4 * propensity * factor)
    truths = {
        "ratio": (mean_p * lift, lift),
        "mean": (4 * mean_p * lift, lift),
    }
    covered = {
        key: np.zeros(experiments, dtype=bool) for key in ("ratio", "ratio_rel", "mean", "mean_rel")
    }

    def arm_sums(values: NDArray, mask: NDArray) -> NDArray[np.float64]:
        return np.where(mask, values, 0).sum(axis=1).astype(np.float64)

    sums = {}
    for arm, mask in (("control", ~test), ("test", test)):
        sums[arm] = {
            "n": mask.sum(axis=1),
            "h": arm_sums(hits, mask),
            "hh": arm_sums(hits * hits, mask),
            "e": arm_sums(exposures, mask),
            "ee": arm_sums(exposures * exposures, mask),
            "he": arm_sums(hits * exposures, mask),
            "l": arm_sums(likes, mask),
            "ll": arm_sums(likes * likes, mask),
        }
    for i in range(experiments):
        c, t = sums["control"], sums["test"]
        ratio = DeltaMethodTest(
            SampleRatio(int(c["n"][i]), c["h"][i], c["hh"][i], c["e"][i], c["ee"][i], c["he"][i]),
            SampleRatio(int(t["n"][i]), t["h"][i], t["hh"][i], t["e"][i], t["ee"][i], t["he"][i]),
            alpha,
        ).compute()
        mean = WelchTTest(
            SampleMean(int(c["n"][i]), c["l"][i], c["ll"][i]),
            SampleMean(int(t["n"][i]), t["l"][i], t["ll"][i]),
            alpha,
        ).compute()
        for key, result in (("ratio", ratio), ("mean", mean)):
            absolute, relative = truths[key]
            covered[key][i] = result.absolute_ci[0] <= absolute <= result.absolute_ci[1]
            covered[f"{key}_rel"][i] = result.relative_ci[0] <= relative <= result.relative_ci[1]
    return CoverageResult(
        experiments=experiments,
        users_per_experiment=users,
        lift=lift,
        alpha=alpha,
        ratio_coverage=float(covered["ratio"].mean()),
        ratio_relative_coverage=float(covered["ratio_rel"].mean()),
        mean_coverage=float(covered["mean"].mean()),
        mean_relative_coverage=float(covered["mean_rel"].mean()),
    )
