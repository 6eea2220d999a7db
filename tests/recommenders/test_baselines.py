from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from recommenders.base import NotFittedError, Recommender, TrainingData, top_k, top_k_set
from recommenders.baselines import PopularityRecommender, RandomRecommender
from recommenders.history import LikeHistory
from recommenders.registry import FACTORIES, make_recommender

POSTS = pd.DataFrame({"text": ["a", "b", "c", "d"], "topic": ["x"] * 4}, index=[10, 11, 12, 13])
USERS = pd.DataFrame({"age": [20, 30]}, index=[1, 2])
# post 12: 3 likes, post 11: 2 likes (one of them late), post 13: 1, post 10: 0
LIKES = Interactions.from_arrays(
    user_id=[1, 2, 2, 1, 2, 1],
    post_id=[12, 12, 11, 13, 12, 11],
    timestamp=[100, 110, 120, 130, 140, 900],
    is_like=[True] * 6,
)


def _fitted(model: Recommender, until: int = 1000) -> Recommender:
    return model.fit(TrainingData.cut(LIKES, POSTS, USERS, until))


def test_popularity_ranks_by_likes_before_the_request_time() -> None:
    history = LikeHistory(POSTS.index.to_numpy(), LIKES)
    popular = _fitted(PopularityRecommender())
    # user 2 liked 12 and 11 before t=500: only 13 and 10 are left, by likes then post id
    assert popular.recommend(2, 500, 4, history).tolist() == [13, 10]
    # a new user at t=125 sees counts before 125: 12 (2 likes), 11 (1), then 10, 13 (0) by id
    assert popular.recommend(7, 125, 4, history).tolist() == [12, 11, 10, 13]
    # the late like of post 11 by user 1 at t=900 is invisible before 900
    assert popular.recommend(1, 900, 2, history).tolist() == [11, 10]


def test_recommend_refuses_bad_arguments() -> None:
    history = LikeHistory(POSTS.index.to_numpy(), LIKES)
    with pytest.raises(NotFittedError):
        PopularityRecommender().recommend(1, 0, 3, history)
    with pytest.raises(ValueError, match="k must be at least 1"):
        _fitted(PopularityRecommender()).recommend(1, 0, 0, history)


def test_fit_refuses_rows_from_after_until() -> None:
    with pytest.raises(ValueError, match="before `until`"):
        PopularityRecommender().fit(TrainingData(LIKES, POSTS, USERS, until=500))


def test_random_is_reproducible_and_distinct() -> None:
    history = LikeHistory(POSTS.index.to_numpy(), LIKES)
    model = _fitted(RandomRecommender(seed=3))
    first = model.recommend(1, 50, 4, history)
    assert first.tolist() == model.recommend(1, 50, 4, history).tolist()
    assert sorted(first.tolist()) == [10, 11, 12, 13]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_bundle_round_trip_gives_the_same_recommendations(name: str, tmp_path: Path) -> None:
    history = LikeHistory(POSTS.index.to_numpy(), LIKES)
    model = _fitted(make_recommender(name))
    loaded = type(model).load(model.save(tmp_path / name))
    assert loaded.meta == model.meta
    for user, time in [(1, 50), (2, 500), (9, 2000)]:
        assert np.array_equal(
            model.recommend(user, time, 3, history), loaded.recommend(user, time, 3, history)
        )


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_same_data_and_seed_give_the_same_model(name: str) -> None:
    history = LikeHistory(POSTS.index.to_numpy(), LIKES)
    a, b = _fitted(make_recommender(name)), _fitted(make_recommender(name))
    assert a.version == b.version
    assert np.array_equal(a.recommend(1, 50, 4, history), b.recommend(1, 50, 4, history))


def test_loading_another_models_bundle_is_refused(tmp_path: Path) -> None:
    _fitted(PopularityRecommender()).save(tmp_path)
    with pytest.raises(ValueError, match="holds a 'popular' bundle"):
        RandomRecommender.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"meta\.json"):
        PopularityRecommender.load(tmp_path / "missing")


def test_one_blas_thread_limits_numpy_and_restores_it() -> None:
    from threadpoolctl import threadpool_info

    from recommenders.base import one_blas_thread

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    before = blas_threads()
    with one_blas_thread():
        assert blas_threads() == {1}
    assert blas_threads() == before


@pytest.mark.parametrize("seed", range(20))
def test_top_k_set_picks_the_posts_top_k_ranks_first(seed: int) -> None:
    # Few distinct values: the cut falls inside a run of ties most of the time.
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, rng.integers(1, 60)).astype(np.float64)
    everything = np.ones(len(scores), bool)
    assert top_k_set(scores, 0).size == 0
    for k in (1, 2, 5, len(scores) // 2 + 1, len(scores), len(scores) + 3):
        expected = top_k(scores, k, everything)
        assert sorted(top_k_set(scores, k).tolist()) == sorted(expected.tolist())
