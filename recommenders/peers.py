"""A strong collaborative peer for the control model: EASE.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) learns an
item-item weight matrix B with a zero diagonal from the user x item matrix X of likes:
with G = X^T X + lambda I and P = G^-1, B = I - P diag(1 / diag(P)) (the closed form of
eq. 8 there). A user's scores are x_u B, where x_u marks the posts the user liked before
the request time, read from the live :class:`LikeHistory` (so likes after training count,
and nothing from after the request does). Users with no likes yet get popularity: the
post like counts before the request time, scaled far below any learned weight, break ties.
"""

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recommenders.base import BundleMeta, Recommender, TrainingData
from recommenders.history import LikeHistory

WEIGHTS_FILE = "ease_weights.npy"
_POPULARITY_SCALE = 1e-6


def ease_weights(user: np.ndarray, post: np.ndarray, n_posts: int, l2: float) -> np.ndarray:
    """EASE's item-item weights (float32, zero diagonal) from like pairs (user, post
    positions); repeated pairs count once."""
    n_users = int(user.max()) + 1 if len(user) else 0
    ones = np.ones(len(user), np.float64)
    x = sp.csr_matrix((ones, (user, post)), shape=(n_users, n_posts))
    x.sum_duplicates()
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()
    gram[np.diag_indices(n_posts)] += l2
    inverse = np.linalg.inv(gram)  # LU measured faster than a Cholesky inverse here
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


def ease_checkpoints(first: int, until: int, snapshots: int, start: float) -> np.ndarray:
    """When time-safe EASE snapshots are fitted: ``snapshots`` times evenly spaced from
    ``start`` of the way between ``first`` and ``until`` to ``until``.

    >>> ease_checkpoints(0, 100, 4, 0.25).tolist()
    [25, 50, 75, 100]
    """
    if snapshots <= 0:
        return np.zeros(0, np.int64)
    begin = first + start * (until - first)
    return np.unique(np.linspace(begin, until, snapshots).round().astype(np.int64))


class EASERecommender(Recommender):
    """EASE over likes (see the module docstring); ``l2`` is the paper's lambda."""

    name = "ease"

    def __init__(self, l2: float = 200.0) -> None:
        super().__init__()
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = l2
        self.post_ids = np.zeros(0, np.int64)
        self.weights = np.zeros((0, 0), np.float32)

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2}

    def _fit(self, data: TrainingData) -> dict[str, int]:
        self.post_ids = data.posts.index.to_numpy(np.int64)
        likes = data.interactions.likes()
        n_posts = len(self.post_ids)
        pos = np.searchsorted(self.post_ids, likes.post_id).clip(0, max(n_posts - 1, 0))
        known = self.post_ids[pos] == likes.post_id if n_posts else np.zeros(0, bool)
        users, user_pos = np.unique(likes.user_id[known], return_inverse=True)
        self.weights = ease_weights(user_pos, pos[known], n_posts, self.l2)
        return {"likes": int(known.sum()), "users": len(users), "posts": n_posts}

    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        if history.n_posts != len(self.post_ids):
            raise ValueError(
                f"the catalogue has {history.n_posts} posts but EASE was trained on "
                f"{len(self.post_ids)}; retrain it"
            )
        liked = np.unique(history.liked_before(user_id, time))
        popularity = history.like_counts_before(time).astype(np.float64)
        scores = self.weights[liked].sum(axis=0, dtype=np.float64)
        return scores + _POPULARITY_SCALE * popularity / max(popularity.max(initial=0.0), 1.0)

    def _save(self, directory: Path) -> None:
        np.save(directory / WEIGHTS_FILE, self.weights)
        np.save(directory / "post_ids.npy", self.post_ids)

    @classmethod
    def _load(cls, directory: Path, meta: BundleMeta) -> Self:
        model = cls(**meta.params)
        model.weights = np.load(directory / WEIGHTS_FILE, mmap_mode="r")
        model.post_ids = np.load(directory / "post_ids.npy")
        return model
