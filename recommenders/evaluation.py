"""Offline evaluation: hitrate@k on held-out requests, the protocol of SPEC.md.

- A split time T divides the feed; every recommender is fitted on events before T only.
- Requests are (user, time) pairs taken from view events at or after T: the first view of
  each user in each clock hour (so at most one per user per hour), then a seeded sample
  when there are more than asked for.
- A request is a hit when the user liked any recommended post in ``[t, t + window]``.
- At request time a recommender sees the likes before ``t`` only (:class:`LikeHistory`
  answers nothing else), including likes between T and t, as a live service would.
- The ceiling is the share of requests followed by any like within the window.
- Every recommender is compared with the reference (the first listed, unless named) on the
  same requests (:class:`PairedComparison`): the difference of hitrates with its 95%
  interval, the requests only one of the two hit, and the exact McNemar test on those. On
  a few hundred requests (ml-100k's 0.8 split leaves 775) the interval is several points
  wide, wider than the gaps between seeds of one model.
"""

import time as clock
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from feeddata.interactions import Interactions
from recommenders.base import Recommender, TrainingData, one_blas_thread
from recommenders.history import LikeHistory

HOUR = 3600


@dataclass(frozen=True)
class Requests:
    """Held-out requests, sorted by time."""

    user_id: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class RecommenderScore:
    hitrate: float
    hits: int
    coverage: float
    """Distinct posts recommended over catalogue size."""
    ms_per_request: float
    fit_s: float


@dataclass(frozen=True)
class PairedComparison:
    """A recommender against the reference on the same requests."""

    reference: str
    difference: float
    """Its hitrate minus the reference's."""
    ci95: tuple[float, float]
    """95% interval of the difference (normal, from the per-request paired differences)."""
    only_this: int
    """Requests this recommender hit and the reference missed..."""
    only_reference: int
    """...and the other way round."""
    p_value: float
    """Exact McNemar: how likely a split of the discordant requests at least this uneven is
    if either was equally likely to hit them (two-sided)."""


