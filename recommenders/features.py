"""The control model's features: one pipeline for training rows and for serving requests.

A feature row describes (user, post, time t) with nothing from t or later:

- user profile: gender, age, country, city, exp_group, os, source (integer codes);
- user activity: views, likes and like rate from the snapshot at or before t; exact likes
  before t and in the recent window (``recent_s``) before t;
- time of the request: UTC hour and weekday;
- post: topic, text length in characters and words, the text embedding; views and like rate
  from the snapshot; exact likes before t and in the recent window, and their shares of all
  likes (popularity that does not grow with the age of the feed);
- crosses: the user's views, view share and like rate in the post's topic (snapshot); the
  user's exact likes and like share in the topic, all and recent; cosine of the post's text
  embedding with the sum of the user's liked posts' embeddings, all and recent; the product
  of the user's and the post's like rates over the global rate; item-item (EASE) scores of
  the post from the user's likes before t (sum, mean, recent) with the latest weights fitted
  before t; whether the user viewed the post before the snapshot.

Two sources feed the same arithmetic (:func:`assemble`): :class:`LikeLog` answers "likes
before t" for millions of training rows at once from sorted arrays, and
:class:`RequestFeatures` answers them for one request from the service's
:class:`~recommenders.history.LikeHistory`, writing into one preallocated column-major
float32 matrix (n_posts x n_features) with no DataFrame and no strings at request time.
Snapshot features read the same tables in both paths.
"""

from dataclasses import dataclass

import numpy as np

from feeddata.interactions import Interactions
from recommenders.history import LikeHistory
from recommenders.snapshots import USER_STATIC, FeatureParams, FeatureTables

HOUR = 3600
_SHIFT = np.int64(1 << 32)  # times are below 2**32 s, so (key << 32) | t sorts by key then t
TIME = ("hour", "weekday")
USER_ACTIVITY = ("user_views", "user_like_rate", "user_likes", "user_likes_recent")
POST = ("topic", "text_chars", "text_words")
POST_ACTIVITY = ("post_views", "post_like_rate", "post_likes", "post_likes_recent")
POST_SHARES = ("post_like_share", "post_recent_share")
CROSSES = (
    "topic_views",
    "topic_view_share",
    "topic_like_rate",
    "topic_likes",
    "topic_like_share",
    "topic_likes_recent",
    "text_sim",
    "text_sim_recent",
    "rate_lift",
    "cf_score",
    "cf_mean",
    "cf_recent",
    "seen",
)


def feature_names(params: FeatureParams) -> list[str]:
    """Column names in matrix order."""
    text = [f"text_{i}" for i in range(params.text_dims)]
    parts = (USER_STATIC, USER_ACTIVITY, TIME, POST, text, POST_ACTIVITY, POST_SHARES, CROSSES)
    return [name for part in parts for name in part]


@dataclass
class LikeStats:
    """Like counts before t (and in the recent window) that a feature row needs; each field
    is a scalar or an array of rows, all broadcastable together."""

    user: np.ndarray
    user_recent: np.ndarray
    topic: np.ndarray
    topic_recent: np.ndarray
    post: np.ndarray
    post_recent: np.ndarray
    total: np.ndarray
    total_recent: np.ndarray
    sim: np.ndarray
    sim_recent: np.ndarray
    cf: np.ndarray
    cf_recent: np.ndarray
    seen: np.ndarray


