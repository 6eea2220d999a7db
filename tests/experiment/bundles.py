"""Real model bundles of the baselines, fitted on the tiny data set and saved to a folder."""

from pathlib import Path

import numpy as np

from feeddata.interactions import Interactions
from recommenders.base import Recommender, TrainingData
from recommenders.history import LikeHistory
from recommenders.registry import make_recommender
from tests.api import tiny_data

UNTIL = 1_700_000_000


def tiny_interactions() -> Interactions:
    feed = tiny_data.feed()
    return Interactions(
        feed["user_id"].to_numpy(np.int64),
        feed["post_id"].to_numpy(np.int64),
        feed["timestamp"].to_numpy("datetime64[s]").astype(np.int64),
        (feed["action"] == "like").to_numpy(),
        feed["target"].to_numpy(np.int8),
    )


def tiny_history() -> LikeHistory:
    return LikeHistory(tiny_data.POSTS["post_id"].to_numpy(np.int64), tiny_interactions().likes())


def fit_baseline(name: str) -> Recommender:
    """The recommender ``name`` fitted on the tiny data."""
    data = TrainingData(
        tiny_interactions(),
        tiny_data.POSTS.set_index("post_id"),
        tiny_data.USERS.set_index("user_id"),
        UNTIL,
    )
    return make_recommender(name).fit(data)


def save_bundle(artifacts: Path, name: str, folder: str | None = None) -> Path:
    """Fit the recommender ``name`` on the tiny data and save it to ``artifacts/folder``."""
    return fit_baseline(name).save(artifacts / (folder or name))
