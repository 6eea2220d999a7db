"""One day of the synthetic feed: who shows up, when, what the old feed showed, what was liked.

The logged feed was served by an old recommender (:class:`PostSampler`): each view shows a
post drawn from a mixture of a heavy-tailed popularity ranking that drifts as new posts
come out and old ones fade, a personalised draw from the user's favourite topics and
latent taste, and uniform exploration. Views come in sessions of several posts a few tens
of seconds apart, a few sessions a day on an hour-of-day curve.

Each day has its own random stream, so the rows never depend on how they are chunked. Days
are simulated in order because a user likes a post at most once (:class:`LikedPairs`), and
the old feed did not show a user a post they had already liked.
"""

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from feeddata.sources.synthetic_config import SyntheticConfig
from feeddata.sources.synthetic_truth import GroundTruth, sigmoid
from feeddata.sources.synthetic_world import STREAM_CALIBRATION, STREAM_DAYS, STREAM_FEED, rng_for

# The old feed's popularity ranking: posts ranked by appeal (part post quality, part luck),
# weight 1 / (rank + ZIPF_OFFSET) ** ZIPF_EXPONENT, times 1 + FRESHNESS_BOOST on the day a
# post comes out, the boost fading with e-folding time FRESHNESS_DAYS.
ZIPF_EXPONENT = 1.4
ZIPF_OFFSET = 3.0
APPEAL_QUALITY_CORRELATION = 0.8
FRESHNESS_BOOST = 2.0
FRESHNESS_DAYS = 7.0
PREHISTORY_DAYS = 60  # posts come out uniformly from this many days before the start
# The personalised draw: a topic by its popularity ** PERSONAL_POPULARITY mass times
# exp(TOPIC_FOCUS * affinity), then the best of TASTE_CANDIDATES posts of it drawn at random,
# by TASTE_FOCUS * latent match + PERSONAL_POPULARITY * log popularity + Gumbel noise.
TOPIC_FOCUS = 1.5
PERSONAL_POPULARITY = 0.3
TASTE_CANDIDATES = 32
TASTE_FOCUS = 4.0
PERSONAL_BLOCK = 16_384
RESHOW_RETRIES = 4  # redraws of a post the user liked before or already saw that day
CALIBRATION_DAYS = 12
CALIBRATION_USERS = 10_000
# GroundTruth arrays with a row per user
_USER_ARRAYS = (
    "user_ids",
    "user_bias",
    "user_topic_affinity",
    "user_factors",
    "user_views_per_day",
    "user_active_share",
)

# Sessions: 1 + negative binomial views (mean VIEWS_PER_SESSION), SECONDS_BETWEEN_VIEWS apart
VIEWS_PER_SESSION = 16.0
SESSION_DISPERSION = 2.0
MAX_SESSION_VIEWS = 150
SECONDS_BETWEEN_VIEWS = 25.0
MIN_SECONDS_BETWEEN_VIEWS = 2
DAY_SPILL_S = 300  # a late session may run this far past midnight, no further
LIKE_DELAY_MEDIAN_S = 20.0
LIKE_DELAY_MAX_S = 900
# Monday..Sunday: a little more traffic at the weekend
WEEKDAY_TRAFFIC = np.array([0.97, 0.96, 0.97, 0.98, 1.0, 1.07, 1.05])
WEEKDAY_TRAFFIC = WEEKDAY_TRAFFIC / WEEKDAY_TRAFFIC.mean()
ACTION_DTYPE = pd.CategoricalDtype(["view", "like"])  # codes 0 and 1


@dataclass(frozen=True)
class _FeedDay:
    """The old feed's state on one day."""

    live: np.ndarray  # rows of the posts out by this day, by topic
    live_start: np.ndarray  # where each topic's posts start in ``live``
    live_count: np.ndarray  # posts of each topic out by this day
    popular: np.ndarray  # popularity weight per post (0 for posts not out yet)
    popular_cdf: np.ndarray
    log_popular: np.ndarray  # log ``popular`` (-inf for posts not out yet)
    topic_log_mass: np.ndarray  # log sum of popular ** PERSONAL_POPULARITY per topic


