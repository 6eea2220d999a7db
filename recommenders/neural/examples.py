"""Training examples of the neural model, as numpy arrays (no torch).

An example is a request-like anchor: a view (user u at time t; the likes when the feed has
no views) whose user liked at least one post in ``[t, t + window]``, the hitrate window of
the evaluation. Its inputs are what serving would know at t (see :mod:`inputs`); its
targets are all the posts u liked in the window. :func:`prepare` turns training data into
the sources and the time-ordered examples; :func:`batch_arrays` assembles a batch.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recommenders.base import TrainingData
from recommenders.neural.colikes import CoLikes, CoLikesParams
from recommenders.neural.inputs import (
    CO_LAST,
    DAY,
    HOUR,
    PostCounts,
    Profiles,
    ViewCounts,
    ViewLog,
    age_band,
    cross_feature_columns,
    encode_profiles,
    stack_columns,
    text_basis,
)
from recommenders.snapshots import encode

_SHIFT = np.int64(1 << 32)  # times are below 2**32 s, so row * _SHIFT + t sorts by row then t

Anchors = Literal["first_in_hour", "per_hour", "all"]
"""Which views become examples: the first of each (user, clock hour), as the offline
protocol's requests are; every view, each (user, clock hour) weighing one in the loss
("per_hour", the protocol's weighting with all the histories and targets); or every view
with weight one."""
Loss = Literal["any", "mean"]
"""How the posts liked in an example's window enter the loss
(:func:`recommenders.neural.training._loss`)."""


@dataclass
class LikeTable:
    """Likes grouped by user row and sorted by time: ``key = row * 2**32 + t``."""

    key: np.ndarray
    post: np.ndarray  # int64 post positions
    ts: np.ndarray

    @classmethod
    def build(cls, row: np.ndarray, post: np.ndarray, ts: np.ndarray) -> "LikeTable":
        if len(ts) and (ts.min() < 0 or ts.max() >= _SHIFT):
            raise ValueError("like timestamps must be epoch seconds between 1970 and 2106")
        key = row.astype(np.int64) * _SHIFT + ts
        order = np.argsort(key, kind="stable")
        return cls(key[order], post[order].astype(np.int64), ts[order])


@dataclass
class Examples:
    """Anchors sorted by time, with the like-table positions of their histories/targets."""

    row: np.ndarray  # user rows
    time: np.ndarray
    first: np.ndarray  # position of the user's first like
    day: np.ndarray  # position of the user's first like in the day before t
    now: np.ndarray  # position of the first like at or after t (history ends here)
    end: np.ndarray  # one past the last like within the window (targets are [now, end))
    weight: np.ndarray  # float32: the example's share of its (user, clock hour)

    def __len__(self) -> int:
        return len(self.time)

    def part(self, rows: slice | np.ndarray) -> "Examples":
        return Examples(
            self.row[rows],
            self.time[rows],
            self.first[rows],
            self.day[rows],
            self.now[rows],
            self.end[rows],
            self.weight[rows],
        )


def build_examples(
    likes: LikeTable,
    row: np.ndarray,
    time: np.ndarray,
    *,
    window: int,
    anchors: Anchors,
    max_examples: int,
    rng: np.random.Generator,
) -> Examples:
    """Anchors from exposures (user rows, times) that have a like within the window; see
    :data:`Anchors` for the choices."""
    if anchors == "first_in_hour":
        order = np.lexsort((time, row))
        row, time = row[order], time[order]
        hour = time // HOUR
        first = np.ones(len(row), bool)
        first[1:] = (row[1:] != row[:-1]) | (hour[1:] != hour[:-1])
        row, time = row[first], time[first]
    key = row * _SHIFT
    now = np.searchsorted(likes.key, key + time, side="left")
    end = np.searchsorted(likes.key, key + time + window, side="right")
    keep = np.flatnonzero(end > now)
    if len(keep) > max_examples:
        keep = np.sort(rng.choice(keep, max_examples, replace=False))
    keep = keep[np.argsort(time[keep], kind="stable")]
    key, t = key[keep], time[keep]
    weight = np.ones(len(keep), np.float32)
    if anchors == "per_hour" and len(keep):
        _, session, count = np.unique(
            row[keep] * _SHIFT + t // HOUR, return_inverse=True, return_counts=True
        )
        weight = (1.0 / count[session.reshape(-1)]).astype(np.float32)
    return Examples(
        row[keep],
        t,
        np.searchsorted(likes.key, key, side="left"),
        np.searchsorted(likes.key, key + np.maximum(t - DAY, 0), side="left"),
        now[keep],
        end[keep],
        weight,
    )


@dataclass
class Sources:
    """Everything a batch is assembled from."""

    likes: LikeTable
    profiles: Profiles
    counts: PostCounts
    views: ViewLog
    post_topic: np.ndarray
    post_text: np.ndarray  # small unit text vectors (:func:`inputs.text_basis`)
    n_topics: int
    history: int
    co: CoLikes

    @property
    def n_posts(self) -> int:
        return len(self.post_topic)


@dataclass
class BatchArrays:
    """A batch as numpy arrays (see ``network.Batch`` for the meaning of each field)."""

    hist: np.ndarray
    ages: np.ndarray
    n_likes: np.ndarray
    profile: np.ndarray
    hour: np.ndarray
    pop: np.ndarray
    pop_row: np.ndarray
    cross: np.ndarray
    candidates: np.ndarray | None
    liked: np.ndarray  # bool (B, C): posts liked before t (masked out of the softmax)
    target: np.ndarray  # bool (B, C): posts liked within the window
    weight: np.ndarray  # float32 (B,): the examples' weights in the loss


def batch_arrays(
    src: Sources, ex: Examples, negatives: int = 0, rng: np.random.Generator | None = None
) -> BatchArrays:
    """Inputs, the posts liked before t and the targets of examples over candidates C: the
    whole catalogue, or with ``negatives`` > 0 the batch's targets and that many posts
    drawn uniformly (a sampled softmax, for large catalogues)."""
    b, n_posts, length = len(ex), src.n_posts, src.history
    pos = ex.now[:, None] - np.arange(1, length + 1)[None, :]  # most recent first
    valid = pos >= ex.first[:, None]
    safe = np.where(valid, pos, 0)
    hist = np.where(valid, src.likes.post[safe], n_posts)
    ages = np.where(valid, age_band(ex.time[:, None] - src.likes.ts[safe]), 0)
    hours = ex.time // HOUR
    distinct, pop_row = np.unique(hours, return_inverse=True)
    seen = np.zeros((b, n_posts), np.int8)
    for i in range(b):
        src.views.seen(seen, i, int(ex.row[i]), int(ex.time[i]))
    liked = _flags(src.likes.post, ex.first, ex.now, b, n_posts)
    target = _flags(src.likes.post, ex.now, ex.end, b, n_posts) & ~liked
    cand = np.arange(n_posts)
    if 0 < negatives < n_posts:
        assert rng is not None
        drawn = rng.choice(n_posts, negatives, replace=False)
        cand = np.union1d(np.flatnonzero(target.any(0)), drawn)
        seen, liked, target = seen[:, cand], liked[:, cand], target[:, cand]
    liked_all, liked_day = _liked(src, ex.first, ex.now), _liked(src, ex.day, ex.now)
    topic_all, text_all = _liked_sums(src, b, *liked_all)
    topic_day, text_day = _liked_sums(src, b, *liked_day)
    snapshot = src.co.at(ex.time)
    co_all = src.co.scores(snapshot, *liked_all)[:, cand]
    co_day = src.co.scores(snapshot, *liked_day)[:, cand]
    last = np.maximum(ex.first, ex.now - CO_LAST)
    co_last = src.co.scores(snapshot, *_liked(src, last, ex.now))[:, cand]
    return BatchArrays(
        hist=hist.astype(np.int64),
        ages=ages.astype(np.int64),
        n_likes=(ex.now - ex.first).astype(np.float32),
        profile=src.profiles.codes[ex.row],
        hour=(hours % 24).astype(np.int64),
        pop=src.counts.features(distinct, cand),
        pop_row=pop_row.reshape(-1).astype(np.int64),
        cross=stack_columns(
            cross_feature_columns(
                topic_all,
                topic_day,
                text_all,
                text_day,
                src.post_topic[cand],
                src.post_text[cand],
                seen,
                co_all,
                co_day,
                co_last,
                snapshot >= 0,
            )
        ),
        candidates=None if len(cand) == n_posts else cand.astype(np.int64),
        liked=liked,
        target=target,
        weight=ex.weight,
    )


def _liked_sums(
    src: Sources, b: int, owner: np.ndarray, post: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per example: likes per topic (B, T) and the sum of small text vectors (B, k) of its
    likes (the (example, post) pairs of :func:`_liked`)."""
    topics = np.bincount(
        owner * src.n_topics + src.post_topic[post], minlength=b * src.n_topics
    ).reshape(b, src.n_topics)
    cumulative = np.zeros((len(post) + 1, src.post_text.shape[1]))
    np.cumsum(src.post_text[post], axis=0, out=cumulative[1:])
    ends = np.cumsum(np.bincount(owner, minlength=b))  # owner is sorted: each example's run
    starts = np.concatenate([[0], ends[:-1]])
    return topics, (cumulative[ends] - cumulative[starts]).astype(np.float32)


def _liked(src: Sources, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The likes at positions [lo[i], hi[i]) of every example i: (example, post) pairs."""
    lengths = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), lengths)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, src.likes.post[np.repeat(lo, lengths) + offset]


def _flags(post: np.ndarray, lo: np.ndarray, hi: np.ndarray, b: int, n_posts: int) -> np.ndarray:
    """(b, n_posts) booleans: row i marks ``post[lo[i]:hi[i]]``."""
    lengths = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(b), lengths)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.zeros((b, n_posts), bool)
    out[owner, post[np.repeat(lo, lengths) + offset]] = True
    return out


@dataclass
class Prepared:
    """What :func:`prepare` returns: the batch sources, the examples split by time, and
    the arrays serving keeps."""

    src: Sources
    train: Examples
    valid: Examples
    post_ids: np.ndarray
    topics: list[str]
    text: np.ndarray
    view_counts: ViewCounts
    likes: int
    views: int


def prepare(
    data: TrainingData,
    text: np.ndarray,
    *,
    history: int,
    views: bool,
    max_vocab: int,
    window: int,
    anchors: Anchors,
    max_examples: int,
    validation_share: float,
    max_validation: int,
    co_likes: CoLikesParams,
    rng: np.random.Generator,
    progress: bool = False,
) -> Prepared:
    """Encode the catalogue, profiles, likes and views of ``data`` (``text``: the posts'
    text embeddings) and draw the examples; the latest ``validation_share`` of them by time
    is the validation slice (at most ``max_validation``, a seeded sample)."""
    posts, inter = data.posts, data.interactions
    post_ids = posts.index.to_numpy(np.int64)
    topic_codes, topics = encode(text_column(posts, "topic"))
    user_ids = np.union1d(data.users.index.to_numpy(np.int64), np.unique(inter.user_id))
    profiles = encode_profiles(data.users, user_ids, max_vocab)
    n_posts, n_rows = len(post_ids), len(user_ids) + 1
    pos = np.searchsorted(post_ids, inter.post_id).clip(0, max(n_posts - 1, 0))
    known = post_ids[pos] == inter.post_id if n_posts else np.zeros(len(inter), bool)
    pos, row = pos[known], profiles.index(inter.user_id[known])
    ts, like = inter.timestamp[known], inter.is_like[known]
    likes = LikeTable.build(row[like], pos[like], ts[like])
    view_log = (
        ViewLog.build(row[~like], pos[~like], ts[~like], n_rows, n_posts)
        if views
        else ViewLog.empty(n_rows)
    )
    view_counts = ViewCounts.build(pos[~like], ts[~like], n_posts, data.until, int(like.sum()))
    exposure = ~like if (~like).any() else like
    examples = build_examples(
        likes,
        row[exposure],
        ts[exposure],
        window=window,
        anchors=anchors,
        max_examples=max_examples,
        rng=rng,
    )
    n_valid = int(len(examples) * validation_share)
    n_valid = n_valid if n_valid >= 20 else 0
    train = examples.part(slice(0, len(examples) - n_valid))
    valid = examples.part(slice(len(examples) - n_valid, len(examples)))
    if len(valid) > max_validation:
        valid = valid.part(np.sort(rng.choice(len(valid), max_validation, replace=False)))
    src = Sources(
        likes,
        profiles,
        PostCounts(pos[like], ts[like], n_posts, data.until, view_counts),
        view_log,
        topic_codes.astype(np.int64),
        text_basis(text),
        max(len(topics), 1),
        history,
        CoLikes.for_likes(row[like], pos[like], ts[like], n_posts, data.until, co_likes, progress),
    )
    return Prepared(
        src, train, valid, post_ids, topics, text, view_counts, int(like.sum()), int((~like).sum())
    )


def text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``frame`` as strings, "" where missing (or the whole column)."""
    values = frame[name] if name in frame else pd.Series("", index=frame.index)
    return values.fillna("").astype(str)