def compare_paired(
    hits: np.ndarray, reference_hits: np.ndarray, reference: str
) -> PairedComparison:
    """``hits`` against ``reference_hits`` (booleans, one per request, same requests).

    >>> c = compare_paired(np.array([1, 1, 1, 0] * 25), np.array([1, 0, 0, 0] * 25), "popular")
    >>> c.difference, c.only_this, c.only_reference, c.p_value < 1e-10
    (0.5, 50, 0, True)
    """
    a, b = np.asarray(hits, bool), np.asarray(reference_hits, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length vectors of hits, got {a.shape} and {b.shape}")
    diff = a.astype(float) - b
    n = len(diff)
    mean = float(diff.mean()) if n else 0.0
    half = 1.96 * float(diff.std(ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    only_this, only_reference = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_this + only_reference
    p = stats.binomtest(only_this, discordant).pvalue if discordant else 1.0
    return PairedComparison(
        reference, mean, (mean - half, mean + half), only_this, only_reference, float(p)
    )


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    window_s: int
    split_time: int
    requests: int
    ceiling: float
    recommenders: dict[str, RecommenderScore]
    comparisons: dict[str, PairedComparison]
    """Every recommender but the reference against it, by name."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_time_at_quantile(interactions: Interactions, quantile: float) -> int:
    """The view timestamp at ``quantile`` (0 < q < 1) of all views, in epoch seconds."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"split quantile must be strictly between 0 and 1, got {quantile}")
    views = interactions.timestamp[~interactions.is_like]
    if len(views) == 0:
        raise ValueError("there are no views to split")
    return int(np.quantile(views, quantile))


def sample_requests(
    interactions: Interactions, split_time: int, *, max_requests: int, seed: int = 0
) -> Requests:
    """First view per (user, clock hour) at or after ``split_time``; a seeded sample of at
    most ``max_requests`` of them.

    >>> events = Interactions.from_arrays(
    ...     [1, 1, 1, 2], [5, 6, 7, 5], [3600, 3700, 7300, 3650], [False] * 4)
    >>> r = sample_requests(events, 3600, max_requests=10)
    >>> list(zip(r.user_id.tolist(), r.time.tolist()))
    [(1, 3600), (2, 3650), (1, 7300)]
    """
    after = (interactions.timestamp >= split_time) & ~interactions.is_like
    users = interactions.user_id[after]
    times = interactions.timestamp[after]
    order = np.lexsort((times, users))
    users, times = users[order], times[order]
    hours = times // HOUR
    first = np.ones(len(users), dtype=bool)
    first[1:] = (users[1:] != users[:-1]) | (hours[1:] != hours[:-1])
    users, times = users[first], times[first]
    if len(users) > max_requests:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(users), size=max_requests, replace=False))
        users, times = users[pick], times[pick]
    by_time = np.argsort(times, kind="stable")
    return Requests(users[by_time], times[by_time])


def evaluate(
    interactions: Interactions,
    posts: pd.DataFrame,
    users: pd.DataFrame,
    recommenders: Mapping[str, Recommender],
    *,
    split_time: int,
    k: int = 5,
    window: int = HOUR,
    max_requests: int = 10_000,
    seed: int = 0,
    progress: bool = True,
    reference: str | None = None,
) -> EvaluationReport:
    """Fit each recommender on events before ``split_time``, score hitrate@k, and compare
    each with ``reference`` (default: the first) on the same requests."""
    if reference is None and recommenders:
        reference = next(iter(recommenders))
    if reference is not None and reference not in recommenders:
        raise ValueError(f"the reference {reference!r} is not among {sorted(recommenders)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if window < 0:
        raise ValueError(f"window must be non-negative, got {window}")
    requests = sample_requests(interactions, split_time, max_requests=max_requests, seed=seed)
    if len(requests) == 0:
        raise ValueError("no view events at or after the split time: choose an earlier split")
    history = LikeHistory(posts.index.to_numpy(), interactions.likes())
    liked_after = [
        history.liked_between(int(u), int(t), int(t) + window)
        for u, t in zip(requests.user_id, requests.time, strict=True)
    ]
    ceiling = float(np.mean([len(x) > 0 for x in liked_after]))
    training = TrainingData.cut(interactions, posts, users, split_time)
    scores: dict[str, RecommenderScore] = {}
    hits: dict[str, np.ndarray] = {}
    for name, recommender in recommenders.items():
        started = clock.perf_counter()
        recommender.fit(training)
        fit_s = clock.perf_counter() - started
        score, hits[name] = _score(name, recommender, requests, liked_after, history, k, progress)
        scores[name] = replace(score, fit_s=round(fit_s, 3))
    comparisons = {
        name: compare_paired(hit, hits[reference], reference)
        for name, hit in hits.items()
        if reference is not None and name != reference
    }
    return EvaluationReport(k, window, split_time, len(requests), ceiling, scores, comparisons)


def _score(
    name: str,
    recommender: Recommender,
    requests: Requests,
    liked_after: list[np.ndarray],
    history: LikeHistory,
    k: int,
    progress: bool,
) -> tuple[RecommenderScore, np.ndarray]:
    """The score, and whether each request was a hit."""
    hit = np.zeros(len(requests), bool)
    shown: set[int] = set()
    started = clock.perf_counter()
    pairs = zip(requests.user_id, requests.time, liked_after, strict=True)
    with one_blas_thread():  # timed as the service runs it
        for i, (user, at, future) in enumerate(
            tqdm(pairs, total=len(requests), desc=name, disable=not progress)
        ):
            recommended = history.post_index(recommender.recommend(int(user), int(at), k, history))
            shown.update(recommended.tolist())
            hit[i] = bool(np.intersect1d(recommended, future).size)
    elapsed = clock.perf_counter() - started
    score = RecommenderScore(
        hitrate=float(hit.mean()),
        hits=int(hit.sum()),
        coverage=len(shown) / max(history.n_posts, 1),
        ms_per_request=1000 * elapsed / len(requests),
        fit_s=0.0,
    )
    return score, hit