class PostSampler:
    """The old recommender that served the logged feed.

    A view shows a post from one of three draws: with ``config.feed_popular_share`` the
    day's popularity ranking (Zipf over appeal, boosted while fresh), with
    ``config.feed_topical_share`` a personalised draw (favourite topics, then latent taste),
    otherwise a post out by then, uniformly at random.
    """

    def __init__(self, truth: GroundTruth, config: SyntheticConfig) -> None:
        self.truth = truth
        self.popular_share = config.feed_popular_share
        self.topical_share = config.feed_topical_share
        self.n_posts = len(truth.post_ids)
        rng = rng_for(config, STREAM_FEED)
        quality = truth.post_quality.astype(np.float64)
        z = (quality - quality.mean()) / max(float(quality.std()), 1e-9)
        rho = APPEAL_QUALITY_CORRELATION
        appeal = rho * z + np.sqrt(1 - rho**2) * rng.standard_normal(self.n_posts)
        rank = np.empty(self.n_posts)
        rank[np.argsort(-appeal, kind="stable")] = np.arange(self.n_posts)
        self.zipf = (rank + ZIPF_OFFSET) ** -ZIPF_EXPONENT
        # the day each post came out; at least one post is out from the first day
        self.published = np.floor(rng.uniform(-PREHISTORY_DAYS, config.days, self.n_posts))
        self.published[int(np.argmin(self.published))] = min(self.published.min(), 0.0)
        self.by_topic = np.argsort(truth.post_topic, kind="stable")
        counts = np.bincount(truth.post_topic, minlength=len(truth.topics))
        self.topic_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.topic_count = counts.astype(np.int64)
        self._cached: tuple[int, _FeedDay] | None = None

    def feed_day(self, day: int) -> _FeedDay:
        """The popularity ranking and the personal draw's weights of day ``day``."""
        if self._cached is not None and self._cached[0] == day:
            return self._cached[1]
        age = day - self.published
        out = age >= 0
        live = self.by_topic[out[self.by_topic]]
        live_count = np.bincount(self.truth.post_topic[live], minlength=len(self.topic_count))
        popular = np.zeros(self.n_posts)
        popular[live] = self.zipf[live] * (
            1 + FRESHNESS_BOOST * np.exp(-age[live] / FRESHNESS_DAYS)
        )
        mass = np.bincount(
            self.truth.post_topic, weights=popular**PERSONAL_POPULARITY, minlength=len(live_count)
        )
        with np.errstate(divide="ignore"):
            state = _FeedDay(
                live=live,
                live_start=(np.cumsum(live_count) - live_count).astype(np.int64),
                live_count=live_count.astype(np.int64),
                popular=popular,
                popular_cdf=np.cumsum(popular) / popular.sum(),
                log_popular=np.log(popular),
                topic_log_mass=np.log(mass),
            )
        self._cached = (day, state)
        return state

    def _topic_probabilities(self, state: _FeedDay, users: np.ndarray) -> np.ndarray:
        """P(topic) of the personal draw, (users, topics)."""
        affinity = self.truth.user_topic_affinity[users].astype(np.float64)
        logits = state.topic_log_mass + TOPIC_FOCUS * affinity
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return np.asarray(weights / weights.sum(axis=1, keepdims=True))

    def sample(self, users: np.ndarray, day: int, rng: np.random.Generator) -> np.ndarray:
        """Post rows (not ids) of one view per entry of ``users`` (user rows) on ``day``."""
        state = self.feed_day(day)
        n = len(users)
        mode = rng.random(n)
        posts = state.live[rng.integers(0, len(state.live), size=n)]
        popular = mode < self.popular_share
        posts[popular] = _draw(state.popular_cdf, rng.random(int(popular.sum())))
        topical = (mode >= self.popular_share) & (mode < self.popular_share + self.topical_share)
        posts[topical] = self._personal(state, users[topical], rng)
        return posts

    def _personal(self, state: _FeedDay, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_topics = len(self.topic_count)
        cdf = np.cumsum(self._topic_probabilities(state, users), axis=1)
        topic = np.minimum((cdf < rng.random(len(users))[:, None]).sum(axis=1), n_topics - 1)
        chosen = np.empty(len(users), dtype=np.int64)
        for first in range(0, len(users), PERSONAL_BLOCK):  # bounded memory
            part = slice(first, first + PERSONAL_BLOCK)
            shape = (len(topic[part]), TASTE_CANDIDATES)
            count = state.live_count[topic[part], None]
            within = rng.integers(0, np.maximum(count, 1), size=shape)
            at = np.minimum(state.live_start[topic[part], None] + within, len(state.live) - 1)
            candidates = state.live[at]
            factors = np.take(self.truth.user_factors, users[part], axis=0)[:, :, None]
            taste = np.take(self.truth.post_factors, candidates, axis=0)  # faster than [...]
            match = np.matmul(taste, factors)[..., 0]
            score = TASTE_FOCUS * match + PERSONAL_POPULARITY * state.log_popular[candidates]
            # an exponential race: the same choice as the highest score plus Gumbel noise
            race = rng.standard_exponential(size=shape) * np.exp(-score)
            chosen[part] = candidates[np.arange(shape[0]), np.argmin(race, axis=1)]
        return chosen

    def exposure(self, user: int, day: int) -> np.ndarray:
        """About how likely one view of user row ``user`` on ``day`` is to show each post
        (exact but for the personal draw's best-of-candidates step, which is approximated)."""
        state = self.feed_day(day)
        topics = self.truth.post_topic
        n_topics = len(self.topic_count)
        uniform = np.zeros(self.n_posts)
        uniform[state.live] = 1.0 / len(state.live)
        candidate = np.zeros(self.n_posts)  # P(candidate) within its topic
        candidate[state.live] = 1.0 / state.live_count[topics[state.live]]
        match = self.truth.post_factors @ self.truth.user_factors[user]
        gain = np.zeros(self.n_posts)
        gain[state.live] = np.exp(
            TASTE_FOCUS * match[state.live] + PERSONAL_POPULARITY * state.log_popular[state.live]
        )
        mean_gain = np.bincount(topics, weights=candidate * gain, minlength=n_topics)[topics]
        c = TASTE_CANDIDATES
        best = np.divide(
            c * candidate * gain,
            gain + (c - 1) * mean_gain,
            out=np.zeros(self.n_posts),
            where=gain > 0,
        )
        total = np.bincount(topics, weights=best, minlength=n_topics)[topics]
        best = np.divide(best, total, out=np.zeros(self.n_posts), where=total > 0)
        personal = self._topic_probabilities(state, np.array([user]))[0][topics] * best
        popular = state.popular / state.popular.sum()
        rest = 1.0 - self.popular_share - self.topical_share
        return np.asarray(
            self.popular_share * popular + self.topical_share * personal + rest * uniform
        )


def _draw(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, uniform, side="right"), len(cdf) - 1)


