"""What the neural model reads about a (user, time): numpy only, shared by training and
serving so the two cannot drift apart.

- **Profiles**: gender, age band, legacy cohort, country, city, os and source as small
  integer codes (text columns by descending frequency, the rarest folded into "unknown").
- **Likes before t**: the last ``history`` liked posts, most recent first, with the age of
  each like in coarse bands (:data:`AGE_BOUNDS`), and the number of likes.
- **Posts at t** (:func:`post_feature_columns`): likes of every post in the last hour, day, week,
  30 days and ever, as log counts and log shares, and views and like rate at the last daily
  view checkpoint (:class:`ViewCounts`). Serving counts likes exactly before t from
  :class:`~recommenders.history.LikeHistory`; training reads an hourly grid of counts
  before the start of t's hour (the same windows, up to an hour staler).
- **User x post** (:func:`cross_feature_columns`): the user's likes before t in the post's topic
  (ever and in the last day, and their share), the cosine of the post's text with the sum
  of the texts the user liked (ever and in the last day), and whether the user viewed the
  post before (:class:`ViewLog`: the first view hour of every (user, post) pair before the
  training cutoff; a request at t sees the views of days before t's day only), and the
  co-likes scores of the post from the user's likes (ever, in the last day, the last
  :data:`CO_LAST`, and their mean per like; :mod:`recommenders.neural.colikes`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommenders.snapshots import encode

HOUR = 3600
DAY = 86_400
AGE_BOUNDS = np.array([600, HOUR, 6 * HOUR, DAY, 3 * DAY, 7 * DAY, 30 * DAY], np.int64)
"""Like ages (seconds before t) that separate the age bands of history entries."""
N_AGES = len(AGE_BOUNDS) + 2  # the bands, plus the padding code
POP_WINDOWS = (HOUR, DAY, 7 * DAY, 30 * DAY)
N_POST_FEATURES = 2 * (len(POP_WINDOWS) + 1) + 2
PRIOR_VIEWS = 20.0
N_CROSS_FEATURES = 14
CO_LAST = 5
"""The co-likes of the user's last likes (a session's signal) are a feature of their own."""
TEXT_SIM_DIMS = 32
AGE_BANDS = np.array([18, 22, 26, 31, 36, 46, 56], np.int64)
PROFILE_COLUMNS = ("gender", "age", "exp_group", "country", "city", "os", "source")


@dataclass
class Profiles:
    """Integer codes (U + 1, len(PROFILE_COLUMNS)); row U is the unknown user (all 0)."""

    user_ids: np.ndarray
    codes: np.ndarray
    sizes: list[int]

    def index(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of ``user_ids``; unknown users map to the all-zero last row."""
        ids = np.asarray(user_ids, np.int64)
        n = len(self.user_ids)
        pos = np.clip(np.searchsorted(self.user_ids, ids), 0, max(n - 1, 0))
        known = (self.user_ids[pos] == ids) if n else np.zeros(ids.shape, bool)
        return np.where(known, pos, n)


def encode_profiles(users: pd.DataFrame, user_ids: np.ndarray, max_vocab: int) -> Profiles:
    """Codes of every profile column; 0 is unknown, text vocabularies keep ``max_vocab``
    most frequent values.

    >>> users = pd.DataFrame({"gender": [1, 0], "age": [17, 40], "city": ["A", "B"]}, [5, 9])
    >>> p = encode_profiles(users, np.array([5, 9, 11]), 10)
    >>> p.codes[:, :3].tolist(), p.codes[:, 4].tolist()
    ([[2, 1, 0], [1, 6, 0], [0, 0, 0], [0, 0, 0]], [1, 2, 0, 0])
    """
    frame = users.reindex(index=user_ids, columns=list(PROFILE_COLUMNS))
    codes = np.zeros((len(user_ids) + 1, len(PROFILE_COLUMNS)), np.int64)
    gender = pd.to_numeric(frame["gender"], errors="coerce")
    codes[:-1, 0] = np.where(gender.isin([0, 1]), gender.fillna(0) + 1, 0)
    age = pd.to_numeric(frame["age"], errors="coerce")
    bands = np.searchsorted(AGE_BANDS, age.fillna(0).to_numpy(), side="right") + 1
    codes[:-1, 1] = np.where(age.notna() & (age > 0), bands, 0)
    sizes = [3, len(AGE_BANDS) + 2]
    for j, column in enumerate(PROFILE_COLUMNS[2:], start=2):
        values, _ = encode(frame[column].astype("string").fillna(""))
        values = np.where(values <= max_vocab, values, 0)
        codes[:-1, j] = values
        sizes.append(int(values.max(initial=0)) + 1)
    return Profiles(np.asarray(user_ids, np.int64), codes, sizes)


