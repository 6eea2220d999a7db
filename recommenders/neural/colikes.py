"""Co-likes: the item-item signal of the neural model's feature head.

EASE weights (:func:`recommenders.peers.ease_weights`) are fitted on the likes before each
of a few checkpoints in the training period, and each post keeps only its ``k`` strongest
neighbours (by absolute weight), so a snapshot costs P x k entries instead of P x P. The
score of post j for a user at time t sums, over the posts the user liked before t, their
weights to j in the latest snapshot fitted before t: training examples and requests read
the same snapshots, and none of them has seen a like from t or later. Before the first
checkpoint there is no snapshot and the scores are zero (the feature head is told so).
"""

import sys
from dataclasses import dataclass

import numpy as np

from recommenders.peers import ease_checkpoints, ease_weights


@dataclass(frozen=True)
class CoLikesParams:
    neighbours: int
    """Neighbours kept per post (0 turns co-likes off)."""
    snapshots: int
    start: float
    """The first snapshot is fitted this share of the way through the training period."""
    l2: float


@dataclass
class CoLikes:
    """Each post's strongest item-item neighbours at each checkpoint."""

    checkpoints: np.ndarray  # int64 (K,), ascending
    neighbours: np.ndarray  # uint16 or int32 (K, P, k): post positions
    weights: np.ndarray  # float32 (K, P, k)

    @classmethod
    def fit(
        cls,
        row: np.ndarray,
        post: np.ndarray,
        ts: np.ndarray,
        n_posts: int,
        checkpoints: np.ndarray,
        *,
        k: int,
        l2: float,
        progress: bool = False,
    ) -> "CoLikes":
        """Snapshots from likes (user rows, post positions, times) before each checkpoint."""
        k = min(k, max(n_posts - 1, 0))
        post_type = np.uint16 if n_posts <= np.iinfo(np.uint16).max else np.int32
        neighbours = np.zeros((len(checkpoints), n_posts, k), post_type)
        weights = np.zeros((len(checkpoints), n_posts, k), np.float32)
        for s, checkpoint in enumerate(checkpoints):
            if progress:
                step = f"{s + 1}/{len(checkpoints)}"
                print(f"[neural] co-likes: EASE snapshot {step}", file=sys.stderr, flush=True)
            before = ts < checkpoint
            if k == 0 or not before.any():
                continue
            dense = ease_weights(row[before], post[before], n_posts, l2)
            top = np.argpartition(-np.abs(dense), k - 1, axis=1)[:, :k]
            neighbours[s] = top
            weights[s] = np.take_along_axis(dense, top, axis=1)
        return cls(np.asarray(checkpoints, np.int64), neighbours, weights)

    @classmethod
    def for_likes(
        cls,
        row: np.ndarray,
        post: np.ndarray,
        ts: np.ndarray,
        n_posts: int,
        until: int,
        params: CoLikesParams,
        progress: bool = False,
    ) -> "CoLikes":
        """Snapshots spread over the likes' period up to ``until`` as ``params`` say."""
        if params.neighbours <= 0 or not len(ts):
            return cls.empty(n_posts)
        times = ease_checkpoints(int(ts.min()), until, params.snapshots, params.start)
        return cls.fit(
            row, post, ts, n_posts, times, k=params.neighbours, l2=params.l2, progress=progress
        )

    @classmethod
    def empty(cls, n_posts: int) -> "CoLikes":
        return cls(
            np.zeros(0, np.int64), np.zeros((0, n_posts, 0), np.int32), np.zeros((0, n_posts, 0))
        )

    @property
    def n_posts(self) -> int:
        return int(self.neighbours.shape[1])

    def at(self, times: np.ndarray) -> np.ndarray:
        """Index of the latest snapshot fitted at or before each time; -1 where none is."""
        return np.searchsorted(self.checkpoints, times, side="right") - 1

    def scores(self, snapshot: np.ndarray, owner: np.ndarray, liked: np.ndarray) -> np.ndarray:
        """float32 (B, P): row i sums the neighbour weights of the liked posts ``liked[n]``
        with ``owner[n] == i``, read from snapshot ``snapshot[i]`` (zero where it is -1).

        >>> co = CoLikes(np.array([10]), np.array([[[1], [0], [1]]]), np.ones((1, 3, 1)))
        >>> co.scores(np.array([0, -1]), np.array([0, 0, 1]), np.array([0, 2, 0])).tolist()
        [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
        """
        b, n_posts = len(snapshot), self.n_posts
        snap = snapshot[owner]
        keep = snap >= 0
        owner, liked, snap = owner[keep], liked[keep], snap[keep]
        if not len(owner) or self.neighbours.shape[2] == 0:
            return np.zeros((b, n_posts), np.float32)
        cells = owner[:, None].astype(np.int64) * n_posts + self.neighbours[snap, liked]
        sums = np.bincount(cells.ravel(), self.weights[snap, liked].ravel(), b * n_posts)
        return sums.reshape(b, n_posts).astype(np.float32)
