"""Baselines every model is compared with: popularity (also the fallback) and random."""

import hashlib
from typing import Any

import numpy as np

from recommenders.base import Recommender, TrainingData
from recommenders.history import LikeHistory


class PopularityRecommender(Recommender):
    """The posts with the most likes before the request time (the course's stage 1).

    Counts come from the live :class:`LikeHistory`, so a request at ``t`` sees exactly the
    likes before ``t``; ties go to the lower post id.
    """

    name = "popular"

    def _fit(self, data: TrainingData) -> dict[str, int]:
        return {"likes": int(data.interactions.is_like.sum())}

    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        return history.like_counts_before(time).astype(np.float64)


class RandomRecommender(Recommender):
    """Uniformly random posts, reproducible per (seed, user, time)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _fit(self, data: TrainingData) -> dict[str, int]:
        return {}

    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        key = hashlib.sha256(f"{self.seed}:{user_id}:{time}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(key[:8], "big"))
        return rng.random(history.n_posts)