def age_band(age_s: np.ndarray) -> np.ndarray:
    """Age band of likes ``age_s`` seconds old: how many bounds the age exceeds.

    >>> age_band(np.array([0, 700, 4000, 10**8])).tolist()
    [0, 1, 2, 7]
    """
    return np.searchsorted(AGE_BOUNDS, age_s, side="left")


def post_feature_columns(
    total: np.ndarray,
    windows: list[np.ndarray],
    views: np.ndarray,
    viewed_likes: np.ndarray,
    prior_rate: float,
    denominators: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """The N_POST_FEATURES columns, each float32 (..., P), of every post at a time t
    (:func:`stack_columns` makes them (..., P, N_POST_FEATURES)):

    - for the likes of each window (:data:`POP_WINDOWS`) and of all time before t: log1p of
      the count and log of its share of the window's likes (smoothed by one like per post);
    - from the last view checkpoint (:class:`ViewCounts`): log1p of the views and the log
      like rate (likes before the checkpoint over views, smoothed by :data:`PRIOR_VIEWS`
      views at ``prior_rate``).

    ``denominators`` (per window then all time: likes over the whole catalogue plus the
    number of posts, shaped ``total.shape[:-1]``) are needed when the counts cover only
    some posts; by default they come from the counts.
    """
    counts = [*windows, total]
    if denominators is None:
        denominators = [c.sum(axis=-1) + total.shape[-1] for c in counts]
    parts = []
    for c, denominator in zip(counts, denominators, strict=True):
        c = c.astype(np.float32)
        share = (c + 1.0) / np.asarray(denominator, np.float32)[..., None]
        parts += [np.log1p(c), np.log(share)]
    v = views.astype(np.float32)
    rate = (viewed_likes.astype(np.float32) + PRIOR_VIEWS * prior_rate) / (v + PRIOR_VIEWS)
    parts += [np.log1p(v), np.log(rate)]
    return parts


def text_basis(text: np.ndarray, dims: int = TEXT_SIM_DIMS) -> np.ndarray:
    """Unit rows (P, dims) of the text embeddings projected on their ``dims`` principal
    directions (zero rows for empty texts, zero columns when there are fewer directions):
    the small text vectors of :func:`cross_feature_columns`."""
    out = np.zeros((len(text), dims), np.float32)
    present = np.abs(text).sum(axis=1) > 0
    if present.sum() < 2:
        return out
    centered = text[present] - text[present].mean(axis=0)
    _, _, basis = np.linalg.svd(centered.astype(np.float64), full_matrices=False)
    k = min(dims, len(basis))
    out[present, :k] = centered @ basis[:k].T
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def cross_feature_columns(
    topic_all: np.ndarray,
    topic_day: np.ndarray,
    text_all: np.ndarray,
    text_day: np.ndarray,
    post_topic: np.ndarray,
    post_text: np.ndarray,
    seen: np.ndarray,
    co_all: np.ndarray,
    co_day: np.ndarray,
    co_last: np.ndarray,
    co_known: np.ndarray,
) -> list[np.ndarray]:
    """The N_CROSS_FEATURES columns, each float32 (..., C), for C posts and one user (or a
    batch ``...``); :func:`stack_columns` makes them (..., C, N_CROSS_FEATURES).

    ``topic_*`` (..., T): the user's likes per topic before t, ever and in the last day;
    ``text_*`` (..., k): sums of the small text vectors (:func:`text_basis`) of those likes;
    ``post_topic`` (C,) and ``post_text`` (C, k) describe the posts; ``seen`` (..., C) codes
    from :meth:`ViewLog.seen`; ``co_*`` (..., C) the co-likes scores of the posts from the
    likes ever, in the last day and the last :data:`CO_LAST` likes, and ``co_known`` (...)
    whether a snapshot existed at t.
    """
    likes_all = topic_all.sum(axis=-1, keepdims=True).astype(np.float32)
    likes_day = topic_day.sum(axis=-1, keepdims=True).astype(np.float32)
    in_topic = topic_all[..., post_topic].astype(np.float32)
    in_topic_day = topic_day[..., post_topic].astype(np.float32)
    share = (in_topic + 1.0) / (likes_all + topic_all.shape[-1])
    parts = [
        np.log1p(in_topic),
        np.log(share),
        np.log1p(in_topic_day),
        _cosine(post_text, text_all),
        _cosine(post_text, text_day),
        np.broadcast_to(np.log1p(likes_all), in_topic.shape),
        np.broadcast_to(np.log1p(likes_day), in_topic.shape),
        (seen == 1).astype(np.float32),
        (seen == 2).astype(np.float32),
        co_all,
        co_day,
        co_last,
        co_all / np.maximum(likes_all, 1.0),
        np.broadcast_to(np.asarray(co_known, np.float32)[..., None], in_topic.shape),
    ]
    return parts


def stack_columns(columns: list[np.ndarray]) -> np.ndarray:
    """float32 (..., N) of N feature columns, each (...)."""
    return np.stack(columns, axis=-1).astype(np.float32, copy=False)


def _cosine(posts: np.ndarray, liked_sum: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(liked_sum, axis=-1, keepdims=True).astype(np.float32)
    unit = np.divide(liked_sum, norm, out=np.zeros_like(liked_sum, np.float32), where=norm > 0)
    return np.asarray(unit @ posts.T, np.float32)


@dataclass
class ViewCounts:
    """Views per post before each checkpoint: the start of every day of the training
    period, then the cutoff. A request at t reads the latest checkpoint at or before t."""

    checkpoints: np.ndarray  # int64 (S,)
    views: np.ndarray  # int32 (S, P)
    prior_rate: float
    """Likes per view over the training period (the smoothing prior of like rates)."""

    @classmethod
    def build(
        cls, post_idx: np.ndarray, ts: np.ndarray, n_posts: int, until: int, n_likes: int
    ) -> "ViewCounts":
        first = int(ts.min()) if len(ts) else until
        days = np.arange(first - first % DAY, until, DAY, dtype=np.int64)
        checkpoints = np.append(days, until) if len(days) else np.array([until], np.int64)
        slot = np.searchsorted(checkpoints, ts, side="right")  # first checkpoint after a view
        cells = np.bincount(slot * n_posts + post_idx, minlength=(len(checkpoints) + 1) * n_posts)
        per_slot = cells.reshape(-1, n_posts)[: len(checkpoints)].astype(np.int32)
        views = np.cumsum(per_slot, axis=0, dtype=np.int32)
        rate = n_likes / len(ts) if len(ts) else 0.1
        return cls(checkpoints, views, float(rate))

    def at(self, times: np.ndarray) -> np.ndarray:
        """Index of the latest checkpoint at or before each time (0 if none)."""
        return np.maximum(np.searchsorted(self.checkpoints, times, side="right") - 1, 0)


class PostCounts:
    """The training twin of the serving path's post features: likes per post before the
    start of each hour of the training period (int32, one row per hour) and the view
    checkpoints. Checkpoints before the cutoff are day starts, so whole hours."""

    def __init__(
        self, post_idx: np.ndarray, ts: np.ndarray, n_posts: int, until: int, views: ViewCounts
    ) -> None:
        first = min(int(ts.min()) if len(ts) else until, int(views.checkpoints[0]))
        self.first_hour = first // HOUR
        n_hours = until // HOUR - self.first_hour + 2
        hour = ts // HOUR - self.first_hour
        cells = np.bincount((hour + 1) * n_posts + post_idx, minlength=n_hours * n_posts)
        per_hour = cells.reshape(n_hours, n_posts).astype(np.int32)
        self.cumulative = np.cumsum(per_hour, axis=0, dtype=np.int32)
        self.totals = self.cumulative.sum(axis=1, dtype=np.int64)
        self.views = views

    def features(self, hours: np.ndarray, posts: np.ndarray | None = None) -> np.ndarray:
        """:func:`post_feature_columns` at the start of each of ``hours`` (hours since the epoch),
        of ``posts`` (positions; all by default)."""
        last = len(self.cumulative) - 1
        row = np.clip(hours - self.first_hour, 0, last)
        rows = [row, *(np.clip(row - w // HOUR, 0, last) for w in POP_WINDOWS)]
        n_posts = self.cumulative.shape[1]
        cols = slice(None) if posts is None else posts
        counts = [self.cumulative[r][:, cols] for r in rows]
        totals = [self.totals[r] for r in rows]
        windows = [counts[0] - c for c in counts[1:]]
        sums = [totals[0] - t + n_posts for t in totals[1:]] + [totals[0] + n_posts]
        snapshot = self.views.at(hours * HOUR)
        at_snapshot = np.clip(self.views.checkpoints[snapshot] // HOUR - self.first_hour, 0, last)
        return stack_columns(
            post_feature_columns(
                counts[0],
                windows,
                self.views.views[snapshot][:, cols],
                self.cumulative[at_snapshot][:, cols],
                self.views.prior_rate,
                sums,
            )
        )


@dataclass
class ViewLog:
    """First view hour of every (user, post) pair, grouped by user row (CSR): 6 bytes a
    pair (uint16 post positions when the catalogue allows, int32 hours since the epoch)."""

    ptr: np.ndarray  # int64 (U + 2,)
    post: np.ndarray  # uint16 or int32
    hour: np.ndarray  # int32

    @classmethod
    def build(
        cls, user_row: np.ndarray, post_idx: np.ndarray, ts: np.ndarray, n_users: int, n_posts: int
    ) -> "ViewLog":
        """From views (user rows, post positions, times), in time order."""
        width = max(n_posts, 1)
        keys, first = np.unique(user_row.astype(np.int64) * width + post_idx, return_index=True)
        ptr = np.searchsorted(keys // width, np.arange(n_users + 1))
        post_type = np.uint16 if n_posts <= np.iinfo(np.uint16).max else np.int32
        return cls(
            ptr.astype(np.int64),
            (keys % width).astype(post_type),
            (ts[first] // HOUR).astype(np.int32),
        )

    @classmethod
    def empty(cls, n_users: int) -> "ViewLog":
        return cls(np.zeros(n_users + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))

    def seen(self, out: np.ndarray, row: int, user: int, time: int) -> None:
        """Write into ``out[row]`` 1 for posts ``user`` viewed before the day of ``time``
        (2 if on the day before it).

        Whole days, not hours: after the training cutoff the views of the current session
        are unknown, so training must not learn to lean on them either.
        """
        if user + 1 >= len(self.ptr):
            return
        lo, hi = int(self.ptr[user]), int(self.ptr[user + 1])
        hours = self.hour[lo:hi]
        today = (time // DAY) * (DAY // HOUR)
        before = hours < today
        out[row, self.post[lo:hi][before]] = np.where(
            hours[before] >= today - DAY // HOUR, 2, 1
        ).astype(out.dtype)