def assemble(
    out: np.ndarray,
    tables: FeatureTables,
    params: FeatureParams,
    user: np.ndarray | int,
    post: np.ndarray,
    time: np.ndarray,
    likes: LikeStats,
) -> np.ndarray:
    """Write every feature column of rows (user position, post position, time) into ``out``.

    ``user``/``time`` may be scalars (one request, all posts) or arrays (training rows).
    """
    s = tables.snapshot_at(time)
    topic = tables.post_topic[post]
    base_rate = tables.global_rate[s]
    u_views = tables.user_views[s, user].astype(np.float64)
    u_rate = _rate(tables.user_likes[s, user], u_views, base_rate, params.prior)
    p_views = tables.post_views[s, post].astype(np.float64)
    p_rate = _rate(tables.post_likes[s, post], p_views, base_rate, params.prior)
    t_views = tables.topic_views[s, user, topic].astype(np.float64)
    t_rate = _rate(tables.topic_likes[s, user, topic], t_views, u_rate, params.prior)
    columns = [
        *tables.user_static[user].T,
        u_views,
        u_rate,
        likes.user,
        likes.user_recent,
        (time // HOUR) % 24,
        (time // 86_400 + 3) % 7,  # 1970-01-01 was a Thursday; Monday is 0
        topic,
        *tables.post_static[post].T,
        p_views,
        p_rate,
        likes.post,
        likes.post_recent,
        likes.post / np.maximum(likes.total, 1),
        likes.post_recent / np.maximum(likes.total_recent, 1),
        t_views,
        t_views / np.maximum(u_views, 1),
        t_rate,
        likes.topic,
        likes.topic / np.maximum(likes.user, 1),
        likes.topic_recent,
        likes.sim,
        likes.sim_recent,
        u_rate * p_rate / np.maximum(base_rate, 1e-6),
        likes.cf,
        likes.cf / np.maximum(likes.user, 1),
        likes.cf_recent,
        likes.seen,
    ]
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


def _rate(likes: np.ndarray, views: np.ndarray, prior_rate: object, prior: float) -> np.ndarray:
    return (likes + prior * np.asarray(prior_rate)) / (views + prior)


class LikeLog:
    """The training twin of :class:`LikeHistory`: likes (before the cutoff) sorted so that
    "likes before t" is a binary search for any number of rows at once."""

    def __init__(self, likes: Interactions, tables: FeatureTables) -> None:
        post = np.searchsorted(tables.post_ids, likes.post_id)
        post = post.clip(0, max(len(tables.post_ids) - 1, 0))
        known = tables.post_ids[post] == likes.post_id if len(post) else np.zeros(0, bool)
        ts, post = likes.timestamp[known], post[known]
        if len(ts) and (ts.min() < 0 or ts.max() >= _SHIFT):
            raise ValueError("like timestamps must be epoch seconds between 1970 and 2106")
        user = tables.user_index(likes.user_id[known])
        topic = tables.post_topic[post]
        self.n_topics = tables.n_topics
        self._ts = np.sort(ts)
        self._user = np.sort(user * _SHIFT + ts)
        self._topic = np.sort((user * self.n_topics + topic) * _SHIFT + ts)
        self._post = np.sort(post * _SHIFT + ts)
        by_user = np.lexsort((ts, user))
        self._user_post = post[by_user]
        self._cf_checkpoints = np.asarray(tables.cf_checkpoints)
        self._cf_weights = tables.cf_weights
        self._seen_keys = tables.seen_keys()
        self._seen_from = np.asarray(tables.seen_from)
        self._n_posts = len(tables.post_ids)
        self._snapshot_at = tables.snapshot_at
        self._vec_sum = np.zeros((len(ts) + 1, tables.post_vec.shape[1]))
        np.cumsum(tables.post_vec[post[by_user]], axis=0, out=self._vec_sum[1:])
        self._post_vec = tables.post_vec

    def stats(
        self, user: np.ndarray, post: np.ndarray, time: np.ndarray, topic: np.ndarray, recent: int
    ) -> LikeStats:
        """Like stats of training rows (user and post positions, times, the post's topic)."""
        user_key = np.asarray(user, np.int64) * _SHIFT
        topic_key = (np.asarray(user, np.int64) * self.n_topics + topic) * _SHIFT
        post_key = np.asarray(post, np.int64) * _SHIFT
        since = np.maximum(time - recent, 0)  # keys hold times >= 0 only
        first = np.searchsorted(self._user, user_key)
        mid = np.searchsorted(self._user, user_key + since)
        end = np.searchsorted(self._user, user_key + time)
        total = np.searchsorted(self._ts, time)
        vec = self._post_vec[post]
        return LikeStats(
            user=end - first,
            user_recent=end - mid,
            topic=_count(self._topic, topic_key, 0, time),
            topic_recent=_count(self._topic, topic_key, since, time),
            post=_count(self._post, post_key, 0, time),
            post_recent=_count(self._post, post_key, since, time),
            total=total,
            total_recent=total - np.searchsorted(self._ts, since),
            sim=_cosine(vec, self._vec_sum[end] - self._vec_sum[first]),
            sim_recent=_cosine(vec, self._vec_sum[end] - self._vec_sum[mid]),
            cf=self._cf(post, time, first, end),
            cf_recent=self._cf(post, time, mid, end),
            seen=self._seen(user, post, time),
        )

    def _seen(self, user: np.ndarray, post: np.ndarray, time: np.ndarray) -> np.ndarray:
        key = np.asarray(user, np.int64) * self._n_posts + post
        at = np.searchsorted(self._seen_keys, key).clip(0, max(len(self._seen_keys) - 1, 0))
        if not len(self._seen_keys):
            return np.zeros(len(key), np.float32)
        found = self._seen_keys[at] == key
        return (found & (self._seen_from[at] <= self._snapshot_at(time))).astype(np.float32)

    def _cf(self, post: np.ndarray, time: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Sums of item-item weights from the likes at positions [lo, hi) of each row's user
        to the row's post, with the latest weights fitted before the row's time."""
        out = np.full(len(time), np.nan)
        snapshot = np.searchsorted(self._cf_checkpoints, time, side="right") - 1
        for k in np.unique(snapshot[snapshot >= 0]):
            rows = np.flatnonzero(snapshot == k)
            lengths = hi[rows] - lo[rows]
            owner = np.repeat(np.arange(len(rows)), lengths)
            offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            liked = self._user_post[np.repeat(lo[rows], lengths) + offset]
            weights = self._cf_weights[k][liked, post[rows][owner]]
            out[rows] = np.bincount(owner, weights=weights, minlength=len(rows))
        return out


def _count(keys: np.ndarray, key: np.ndarray, start: object, end: np.ndarray) -> np.ndarray:
    """Entries of ``key`` with times in [start, end)."""
    return np.searchsorted(keys, key + end) - np.searchsorted(keys, key + start)


def _cosine(vec: np.ndarray, liked_sum: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(liked_sum, axis=-1)
    dot = np.einsum("...d,...d->...", vec, liked_sum)
    return np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)


def training_matrix(
    tables: FeatureTables,
    params: FeatureParams,
    log: LikeLog,
    user: np.ndarray,
    post: np.ndarray,
    time: np.ndarray,
) -> np.ndarray:
    """Feature rows (float32, column-major) for arrays of user positions, post positions and
    times; rows are built in blocks to bound memory."""
    out = np.zeros((len(time), len(feature_names(params))), np.float32, order="F")
    block = 200_000  # rows; a block gathers every like of each row's user
    for lo in range(0, len(time), block):
        part = slice(lo, lo + block)
        topic = tables.post_topic[post[part]]
        stats = log.stats(user[part], post[part], time[part], topic, params.recent_s)
        assemble(out[part], tables, params, user[part], post[part], time[part], stats)
    return out


class RequestFeatures:
    """Feature rows of catalogue posts for one request, in matrices allocated once.

    Not thread-safe on its own: the caller serialises requests (the recommender holds a lock).
    """

    def __init__(self, tables: FeatureTables, params: FeatureParams) -> None:
        self.tables, self.params = tables, params
        self._posts = np.arange(len(tables.post_ids))
        self._topic = np.asarray(tables.post_topic)
        self._vec = np.asarray(tables.post_vec)
        self._n_features = len(feature_names(params))
        self._matrices: dict[int, np.ndarray] = {}  # by number of rows

    def fill(
        self,
        user_id: int,
        time: int,
        history: LikeHistory,
        posts: np.ndarray | None = None,
        post_likes: np.ndarray | None = None,
    ) -> np.ndarray:
        """The rows for ``user_id`` at ``time`` of the catalogue positions ``posts`` (default:
        every post, in order): likes from ``history`` before ``time``; ``post_likes`` are
        ``history.like_counts_before(time)`` when the caller has them (a like recorded
        meanwhile must not make its rows disagree with its choice of posts). The matrix is
        reused by the next call with as many posts."""
        chosen = self._posts if posts is None else np.asarray(posts, np.int64)
        matrix = self._matrices.get(len(chosen))
        if matrix is None:
            matrix = np.zeros((len(chosen), self._n_features), np.float32, order="F")
            self._matrices[len(chosen)] = matrix
        user = int(self.tables.user_index(np.asarray([user_id]))[0])
        recent = time - self.params.recent_s
        liked = history.liked_before(user_id, time)
        earlier = history.liked_before(user_id, recent)
        n_topics = self.tables.n_topics
        topic_all = np.bincount(self._topic[liked], minlength=n_topics)
        topic_old = np.bincount(self._topic[earlier], minlength=n_topics)
        vec_all = self._vec[liked].sum(axis=0)
        vec_recent = vec_all - self._vec[earlier].sum(axis=0)
        cf_all, cf_recent = self._cf(time, liked, earlier, chosen)
        posts_now = history.like_counts_before(time) if post_likes is None else post_likes
        posts_old = history.like_counts_before(recent)
        total = int(posts_now.sum())
        topic = self._topic[chosen]
        vec = self._vec[chosen]
        snapshot = int(self.tables.snapshot_at(np.asarray(time)))
        stats = LikeStats(
            user=np.asarray(len(liked)),
            user_recent=np.asarray(len(liked) - len(earlier)),
            topic=topic_all[topic],
            topic_recent=(topic_all - topic_old)[topic],
            post=posts_now[chosen],
            post_recent=(posts_now - posts_old)[chosen],
            total=np.asarray(total),
            total_recent=np.asarray(total - int(posts_old.sum())),
            sim=_cosine(vec, vec_all),
            sim_recent=_cosine(vec, vec_recent),
            cf=cf_all,
            cf_recent=cf_recent,
            seen=self.tables.seen_by(user, snapshot)[chosen],
        )
        t = np.asarray(time, np.int64)
        return assemble(matrix, self.tables, self.params, user, chosen, t, stats)

    def _cf(
        self, time: int, liked: np.ndarray, earlier: np.ndarray, posts: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        k = self.tables.cf_at(time)
        if k < 0:
            return np.full(len(posts), np.nan), np.full(len(posts), np.nan)
        counts = np.bincount(liked, minlength=len(self._posts))
        recent = counts - np.bincount(earlier, minlength=len(self._posts))
        idx = np.flatnonzero(counts)  # the recent likes are among them
        # One gather of the weights from the liked posts to ``posts`` serves both sums.
        weights = self.tables.cf_weights[k][np.ix_(idx, posts)].astype(np.float64)
        return counts[idx] @ weights, recent[idx] @ weights