def calibrate(truth: GroundTruth, config: SyntheticConfig, sample_size: int = 400_000) -> float:
    """The intercept at which about ``config.like_rate`` of the generated views are liked.

    First by bisection on a sample of views drawn like the feed's; then, because the old feed
    does not show a user a post they already liked (and a post is liked once), the realised
    rate of a whole simulated period for a subsample of users corrects the target once.
    """
    rng = rng_for(config, STREAM_CALIBRATION)
    weights = truth.user_views_per_day.astype(np.float64)
    users = _draw(np.cumsum(weights) / weights.sum(), rng.random(sample_size))
    sampler = PostSampler(truth, config)
    days = np.unique(np.linspace(0, config.days - 1, CALIBRATION_DAYS).round().astype(np.int64))
    which = rng.integers(0, len(days), size=sample_size)
    posts = np.empty(sample_size, dtype=np.int64)
    for i, day in enumerate(days):
        mask = which == i
        posts[mask] = sampler.sample(users[mask], int(day), rng)
    hours = _draw(np.cumsum(truth.hour_activity), rng.random(sample_size))
    base = truth.with_intercept(0.0).logit_at(users, posts, hours)
    intercept = _bisect(base, config.like_rate)
    realised = _simulated_like_rate(truth.with_intercept(intercept), config, rng)
    if realised > 0:
        target = min(config.like_rate**2 / realised, 0.95)
        intercept = _bisect(base, target)
    return intercept


def _bisect(logits: np.ndarray, rate: float) -> float:
    low, high = -15.0, 15.0
    for _ in range(60):
        middle = (low + high) / 2
        if sigmoid(logits + middle).mean() < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _simulated_like_rate(
    truth: GroundTruth, config: SyntheticConfig, rng: np.random.Generator
) -> float:
    """Likes per view over the whole period for a random subsample of users."""
    n = len(truth.user_ids)
    rows = np.sort(rng.choice(n, size=min(n, CALIBRATION_USERS), replace=False))
    per_user = {name: getattr(truth, name)[rows] for name in _USER_ARRAYS}
    sub = dataclasses.replace(truth, **per_user)
    sampler = PostSampler(sub, config)
    liked = LikedPairs(len(sub.post_ids))
    views = likes = 0
    for day in range(config.days):
        traffic = WEEKDAY_TRAFFIC[(config.start + dt.timedelta(days=day)).weekday()]
        day_rng = rng_for(config, STREAM_CALIBRATION, 1, day)
        users, _, _, first = _simulate(sub, sampler, liked, day_rng, traffic, day)
        views += len(users)
        likes += int(first.sum())
    return likes / views if views else 0.0


