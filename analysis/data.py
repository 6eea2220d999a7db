"""What an input (log files or the database) hands to the analysis: per-arm sufficient
statistics, the daily statistics of the primary metric, the health facts, and optionally
the per-user rows (for the bootstrap, Mann-Whitney and the likes histogram).

Per-user columns, all integer counts:

- ``exposures``: recommendation events shown to the user;
- ``hits``: events followed by a like of a shown post within the window;
- ``shown``: posts shown (at most k per event); ``liked_shown``: of those, liked within the
  window of their event;
- ``likes``: every like of the user from the first exposure to the end of the experiment;
  ``liked``: 1 when ``likes`` > 0;
- ``pre_likes``: likes before the user's first exposure (the CUPED covariate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from analysis.sufficient import AdjustedMean, AdjustedRatio, SampleMean, SampleRatio

COLUMNS = ("exposures", "hits", "shown", "liked_shown", "likes", "liked", "pre_likes")
COVARIATE = "pre_likes"


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: a ratio of per-user sums, or a per-user mean (no denominator)."""

    name: str
    numerator: str
    denominator: str | None
    description: str

    @property
    def is_ratio(self) -> bool:
        return self.denominator is not None

    def label(self, k: int) -> str:
        return f"hitrate@{k}" if self.name == "hitrate" else self.name.replace("_", " ")


METRICS = (
    MetricSpec("hitrate", "hits", "exposures", "exposures followed by a like of a shown post"),
    MetricSpec("ctr", "liked_shown", "shown", "shown posts liked within the window"),
    MetricSpec("likes_per_user", "likes", None, "likes per user during the experiment"),
    MetricSpec("like_share", "liked", None, "share of users with at least one like"),
)
PRIMARY = "hitrate"


def moment_terms() -> tuple[tuple[str, ...], ...]:
    """The sums every arm needs: () is the user count, (c,) a column's sum, (c, d) the sum
    of a product. SQL and numpy both compute exactly these."""
    terms: dict[tuple[str, ...], None] = {(): None}
    for m in METRICS:
        cols = [m.numerator] + ([m.denominator] if m.denominator else [])
        for i, a in enumerate(cols):
            terms[(a,)] = None
            terms[(a, COVARIATE)] = None
            for b in cols[i:]:
                terms[(a, b)] = None
    terms[(COVARIATE,)] = None
    terms[(COVARIATE, COVARIATE)] = None
    return tuple(terms)


def moment_name(term: tuple[str, ...]) -> str:
    return "n" if not term else "sum_" + "_x_".join(term)


@dataclass(frozen=True, eq=False)
class UserTable:
    """One row per analysed user (crossover users already removed)."""

    user_id: NDArray[np.int64]
    arm: NDArray[np.int64]
    """Index into ``arms``."""
    arms: tuple[str, ...]
    exposures: NDArray[np.int64]
    hits: NDArray[np.int64]
    shown: NDArray[np.int64]
    liked_shown: NDArray[np.int64]
    likes: NDArray[np.int64]
    pre_likes: NDArray[np.int64]

    @property
    def liked(self) -> NDArray[np.int64]:
        return (self.likes > 0).astype(np.int64)

    def column(self, name: str) -> NDArray[np.int64]:
        if name not in COLUMNS:
            raise KeyError(f"no per-user column {name!r}; columns are {', '.join(COLUMNS)}")
        return np.asarray(getattr(self, name))

    def matrix(self, arm: str) -> NDArray[np.int64]:
        """The arm's users x COLUMNS."""
        mask = self.arm == self.arms.index(arm)
        return np.column_stack([self.column(c)[mask] for c in COLUMNS])

    def moments(self) -> dict[str, dict[str, float]]:
        """Per arm, every sum of ``moment_terms()``."""
        out: dict[str, dict[str, float]] = {}
        for index, arm in enumerate(self.arms):
            mask = self.arm == index
            cols = {c: self.column(c)[mask].astype(np.float64) for c in COLUMNS}
            sums = {}
            for term in moment_terms():
                if not term:
                    sums["n"] = float(mask.sum())
                elif len(term) == 1:
                    sums[moment_name(term)] = float(cols[term[0]].sum())
                else:
                    sums[moment_name(term)] = float(np.dot(cols[term[0]], cols[term[1]]))
            out[arm] = sums
        return out


@dataclass(frozen=True)
class ArmStats:
    """One arm's sufficient statistics for every metric, covariate included."""

    arm: str
    users: int
    metrics: Mapping[str, AdjustedMean | AdjustedRatio]

    @classmethod
    def from_moments(cls, arm: str, sums: Mapping[str, float]) -> ArmStats:
        def s(*term: str) -> float:
            return float(sums.get(moment_name(term), 0.0))

        n = int(sums.get("n", 0))
        covariate = SampleMean(n, s(COVARIATE), s(COVARIATE, COVARIATE))
        metrics: dict[str, AdjustedMean | AdjustedRatio] = {}
        for m in METRICS:
            y = m.numerator
            if m.denominator is None:
                metrics[m.name] = AdjustedMean(
                    SampleMean(n, s(y), s(y, y)), covariate, s(y, COVARIATE)
                )
            else:
                x = m.denominator
                ratio = SampleRatio(n, s(y), s(y, y), s(x), s(x, x), s(y, x))
                metrics[m.name] = AdjustedRatio(ratio, covariate, s(y, COVARIATE), s(x, COVARIATE))
        return cls(arm=arm, users=n, metrics=metrics)


@dataclass(frozen=True)
class DailyStats:
    """The primary metric of one arm over the users exposed on one UTC day."""

    day: str
    arm: str
    stat: SampleRatio


@dataclass(frozen=True, eq=False)
class ExperimentData:
    """Everything the analysis reads, from whichever input."""

    source: str
    experiment: str
    arms: tuple[str, ...]
    arm_stats: Mapping[str, ArmStats]
    daily: tuple[DailyStats, ...]
    crossover_users: tuple[int, ...]
    users_seen: int
    """Users with an exposure, crossover users included."""
    exposures: int
    """Exposures analysed (crossover users' excluded)."""
    likes: int
    """Likes of the analysed users counted in the metrics or as the covariate."""
    time_range: tuple[int, int] | None
    """First and last analysed exposure, epoch seconds."""
    users: UserTable | None = None


def order_arms(labels: list[str]) -> tuple[str, ...]:
    """Control first (an arm named control, else the smallest label), then the rest.

    >>> order_arms(["test", "control"]), order_arms(["1", "0"])
    (('control', 'test'), ('0', '1'))
    """
    labels = sorted(set(labels), key=lambda a: (a != "control", _natural(a)))
    return tuple(labels)


def _natural(label: str) -> tuple[int, int | str]:
    return (0, int(label)) if label.lstrip("-").isdigit() else (1, label)
