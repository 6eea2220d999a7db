"""The whole analysis of one experiment: health checks first, then every metric's tests,
power, the daily effect and the verdict, as one frozen ``Report``."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import feedlab
from analysis.bootstrap import BootstrapResult, PoissonBootstrap
from analysis.data import COLUMNS, METRICS, PRIMARY, ArmStats, ExperimentData, MetricSpec
from analysis.health import (
    CrossoverResult,
    LiftCheckResult,
    MinimumSampleResult,
    SampleRatioCheck,
    SampleRatioResult,
    crossover_result,
)
from analysis.inference import (
    NAN_PAIR,
    CupedDeltaTest,
    CupedTTest,
    DeltaMethodTest,
    EffectResult,
    MannWhitneyTest,
    RankTestResult,
    WelchTTest,
    holm,
)
from analysis.power import PowerAnalysis, PowerResult
from analysis.sufficient import AdjustedMean, AdjustedRatio

HISTOGRAM_BINS = 11
"""Likes per user: 0, 1, ..., 9 and 10 or more."""


@dataclass(frozen=True)
class AnalysisConfig:
    """How to analyse: the metric definition, the test level and the health limits."""

    k: int = 5
    window_s: int = 3600
    alpha: float = 0.05
    weights: Mapping[str, float] | None = None
    """Configured arm weights for the sample-ratio check; None: equal weights."""
    min_users_per_arm: int = 1000
    max_plausible_lift: float = 0.3
    """Relative lifts of the primary metric beyond this are flagged (Twyman's law)."""
    lift: float = 0.03
    """The relative lift the sample size is computed for."""
    target_power: float = 0.8
    bootstrap_replicates: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.k < 1 or self.window_s < 0:
            raise ValueError(f"k must be >= 1 and window >= 0, got {self.k}, {self.window_s}")


@dataclass(frozen=True)
class ArmValue:
    """One arm's value of a metric with its own confidence interval."""

    arm: str
    users: int
    value: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class MetricResult:
    name: str
    label: str
    description: str
    ratio: bool
    arms: tuple[ArmValue, ...]
    effect: EffectResult
    """Welch t-test (per-user means) or delta method (ratios), unadjusted."""
    cuped: EffectResult | None
    """The same with the pre-experiment covariate; None when there is no pre-period data."""
    bootstrap: BootstrapResult | None
    mann_whitney: RankTestResult | None
    p_value_holm: float = math.nan

    @property
    def headline(self) -> EffectResult:
        """CUPED when it ran, else the unadjusted test: the numbers the verdict uses."""
        return self.cuped if self.cuped is not None and self.cuped.ok else self.effect


@dataclass(frozen=True)
class DailyEffect:
    day: str
    effect: EffectResult


@dataclass(frozen=True)
class Health:
    srm: SampleRatioResult
    crossover: CrossoverResult
    minimum_sample: MinimumSampleResult
    lift: LiftCheckResult

    def problems(self) -> list[str]:
        """Plain-words reasons not to trust the result; empty when every check passed."""
        out = []
        if self.srm.reason is not None:
            out.append(f"sample ratio not checked ({self.srm.reason})")
        elif not self.srm.passed:
            out.append(f"sample ratio mismatch (p = {self.srm.p_value:.2g})")
        if not self.minimum_sample.passed:
            arms = ", ".join(self.minimum_sample.short_arms)
            out.append(f"fewer than {self.minimum_sample.minimum:,} users in {arms}")
        if not self.lift.passed:
            out.append(
                f"implausibly large lift ({self.lift.relative:+.1%}, limit "
                f"±{self.lift.limit:.0%}): check the logging"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.problems()


@dataclass(frozen=True)
class Verdict:
    decision: str
    """ship, keep control, keep running, investigate or no verdict."""
    text: str


@dataclass(frozen=True)
class ReportInputs:
    source: str
    experiment: str
    arms: tuple[str, ...]
    weights: tuple[float, ...]
    k: int
    window_s: int
    alpha: float
    time_range: tuple[str, str] | None
    users_seen: int
    users_analysed: int
    exposures: int
    likes: int
    config: AnalysisConfig
    code_version: str
    generated_at: str


@dataclass(frozen=True)
class Report:
    inputs: ReportInputs
    verdict: Verdict
    health: Health
    metrics: tuple[MetricResult, ...]
    power: PowerResult
    daily: tuple[DailyEffect, ...]
    likes_histogram: Mapping[str, tuple[float, ...]] | None = field(default=None)
    """Per arm, the share of users with 0, 1, ..., 9 and 10+ likes."""

    def metric(self, name: str) -> MetricResult:
        return next(m for m in self.metrics if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (NaN and infinities become null)."""
        out = asdict(self)
        out["health"]["passed"] = self.health.passed
        out["health"]["problems"] = self.health.problems()
        for key in ("srm", "crossover", "minimum_sample", "lift"):
            out["health"][key]["passed"] = getattr(self.health, key).passed
        for metric, obj in zip(out["metrics"], self.metrics, strict=True):
            metric["primary"] = obj.name == PRIMARY
            metric["headline"] = asdict(obj.headline)
        return _jsonable(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def code_version() -> str:
    """feedlab's version and, inside a git checkout, the commit (``-dirty`` if edited)."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return feedlab.__version__
    commit = out.stdout.strip()
    return (
        f"{feedlab.__version__}+{commit}" if out.returncode == 0 and commit else feedlab.__version__
    )


def analyse(data: ExperimentData, config: AnalysisConfig | None = None) -> Report:
    """Health checks, every metric's tests, power, the daily effect and the verdict."""
    config = config or AnalysisConfig()
    arms = data.arms
    control, test = _two_arms(arms, config.weights)
    weights = dict(config.weights or dict.fromkeys((control, test, *arms), 1.0))
    counts = {arm: data.arm_stats[arm].users for arm in arms}
    health_arms = tuple(weights)
    srm = (
        SampleRatioCheck(counts, weights).compute()
        if set(arms) <= set(weights)
        else (
            SampleRatioResult(
                health_arms,
                (),
                (),
                reason=f"arms {sorted(set(arms) - set(weights))} have no weight",
            )
        )
    )
    metrics = _metrics(data, config, control, test)
    primary = next(m for m in metrics if m.name == PRIMARY)
    health = Health(
        srm=srm,
        crossover=crossover_result(data.crossover_users, data.users_seen),
        minimum_sample=MinimumSampleResult(
            config.min_users_per_arm,
            tuple(counts.get(arm, 0) for arm in (control, test)),
            (control, test),
        ),
        lift=LiftCheckResult(primary.headline.relative, config.max_plausible_lift),
    )
    power = _power(data, config, control, test)
    inputs = ReportInputs(
        source=data.source,
        experiment=data.experiment,
        arms=(control, test),
        weights=tuple(weights.get(a, math.nan) for a in (control, test)),
        k=config.k,
        window_s=config.window_s,
        alpha=config.alpha,
        time_range=_iso_range(data.time_range),
        users_seen=data.users_seen,
        users_analysed=sum(counts.values()),
        exposures=data.exposures,
        likes=data.likes,
        config=config,
        code_version=code_version(),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return Report(
        inputs=inputs,
        verdict=verdict(primary, health, power, config, test),
        health=health,
        metrics=metrics,
        power=power,
        daily=_daily(data, config, control, test),
        likes_histogram=_histogram(data),
    )


def _two_arms(arms: tuple[str, ...], weights: Mapping[str, float] | None) -> tuple[str, str]:
    """Control and test: the configured order when weights are given, else the data's."""
    names = list(dict.fromkeys([*(weights or {}), *arms, "control", "test"]))
    return names[0], names[1]


def _iso_range(time_range: tuple[int, int] | None) -> tuple[str, str] | None:
    if time_range is None:
        return None
    return (
        datetime.fromtimestamp(time_range[0], UTC).isoformat(),
        datetime.fromtimestamp(time_range[1], UTC).isoformat(),
    )


def _arm_metric(data: ExperimentData, arm: str, name: str) -> AdjustedMean | AdjustedRatio:
    """The arm's statistics; an arm without users gets all-zero sums (tests say why)."""
    arm_stats = data.arm_stats.get(arm) or ArmStats.from_moments(arm, {})
    return arm_stats.metrics[name]


def _metrics(
    data: ExperimentData, config: AnalysisConfig, control: str, test: str
) -> tuple[MetricResult, ...]:
    z = float(stats.norm.ppf(1 - config.alpha / 2))
    boot = _bootstrap(data, config, control, test)
    has_covariate = any(s.metrics[PRIMARY].covariate.sum > 0 for s in data.arm_stats.values())
    results = []
    for spec in METRICS:
        c, t = (_arm_metric(data, arm, spec.name) for arm in (control, test))
        effect: EffectResult
        cuped: EffectResult | None = None
        if isinstance(c, AdjustedRatio) and isinstance(t, AdjustedRatio):
            effect = DeltaMethodTest(c.metric, t.metric, config.alpha).compute()
            if has_covariate:
                cuped = CupedDeltaTest(c, t, config.alpha).compute()
        elif isinstance(c, AdjustedMean) and isinstance(t, AdjustedMean):
            effect = WelchTTest(c.metric, t.metric, config.alpha).compute()
            if has_covariate:
                cuped = CupedTTest(c, t, config.alpha).compute()
        else:  # pragma: no cover - ArmStats builds both arms alike
            raise TypeError(f"mixed statistics for {spec.name}")
        arms = tuple(
            ArmValue(
                arm,
                stat.n,
                stat.metric.mean,
                _interval(stat.metric.mean, stat.metric.estimate_variance, z),
            )
            for arm, stat in ((control, c), (test, t))
        )
        results.append(
            MetricResult(
                name=spec.name,
                label=spec.label(config.k),
                description=spec.description,
                ratio=spec.is_ratio,
                arms=arms,
                effect=effect,
                cuped=cuped,
                bootstrap=boot.get(spec.name),
                mann_whitney=_mann_whitney(data, spec, control, test),
            )
        )
    adjusted = holm([m.headline.p_value for m in results])
    return tuple(
        MetricResult(**{**m.__dict__, "p_value_holm": p})
        for m, p in zip(results, adjusted, strict=True)
    )


def _interval(mean: float, variance: float, z: float) -> tuple[float, float]:
    if not (math.isfinite(mean) and math.isfinite(variance)):
        return NAN_PAIR
    half = z * math.sqrt(variance)
    return (mean - half, mean + half)


def _bootstrap(
    data: ExperimentData, config: AnalysisConfig, control: str, test: str
) -> dict[str, BootstrapResult]:
    users = data.users
    if users is None or config.bootstrap_replicates < 2:
        return {}
    if control not in users.arms or test not in users.arms:
        reason = "an arm has no users"
        return {
            m.name: BootstrapResult(config.bootstrap_replicates, config.seed, reason=reason)
            for m in METRICS
        }
    index = {c: i for i, c in enumerate(COLUMNS)}
    specs = {
        m.name: (index[m.numerator], None if m.denominator is None else index[m.denominator])
        for m in METRICS
    }
    return PoissonBootstrap(
        users.matrix(control),
        users.matrix(test),
        specs,
        replicates=config.bootstrap_replicates,
        seed=config.seed,
        alpha=config.alpha,
    ).compute()


def _mann_whitney(
    data: ExperimentData, spec: MetricSpec, control: str, test: str
) -> RankTestResult | None:
    users = data.users
    if users is None:
        return None
    values = []
    for arm in (control, test):
        mask = users.arm == (users.arms.index(arm) if arm in users.arms else -1)
        y = users.column(spec.numerator)[mask].astype(np.float64)
        if spec.denominator is not None:
            x = users.column(spec.denominator)[mask]
            y = y[x > 0] / x[x > 0]
        values.append(y)
    return MannWhitneyTest(values[0], values[1]).compute()


def _power(data: ExperimentData, config: AnalysisConfig, control: str, test: str) -> PowerResult:
    c, t = (_arm_metric(data, arm, PRIMARY).metric for arm in (control, test))
    analysis = PowerAnalysis(
        control_variance=c.variance if c.n >= 2 else math.nan,
        test_variance=t.variance if t.n >= 2 else math.nan,
        control_n=c.n,
        test_n=t.n,
        baseline=c.mean,
        alpha=config.alpha,
        target_power=config.target_power,
    )
    return analysis.compute(config.lift)


def _daily(
    data: ExperimentData, config: AnalysisConfig, control: str, test: str
) -> tuple[DailyEffect, ...]:
    by_day: dict[str, dict[str, Any]] = {}
    for row in data.daily:
        by_day.setdefault(row.day, {})[row.arm] = row.stat
    out = []
    for day in sorted(by_day):
        arms = by_day[day]
        if control in arms and test in arms:
            effect = DeltaMethodTest(arms[control], arms[test], config.alpha).compute()
        else:
            missing = control if control not in arms else test
            effect = EffectResult(
                "delta method", config.alpha, reason=f"no {missing} users that day"
            )
        out.append(DailyEffect(day, effect))
    return tuple(out)


def _histogram(data: ExperimentData) -> dict[str, tuple[float, ...]] | None:
    users = data.users
    if users is None:
        return None
    out = {}
    for index, arm in enumerate(users.arms):
        likes = users.likes[users.arm == index]
        counts = np.bincount(np.minimum(likes, HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)
        out[arm] = tuple(float(v) for v in counts / max(likes.size, 1))
    return out


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def verdict(
    primary: MetricResult, health: Health, power: PowerResult, config: AnalysisConfig, test: str
) -> Verdict:
    """The product manager's sentence: what changed, how sure, whether to ship."""
    e, label = primary.headline, primary.label
    if not e.ok:
        return Verdict("no verdict", f"no verdict on {label}: {e.reason}")
    p = primary.p_value_holm
    level = f"{1 - config.alpha:.0%}".replace("%", " %")
    if math.isfinite(e.relative):
        lo, hi = e.relative_ci
        verb = "raised" if e.relative > 0 else "lowered" if e.relative < 0 else "did not change"
        interval = f"({level} CI {_percent(lo)} to {_percent(hi)})"
        change = f"{test} {verb} {label} by {_percent(abs(e.relative))} {interval}"
    else:
        lo, hi = e.absolute_ci
        change = f"{test} changed {label} by {e.absolute:+.4g} ({level} CI {lo:.4g} to {hi:.4g})"
    significant = p < config.alpha
    sig = "significant" if significant else f"not significant (p = {p:.2f})"
    problems = health.problems()
    if problems:
        return Verdict(
            "investigate",
            f"{change}, {sig}; health checks failed: {'; '.join(problems)}; "
            "recommendation: do not act on this result, investigate the failed checks",
        )
    checks = "health checks passed"
    if significant and e.absolute > 0:
        return Verdict("ship", f"{change}, significant; {checks}; recommendation: ship")
    if significant:
        return Verdict(
            "keep control",
            f"{change}, significant; {checks}; recommendation: do not ship, keep control",
        )
    if power.reason is None and power.power_at_lift < config.target_power:
        needed = math.ceil(max(power.control_users_needed, power.test_users_needed))
        return Verdict(
            "keep running",
            f"{change}, {sig}; {checks}; recommendation: keep running: a "
            f"{_percent(config.lift)} lift needs about {needed:,} users per arm "
            f"(now {min(power.control_n, power.test_n):,})",
        )
    detectable = (
        ""
        if power.reason
        else f" (it could detect changes of {_percent(power.mde_relative)} or more)"
    )
    return Verdict(
        "keep control", f"{change}, {sig}; {checks}; recommendation: keep control{detectable}"
    )
