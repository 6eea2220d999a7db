"""One day of the synthetic feed: who shows up, when, what they view, and what they like.

Each day has its own random stream, so the rows never depend on how they are chunked. Days
are simulated in order because a user likes a post at most once (:class:`LikedPairs`).
"""

import datetime as dt

import numpy as np
import numpy.typing as npt
import pandas as pd

from feeddata.sources.synthetic_config import SyntheticConfig
from feeddata.sources.synthetic_truth import GroundTruth, sigmoid
from feeddata.sources.synthetic_world import STREAM_CALIBRATION, STREAM_DAYS, rng_for

POPULARITY_STRENGTH = 1.0  # popular draws weight posts by exp(strength * quality)
VIEWS_PER_SESSION = 8.0
SECONDS_BETWEEN_VIEWS = 40.0
LIKE_DELAY_MEDIAN_S = 20.0
LIKE_DELAY_MAX_S = 900
# Monday..Sunday: a little more traffic at the weekend
WEEKDAY_TRAFFIC = np.array([0.97, 0.96, 0.97, 0.98, 1.0, 1.07, 1.05])
WEEKDAY_TRAFFIC = WEEKDAY_TRAFFIC / WEEKDAY_TRAFFIC.mean()
ACTION_DTYPE = pd.CategoricalDtype(["view", "like"])  # codes 0 and 1


class PostSampler:
    """Draws the post of each view from the mix of random, popular and favourite-topic posts
    (the course's feed was random; ``config`` says how much of it is not)."""

    def __init__(self, truth: GroundTruth, config: SyntheticConfig) -> None:
        self.popular_share = config.feed_popular_share
        self.topical_share = config.feed_topical_share
        self.n_posts = len(truth.post_ids)
        popular = np.exp(POPULARITY_STRENGTH * truth.post_quality.astype(np.float64))
        self.popular_cdf = np.cumsum(popular) / popular.sum()
        self.by_topic = np.argsort(truth.post_topic, kind="stable")
        counts = np.bincount(truth.post_topic, minlength=len(truth.topics))
        self.topic_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.topic_count = counts
        taste = np.exp(truth.user_topic_affinity.astype(np.float64))
        self.user_topic_cdf = np.cumsum(taste, axis=1) / taste.sum(axis=1, keepdims=True)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Post rows (not ids) of one view per entry of ``users`` (user rows)."""
        n = len(users)
        mode = rng.random(n)
        posts = rng.integers(0, self.n_posts, size=n)
        popular = mode < self.popular_share
        posts[popular] = _draw(self.popular_cdf, rng.random(int(popular.sum())))
        topical = (mode >= self.popular_share) & (mode < self.popular_share + self.topical_share)
        who = users[topical]
        r = rng.random(len(who))
        topic = (self.user_topic_cdf[who] < r[:, None]).sum(axis=1)
        topic = np.minimum(topic, len(self.topic_count) - 1)
        within = (rng.random(len(who)) * self.topic_count[topic]).astype(np.int64)
        posts[topical] = self.by_topic[self.topic_start[topic] + within]
        return posts


def _draw(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, uniform), len(cdf) - 1)


def calibrate(truth: GroundTruth, config: SyntheticConfig, sample_size: int = 400_000) -> float:
    """The intercept at which the expected like rate of the generated views is
    ``config.like_rate``, found by bisection on a sample of views drawn like the feed's."""
    rng = rng_for(config, STREAM_CALIBRATION)
    weights = truth.user_views_per_day.astype(np.float64)
    users = _draw(np.cumsum(weights) / weights.sum(), rng.random(sample_size))
    posts = PostSampler(truth, config).sample(users, rng)
    hours = _draw(np.cumsum(truth.hour_activity), rng.random(sample_size))
    base = truth.with_intercept(0.0).logit_at(users, posts, hours)
    low, high = -15.0, 15.0
    for _ in range(60):
        middle = (low + high) / 2
        if sigmoid(base + middle).mean() < config.like_rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


