"""Simulated feed traffic: who visits when, and which shown posts they like.

Plain data only; ``feedlab simulate`` sends the visits to the service over HTTP. Two
sources of behaviour:

* :class:`TruthLikes`: the synthetic network's hidden ground truth decides likes
  (``like_probability``), times a planted effect per arm;
* :class:`ReplayLikes`: real data; a shown post counts as liked when the user really liked
  it within the window after the request.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from feeddata.sources.synthetic_truth import GroundTruth, like_probability

DAY = 86_400


@dataclass(frozen=True)
class Visit:
    """A request for recommendations by ``user_id`` at ``time`` (epoch seconds)."""

    user_id: int
    time: int

    @property
    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_day(
    *,
    day_start: int,
    user_ids: np.ndarray,
    visits_per_day: np.ndarray,
    hour_weights: np.ndarray,
    rng: np.random.Generator,
) -> list[Visit]:
    """One day's visits in time order: a Poisson number per user (mean
    ``visits_per_day``), each in an hour drawn from ``hour_weights`` (24, any scale).

    >>> rates, rng = np.array([3.0, 0.0]), np.random.default_rng(0)
    >>> visits = plan_day(day_start=0, user_ids=np.array([1, 2]), visits_per_day=rates,
    ...                   hour_weights=np.ones(24), rng=rng)
    >>> {v.user_id for v in visits}, all(0 <= v.time < 86_400 for v in visits)
    ({1}, True)
    """
    counts = rng.poisson(visits_per_day)
    users = np.repeat(user_ids, counts)
    hours = rng.choice(24, size=len(users), p=hour_weights / hour_weights.sum())
    seconds = day_start + hours * 3600 + rng.integers(0, 3600, size=len(users))
    order = np.argsort(seconds, kind="stable")
    return [Visit(int(u), int(t)) for u, t in zip(users[order], seconds[order], strict=True)]


def parse_effects(specs: list[str]) -> dict[str, float]:
    """``["test=1.2"]`` -> ``{"test": 1.2}``: like probability multipliers per arm.

    >>> parse_effects(["test=1.1", "control=1"])
    {'test': 1.1, 'control': 1.0}
    """
    effects: dict[str, float] = {}
    for spec in specs:
        arm, sep, factor = spec.partition("=")
        try:
            value = float(factor)
        except ValueError:
            value = math.nan
        if not sep or not arm or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"expected ARM=FACTOR with a factor >= 0 (e.g. test=1.1), got {spec!r}"
            )
        effects[arm] = value
    return effects


class TruthLikes:
    """Likes drawn from the synthetic ground truth, times ``effects[arm]`` (clipped to 1)."""

    def __init__(self, truth: GroundTruth, effects: Mapping[str, float] | None = None) -> None:
        self.truth = truth
        self.effects = dict(effects or {})

    def users(self) -> np.ndarray:
        return self.truth.user_ids

    def visits_per_day(self, user_ids: np.ndarray, mean: float) -> np.ndarray:
        """Per-user visit rates averaging ``mean``, proportional to each user's expected
        views per day times the share of days they show up."""
        rows = self.truth.user_index(user_ids)
        weight = self.truth.user_views_per_day[rows] * self.truth.user_active_share[rows]
        weight = weight.astype(np.float64)
        return mean * weight / weight.mean() if weight.mean() > 0 else np.full(len(rows), mean)

    def hour_weights(self) -> np.ndarray:
        return np.asarray(self.truth.hour_activity, dtype=np.float64)

    def liked(
        self, user_id: int, post_ids: np.ndarray, time: int, arm: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Which of ``post_ids``, shown at ``time`` from ``arm``, the user likes."""
        p = like_probability(self.truth, user_id, post_ids, time) * self.effects.get(arm, 1.0)
        return np.asarray(rng.random(len(post_ids)) < np.minimum(p, 1.0))


class ReplayLikes:
    """Likes replayed from real data: ``likes`` maps a user to (post ids, epoch times)."""

    def __init__(self, likes: Mapping[int, tuple[np.ndarray, np.ndarray]], window: int) -> None:
        self.likes = likes
        self.window = window

    def liked(self, user_id: int, post_ids: np.ndarray, time: int) -> np.ndarray:
        """Which of ``post_ids`` the user really liked within [time, time + window].

        >>> replay = ReplayLikes({7: (np.array([3, 5]), np.array([100, 9_000]))}, window=3600)
        >>> replay.liked(7, np.array([5, 3, 4]), 50).tolist()
        [False, True, False]
        """
        posts, times = self.likes.get(user_id, (np.empty(0, np.int64), np.empty(0, np.int64)))
        in_window = posts[(times >= time) & (times <= time + self.window)]
        return np.isin(post_ids, in_window)
