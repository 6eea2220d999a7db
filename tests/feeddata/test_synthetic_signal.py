"""The synthetic feed tells recommenders apart under the offline protocol of SPEC.md.

hitrate@5 with a one-hour window, split at the 0.8 quantile of view times: a recommended
post only counts when the user views and likes it within the hour, so the logged feed must
show some posts far more than others (popularity), show users what suits them
(personalisation) and come in sessions. On a uniformly random feed popularity and an oracle
of the hidden truth are both close to random and few requests are followed by any like.
"""

from functools import cache

import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from feeddata.sources.synthetic import SyntheticConfig, ground_truth, iter_chunks
from feeddata.sources.synthetic import like_probability as truth_like_probability
from feeddata.sources.synthetic_feed import PostSampler
from recommenders.base import Recommender, TrainingData
from recommenders.baselines import PopularityRecommender, RandomRecommender
from recommenders.evaluation import EvaluationReport, evaluate, split_time_at_quantile
from recommenders.history import LikeHistory

pytestmark = pytest.mark.slow  # about ten seconds: generate, then evaluate

SIGNAL = SyntheticConfig(users=4_000, posts=500, days=8, seed=3)
DAY = 86_400


class TruthOracle(Recommender):
    """Ranks posts by the hidden P(like) times how likely the old feed is to show them."""

    name = "oracle"

    def __init__(self, config: SyntheticConfig) -> None:
        super().__init__()
        self.truth = ground_truth(config)
        self.feed = PostSampler(self.truth, config)
        self.start = int(pd.Timestamp(config.start).value // 1_000_000_000)

    def _fit(self, data: TrainingData) -> dict[str, int]:
        return {}

    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        p = truth_like_probability(self.truth, user_id, history.post_ids, time)
        user = int(self.truth.user_index([user_id])[0])
        shown = self.feed.exposure(user, (time - self.start) // DAY)
        return np.asarray(p * shown[self.truth.post_index(history.post_ids)])


@cache
def report(config: SyntheticConfig) -> EvaluationReport:
    parts: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(config):
        parts.setdefault(chunk.table, []).append(chunk.rows)
    feed = pd.concat(parts["feed_data"], ignore_index=True)
    events = Interactions.from_arrays(
        feed["user_id"].to_numpy(),
        feed["post_id"].to_numpy(),
        feed["timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64),
        (feed["action"] == "like").to_numpy(),
        feed["target"].to_numpy(),
    )
    posts = pd.concat(parts["post_text_df"]).set_index("post_id")
    users = pd.concat(parts["user_data"]).set_index("user_id")
    recommenders: dict[str, Recommender] = {
        "random": RandomRecommender(),
        "popular": PopularityRecommender(),
        "oracle": TruthOracle(config),
    }
    split = split_time_at_quantile(events, 0.8)
    return evaluate(
        events, posts, users, recommenders, split_time=split, k=5, window=3600, progress=False
    )


def test_requests_are_mostly_followed_by_likes() -> None:
    result = report(SIGNAL)
    assert result.requests > 1_500
    assert result.ceiling > 0.4


def test_popularity_is_strong_and_the_truth_beats_it() -> None:
    hitrate = {name: score.hitrate for name, score in report(SIGNAL).recommenders.items()}
    assert hitrate["popular"] > 0.05
    assert hitrate["popular"] > 2 * hitrate["random"]
    assert hitrate["oracle"] > 1.3 * hitrate["popular"]
