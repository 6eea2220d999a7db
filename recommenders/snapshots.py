"""What the control model's features are computed from, fitted once and saved in the bundle.

- **Encodings**: user profile columns as numbers; text columns (country, city, os, source)
  as integer codes by descending frequency, code 0 reserved for unknown or missing values.
- **Post tables**: topic code, text length and a TF-IDF + truncated SVD embedding of the text.
- **Item-item snapshots**: EASE weights (see :mod:`recommenders.peers`) fitted on the likes
  before a few checkpoints (by default mid-period and the cutoff): a row at ``t`` scores
  posts against the user's likes with the latest weights fitted strictly before ``t``.
- **Snapshots**: cumulative views and likes per user, per (user, topic) and per post, taken at
  checkpoint times. The snapshot at checkpoint ``c`` holds the events with timestamp < c,
  and a request at ``t`` reads the latest checkpoint at or before ``t``, so nothing at or
  after ``t`` can reach a feature. Per-topic counts are uint16 (saturating) to keep the
  course scale (163k users x 7 topics x up to 32 snapshots) near 150 MB.
"""

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from feeddata.interactions import Interactions
from recommenders.peers import ease_checkpoints, ease_weights

DAY = 86_400
NUMERIC_USER_COLUMNS = ("gender", "age", "exp_group")
CODED_USER_COLUMNS = ("country", "city", "os", "source")
USER_STATIC = (*NUMERIC_USER_COLUMNS, *CODED_USER_COLUMNS)
TABLES_FILE = "features.json"


class FeatureParams(BaseModel):
    """How the feature tables are built; saved in the bundle."""

    model_config = ConfigDict(extra="forbid")

    snapshot_days: float = 1.0
    max_snapshots: int = 32
    """More checkpoints than this stretch the step: memory stays bounded at any scale."""
    text_dims: int = 16
    recent_s: int = DAY
    """Window of the "recent" like counts of users and posts."""
    prior: float = 20.0
    """Views of pseudo-evidence at the global like rate that smooth every like rate."""
    cf_snapshots: int = 2
    """Item-item (EASE) weight snapshots; the last one is taken at the cutoff."""
    cf_start: float = 0.5
    """Where the first of them is taken, as a share of the training period."""
    cf_l2: float = 200.0
    seed: int = 0