class LikedPairs:
    """The (user, post) pairs liked so far: a user likes a post at most once."""

    def __init__(self, n_posts: int) -> None:
        self.n_posts = n_posts
        self.keys = np.empty(0, dtype=np.int64)  # user_row * n_posts + post_row, sorted

    def contains(self, users: np.ndarray, posts: np.ndarray) -> np.ndarray:
        """Which of these (user, post) pairs were liked before."""
        if not len(self.keys):
            return np.zeros(len(users), dtype=bool)
        keys = users * self.n_posts + posts
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.asarray(self.keys[at] == keys)

    def first_likes(self, users: np.ndarray, posts: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Which of these would-be likes are the user's first of the post; records them."""
        keys = users * self.n_posts + posts
        by_time = np.argsort(seconds, kind="stable")
        _, first = np.unique(keys[by_time], return_index=True)
        keep = np.zeros(len(keys), dtype=bool)
        keep[by_time[first]] = True
        keep &= ~self.contains(users, posts)
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
    traffic = WEEKDAY_TRAFFIC[date.weekday()]
    users, posts, seconds, liked = _simulate(truth, sampler, liked_before, rng, traffic, day)
    delay = rng.lognormal(np.log(LIKE_DELAY_MEDIAN_S), 1.0, size=int(liked.sum()))
    delay = np.clip(np.ceil(delay), 1, LIKE_DELAY_MAX_S).astype(np.int64)
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


def _simulate(
    truth: GroundTruth,
    sampler: PostSampler,
    liked_before: LikedPairs,
    rng: np.random.Generator,
    traffic: float,
    day: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """User rows, post rows, seconds after midnight and liked flags of a day's views; records
    the likes in ``liked_before``."""
    users, seconds = _sessions(truth, rng, traffic)
    posts = _show(sampler, liked_before, users, day, rng)
    hours = seconds // 3600 % 24
    liked = rng.random(len(users)) < sigmoid(truth.logit_at(users, posts, hours))
    candidates = np.flatnonzero(liked)
    first = liked_before.first_likes(users[candidates], posts[candidates], seconds[candidates])
    liked[candidates[~first]] = False
    return users, posts, seconds, liked


def _sessions(
    truth: GroundTruth, rng: np.random.Generator, traffic: float
) -> tuple[np.ndarray, np.ndarray]:
    """User rows and seconds after midnight of a day's views, session by session.

    A user shows up on a share of days; on such a day their sessions are Poisson, each
    starting by the hour-of-day curve and holding 1 + negative binomial views (mean
    ``VIEWS_PER_SESSION``) a few tens of seconds apart.
    """
    n_users = len(truth.user_ids)
    active = rng.random(n_users) < truth.user_active_share
    rate = truth.user_views_per_day / truth.user_active_share * traffic / VIEWS_PER_SESSION
    per_user = rng.poisson(rate) * active
    session_user = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    n_sessions = len(session_user)
    p = SESSION_DISPERSION / (SESSION_DISPERSION + VIEWS_PER_SESSION - 1)
    extra = rng.negative_binomial(SESSION_DISPERSION, p, size=n_sessions)
    length = np.minimum(1 + extra, MAX_SESSION_VIEWS).astype(np.int64)
    hour = _draw(np.cumsum(truth.hour_activity), rng.random(n_sessions))
    start = hour * 3600 + rng.integers(0, 3600, size=n_sessions)
    n = int(length.sum())
    gaps = MIN_SECONDS_BETWEEN_VIEWS + np.floor(rng.exponential(SECONDS_BETWEEN_VIEWS, size=n))
    elapsed = np.cumsum(gaps.astype(np.int64))
    first = np.cumsum(length) - length
    session = np.repeat(np.arange(n_sessions), length)
    offset = elapsed - elapsed[first][session]  # a session's first view is at its start
    duration = offset[first + length - 1]
    start = np.maximum(np.minimum(start, 86_400 + DAY_SPILL_S - duration), 0)
    return session_user[session], np.asarray(start[session] + offset)


def _show(
    sampler: PostSampler,
    liked_before: LikedPairs,
    users: np.ndarray,
    day: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The posts the old feed showed: drawn by :class:`PostSampler`, then redrawn (a few
    times at most) where the user liked the post before or already saw it that day."""
    posts = sampler.sample(users, day, rng)
    drawn = np.arange(len(users))  # views whose post is new this round
    for _ in range(RESHOW_RETRIES):
        keys = users * sampler.n_posts + posts
        order = np.argsort(keys, kind="stable")
        again = np.zeros(len(keys), dtype=bool)
        again[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        again[drawn] |= liked_before.contains(users[drawn], posts[drawn])
        drawn = np.flatnonzero(again)
        if not len(drawn):
            break
        posts[drawn] = sampler.sample(users[drawn], day, rng)
    return posts