class LikedPairs:
    """The (user, post) pairs liked so far: a user likes a post at most once."""

    def __init__(self, n_posts: int) -> None:
        self.n_posts = n_posts
        self.keys = np.empty(0, dtype=np.int64)  # user_row * n_posts + post_row, sorted

    def first_likes(self, users: np.ndarray, posts: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Which of these would-be likes are the user's first of the post; records them."""
        keys = users * self.n_posts + posts
        by_time = np.argsort(seconds, kind="stable")
        _, first = np.unique(keys[by_time], return_index=True)
        keep = np.zeros(len(keys), dtype=bool)
        keep[by_time[first]] = True
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            keep &= self.keys[at] != keys
        # two sorted runs: the stable sort (timsort) merges them in linear time
        self.keys = np.sort(np.concatenate([self.keys, np.sort(keys[keep])]), kind="stable")
        return keep


def simulate_day(
    truth: GroundTruth,
    sampler: PostSampler,
    liked_before: LikedPairs,
    config: SyntheticConfig,
    day: int,
) -> pd.DataFrame:
    """Feed rows of day ``day`` (0-based), sorted by time, views before their likes.

    Days must be simulated in order: ``liked_before`` carries the likes of earlier days.
    """
    rng = rng_for(config, STREAM_DAYS, day)
    date = config.start + dt.timedelta(days=day)
    n_users = len(truth.user_ids)
    active = rng.random(n_users) < truth.user_active_share
    rate = truth.user_views_per_day / truth.user_active_share * WEEKDAY_TRAFFIC[date.weekday()]
    counts = rng.poisson(rate) * active
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    seconds = _view_times(counts, users, truth, rng)
    posts = sampler.sample(users, rng)
    hours = seconds // 3600 % 24
    liked = rng.random(len(users)) < sigmoid(truth.logit_at(users, posts, hours))
    delay = rng.lognormal(np.log(LIKE_DELAY_MEDIAN_S), 1.0, size=int(liked.sum()))
    candidates = np.flatnonzero(liked)
    first = liked_before.first_likes(users[candidates], posts[candidates], seconds[candidates])
    liked[candidates[~first]] = False
    delay = np.clip(np.ceil(delay[first]), 1, LIKE_DELAY_MAX_S).astype(np.int64)
    n_likes = len(delay)
    day_start = int(pd.Timestamp(date).value // 1_000_000_000)
    time = np.concatenate([seconds, seconds[liked] + delay]) + day_start
    is_like: npt.NDArray[np.int8] = np.concatenate(
        [np.zeros(len(users), np.int8), np.ones(n_likes, np.int8)]
    )
    order = np.lexsort((is_like, time))
    return pd.DataFrame(
        {
            "timestamp": (time[order] * 1_000_000).astype("datetime64[us]"),
            "user_id": truth.user_ids[np.concatenate([users, users[liked]])[order]],
            "post_id": truth.post_ids[np.concatenate([posts, posts[liked]])[order]],
            "action": pd.Categorical.from_codes(is_like[order], dtype=ACTION_DTYPE),
            "target": np.concatenate([liked, np.zeros(n_likes, bool)])[order].astype(np.int64),
        }
    )


def _view_times(
    counts: np.ndarray, users: np.ndarray, truth: GroundTruth, rng: np.random.Generator
) -> np.ndarray:
    """Seconds after midnight of each view: views come in sessions that start by the
    hour-of-day curve, a few tens of seconds apart within a session."""
    n = len(users)
    extra = np.maximum(counts - 1, 0) / VIEWS_PER_SESSION
    sessions = np.minimum(1 + rng.poisson(extra), np.maximum(counts, 1)) * (counts > 0)
    first_session = np.cumsum(sessions) - sessions
    session = first_session[users] + (rng.random(n) * sessions[users]).astype(np.int64)
    n_sessions = int(sessions.sum())
    hour = _draw(np.cumsum(truth.hour_activity), rng.random(n_sessions))
    start = hour * 3600 + rng.integers(0, 3600, size=n_sessions)
    gaps = np.ceil(rng.exponential(SECONDS_BETWEEN_VIEWS, size=n)).astype(np.int64)
    order = np.argsort(session, kind="stable")
    sorted_session = session[order]
    elapsed = np.cumsum(gaps[order])
    first = np.searchsorted(sorted_session, sorted_session, side="left")
    offset = np.empty(n, dtype=np.int64)
    offset[order] = elapsed - elapsed[first]  # the session's first view is at its start
    return np.asarray(start[session] + offset)
