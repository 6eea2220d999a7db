import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from recommenders.base import TrainingData
from recommenders.history import LikeHistory
from recommenders.peers import EASERecommender, ease_weights


def test_ease_weights_solve_each_column_s_ridge_regression() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((60, 8)) < 0.3).astype(float)
    users, posts = np.nonzero(x)
    weights = ease_weights(users, posts, 8, l2=5.0)
    assert np.all(np.diag(weights) == 0)
    # independently: column j regresses x_j on the other columns with an l2 penalty
    for j in range(8):
        rest = np.delete(np.arange(8), j)
        a = x[:, rest]
        expected = np.linalg.solve(a.T @ a + 5.0 * np.eye(7), a.T @ x[:, j])
        np.testing.assert_allclose(weights[rest, j], expected, rtol=1e-4, atol=1e-6)


def test_repeated_likes_count_once() -> None:
    once = ease_weights(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, l2=1.0)
    twice = ease_weights(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), 2, l2=1.0)
    assert np.array_equal(once, twice)


def _history_and_model() -> tuple[EASERecommender, LikeHistory]:
    # users 1-3 like posts 10 and 11 together; post 12 is liked alone, twice
    likes = Interactions.from_arrays(
        [1, 1, 2, 2, 3, 3, 4, 5, 6],
        [10, 11, 10, 11, 10, 11, 12, 12, 11],
        [1, 2, 3, 4, 5, 6, 7, 8, 50],
        [True] * 9,
    )
    posts = pd.DataFrame({"text": "", "topic": ""}, index=[10, 11, 12, 13])
    model = EASERecommender(l2=0.5).fit(TrainingData.cut(likes, posts, pd.DataFrame(), 40))
    return model, LikeHistory(posts.index.to_numpy(), likes)


def test_scores_use_the_likes_before_the_request_only() -> None:
    model, history = _history_and_model()
    # user 6 likes 11 at t=50: before it they are a cold user and get popularity (10, 11, 12
    # then 13); after it, post 10 (co-liked with 11) comes first
    assert model.recommend(6, 50, 2, history).tolist() == [10, 11]
    assert model.recommend(6, 51, 1, history).tolist() == [10]
    assert model.recommend(99, 51, 4, history).tolist() == [11, 10, 12, 13]


def test_refuses_a_bad_penalty() -> None:
    with pytest.raises(ValueError, match="l2"):
        EASERecommender(l2=0)