@dataclass
class FeatureTables:
    """Encodings, post tables and snapshots; see the module docstring. Users are indexed by
    position in ``user_ids``; position ``len(user_ids)`` is the never-seen user (all zeros)."""

    user_ids: np.ndarray
    user_static: np.ndarray  # float32 (U + 1, len(USER_STATIC))
    post_ids: np.ndarray
    post_topic: np.ndarray  # int32 (P,), codes of ``topics``
    post_static: np.ndarray  # float32 (P, 2 + text_dims): chars, words, embedding
    post_vec: np.ndarray  # float64 (P, text_dims), unit rows (zero when the text is empty)
    checkpoints: np.ndarray  # int64 (S,)
    user_views: np.ndarray  # uint32 (S, U + 1)
    user_likes: np.ndarray  # uint32 (S, U + 1)
    topic_views: np.ndarray  # uint16 (S, U + 1, T)
    topic_likes: np.ndarray  # uint16 (S, U + 1, T)
    post_views: np.ndarray  # uint32 (S, P)
    post_likes: np.ndarray  # uint32 (S, P)
    seen_ptr: np.ndarray  # int64 (U + 2,): user u's viewed posts are [ptr[u], ptr[u + 1])
    seen_post: np.ndarray  # uint16 or int32, sorted within each user
    seen_from: np.ndarray  # uint16: first snapshot that holds the user's first view of it
    cf_checkpoints: np.ndarray  # int64 (K,)
    cf_weights: np.ndarray  # float32 (K, P, P): EASE weights fitted on likes before each
    global_rate: np.ndarray  # float64 (S,): likes over views in each snapshot (0.1 if none)
    vocab: dict[str, list[str]]

    @property
    def n_topics(self) -> int:
        return len(self.vocab["topic"])

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Positions of ``user_ids``; unknown users map to the all-zero row."""
        ids = np.asarray(user_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.user_ids, ids), 0, max(len(self.user_ids) - 1, 0))
        known = (self.user_ids[pos] == ids) if len(self.user_ids) else np.zeros(ids.shape, bool)
        return np.where(known, pos, len(self.user_ids))

    def snapshot_at(self, times: np.ndarray) -> np.ndarray:
        """Index of the latest checkpoint at or before each time (0, the empty one, if none)."""
        return np.maximum(np.searchsorted(self.checkpoints, times, side="right") - 1, 0)

    def seen_by(self, user: int, snapshot: int) -> np.ndarray:
        """0/1 per post: ``user`` viewed it before the checkpoint of ``snapshot``."""
        lo, hi = int(self.seen_ptr[user]), int(self.seen_ptr[user + 1])
        out = np.zeros(len(self.post_ids), np.float32)
        out[self.seen_post[lo:hi][self.seen_from[lo:hi] <= snapshot]] = 1.0
        return out

    def seen_keys(self) -> np.ndarray:
        """Sorted ``user * n_posts + post`` keys of the viewed pairs (for many rows at once)."""
        users = np.repeat(np.arange(len(self.seen_ptr) - 1), np.diff(self.seen_ptr))
        return users * len(self.post_ids) + self.seen_post

    def cf_at(self, time: int) -> int:
        """Index of the latest item-item snapshot at or before ``time``; -1 if none."""
        return int(np.searchsorted(self.cf_checkpoints, time, side="right")) - 1

    def save(self, directory: Path) -> None:
        """Arrays as ``.npy`` files (memory-mapped on load) and the rest as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                np.save(directory / f"{f.name}.npy", value)
        meta = {"vocab": self.vocab}
        (directory / TABLES_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> "FeatureTables":
        """Read :meth:`save`'s files; snapshots stay on disk until a request touches them."""
        meta = json.loads((directory / TABLES_FILE).read_text())
        # plain ndarray views of the maps: memmap's own __getitem__ costs ~40 us a call
        arrays: dict[str, Any] = {
            f.name: np.asarray(np.load(directory / f"{f.name}.npy", mmap_mode="r"))
            for f in fields(cls)
            if f.name not in meta
        }
        return cls(**arrays, **meta)


def build_tables(
    interactions: Interactions,
    posts: pd.DataFrame,
    users: pd.DataFrame,
    params: FeatureParams,
    *,
    until: int,
) -> FeatureTables:
    """Fit encodings and text embeddings and take the snapshots of ``interactions``
    (all before ``until``); the last checkpoint is ``until`` itself."""
    user_ids = np.union1d(users.index.to_numpy(np.int64), np.unique(interactions.user_id))
    static, vocab = _encode_users(users, user_ids)
    post_ids = posts.index.to_numpy(np.int64)
    topics = posts["topic"] if "topic" in posts else pd.Series("", index=posts.index)
    topic_codes, vocab["topic"] = encode(topics)
    texts = (posts["text"] if "text" in posts else pd.Series("", index=posts.index)).fillna("")
    vec = _embed(texts.astype(str).tolist(), params.text_dims, params.seed)
    lengths = np.c_[texts.str.len().to_numpy(), texts.str.count(r"\S+").to_numpy()]
    checkpoints = _checkpoints(interactions, until, params)
    counts = _snapshots(
        interactions,
        user_ids,
        post_ids,
        topic_codes,
        len(vocab["topic"]),
        checkpoints,
    )
    cf_checkpoints = ease_checkpoints(
        int(checkpoints[0]), until, max(params.cf_snapshots, 1), params.cf_start
    )
    cf_weights = np.stack(
        [_cf_weights(interactions, user_ids, post_ids, c, params) for c in cf_checkpoints]
    )
    return FeatureTables(
        user_ids=user_ids,
        user_static=static,
        post_ids=post_ids,
        post_topic=topic_codes.astype(np.int32),
        post_static=np.c_[lengths, vec].astype(np.float32),
        post_vec=vec,
        checkpoints=checkpoints,
        **counts,
        **_seen(interactions, user_ids, post_ids, checkpoints),
        cf_checkpoints=cf_checkpoints,
        cf_weights=cf_weights,
        global_rate=_global_rate(counts["post_likes"], counts["post_views"]),
        vocab=vocab,
    )


def encode(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes 1.. by descending frequency (ties by value); 0 for missing or empty values.

    >>> codes, vocab = encode(pd.Series(["b", "a", "b", "", None]))
    >>> codes.tolist(), vocab
    ([1, 2, 1, 0, 0], ['', 'b', 'a'])
    """
    text = values.astype(object).where(values.notna(), "").astype(str)
    counts = text[text != ""].value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    vocab = ["", *[str(value) for value, _ in ordered]]
    lookup = {value: code for code, value in enumerate(vocab)}
    return text.map(lookup).to_numpy(np.int64), vocab


def _encode_users(
    users: pd.DataFrame, user_ids: np.ndarray
) -> tuple[np.ndarray, dict[str, list[str]]]:
    frame = users.reindex(index=user_ids, columns=list(USER_STATIC))
    static = np.zeros((len(user_ids) + 1, len(USER_STATIC)), np.float32)
    static[:, : len(NUMERIC_USER_COLUMNS)] = -1.0  # unknown numbers, in the padding row too
    vocab: dict[str, list[str]] = {}
    for j, column in enumerate(NUMERIC_USER_COLUMNS):
        static[:-1, j] = pd.to_numeric(frame[column], errors="coerce").fillna(-1).to_numpy()
    for j, column in enumerate(CODED_USER_COLUMNS, start=len(NUMERIC_USER_COLUMNS)):
        codes, vocab[column] = encode(frame[column])
        static[:-1, j] = codes
    return static, vocab


def _embed(texts: list[str], dims: int, seed: int) -> np.ndarray:
    """Unit-length TF-IDF + SVD vectors of ``texts``, zero-padded to ``dims`` columns."""
    out = np.zeros((len(texts), dims))
    try:
        tfidf = TfidfVectorizer(max_features=50_000, sublinear_tf=True).fit_transform(texts)
    except ValueError:  # no words at all (e.g. a catalogue without texts)
        return out
    n = min(dims, tfidf.shape[1] - 1, len(texts) - 1)
    if n >= 1:
        svd = TruncatedSVD(n_components=n, algorithm="randomized", random_state=seed)
        out[:, :n] = svd.fit_transform(tfidf)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def _checkpoints(interactions: Interactions, until: int, params: FeatureParams) -> np.ndarray:
    first = int(interactions.timestamp[0]) if len(interactions) else until
    start = first - first % DAY
    span = max(until - start, 1)
    step = max(int(params.snapshot_days * DAY), -(-span // max(params.max_snapshots - 1, 1)))
    inner = np.arange(start, until, step, dtype=np.int64)
    return np.append(inner, until) if len(inner) else np.array([start, until], np.int64)


def _global_rate(likes: np.ndarray, views: np.ndarray) -> np.ndarray:
    n_likes, n_views = likes.sum(axis=1, dtype=np.float64), views.sum(axis=1, dtype=np.float64)
    return np.where(n_views > 0, n_likes / np.maximum(n_views, 1), 0.1)


def _seen(
    interactions: Interactions, user_ids: np.ndarray, post_ids: np.ndarray, checkpoints: np.ndarray
) -> dict[str, np.ndarray]:
    views = interactions.views()
    pos = np.searchsorted(post_ids, views.post_id).clip(0, max(len(post_ids) - 1, 0))
    known = post_ids[pos] == views.post_id if len(post_ids) else np.zeros(0, bool)
    users = np.searchsorted(user_ids, views.user_id[known])
    keys = users * len(post_ids) + pos[known]
    keys, first = np.unique(keys, return_index=True)  # views are in time order
    since = np.searchsorted(checkpoints, views.timestamp[known][first], side="right")
    n_posts = max(len(post_ids), 1)
    ptr = np.searchsorted(keys // n_posts, np.arange(len(user_ids) + 2))
    small = len(post_ids) <= np.iinfo(np.uint16).max
    return {
        "seen_ptr": ptr.astype(np.int64),
        "seen_post": (keys % n_posts).astype(np.uint16 if small else np.int32),
        "seen_from": since.astype(np.uint16),
    }


def _cf_weights(
    interactions: Interactions,
    user_ids: np.ndarray,
    post_ids: np.ndarray,
    checkpoint: int,
    params: FeatureParams,
) -> np.ndarray:
    likes = interactions.before(checkpoint).likes()
    pos = np.searchsorted(post_ids, likes.post_id).clip(0, max(len(post_ids) - 1, 0))
    known = post_ids[pos] == likes.post_id if len(post_ids) else np.zeros(0, bool)
    users = np.searchsorted(user_ids, likes.user_id[known])
    return ease_weights(users, pos[known], len(post_ids), params.cf_l2)


def _snapshots(
    interactions: Interactions,
    user_ids: np.ndarray,
    post_ids: np.ndarray,
    topic_codes: np.ndarray,
    n_topics: int,
    checkpoints: np.ndarray,
) -> dict[str, np.ndarray]:
    n_users, n_posts = len(user_ids) + 1, len(post_ids)
    post_pos = np.searchsorted(post_ids, interactions.post_id).clip(0, max(n_posts - 1, 0))
    known = (post_ids[post_pos] == interactions.post_id) if n_posts else post_pos < 0
    events = interactions.select(known)
    post_pos = post_pos[known]
    user_pos = np.searchsorted(user_ids, events.user_id)
    cell = user_pos * n_topics + topic_codes[post_pos]
    out: dict[str, np.ndarray] = {
        "user_views": np.zeros((len(checkpoints), n_users), np.uint32),
        "user_likes": np.zeros((len(checkpoints), n_users), np.uint32),
        "topic_views": np.zeros((len(checkpoints), n_users, n_topics), np.uint16),
        "topic_likes": np.zeros((len(checkpoints), n_users, n_topics), np.uint16),
        "post_views": np.zeros((len(checkpoints), n_posts), np.uint32),
        "post_likes": np.zeros((len(checkpoints), n_posts), np.uint32),
    }
    cells = {kind: np.zeros(n_users * n_topics, np.int64) for kind in ("views", "likes")}
    posts = {kind: np.zeros(n_posts, np.int64) for kind in ("views", "likes")}
    bounds = np.searchsorted(events.timestamp, checkpoints, side="left")
    for s in range(1, len(checkpoints)):
        part = slice(int(bounds[s - 1]), int(bounds[s]))
        like = events.is_like[part]
        for kind, mask in (("views", ~like), ("likes", like)):
            cells[kind] += np.bincount(cell[part][mask], minlength=n_users * n_topics)
            posts[kind] += np.bincount(post_pos[part][mask], minlength=n_posts)
            by_topic = cells[kind].reshape(n_users, n_topics)
            out[f"topic_{kind}"][s] = np.minimum(by_topic, np.iinfo(np.uint16).max)
            out[f"user_{kind}"][s] = by_topic.sum(axis=1)
            out[f"post_{kind}"][s] = posts[kind]
    return out
