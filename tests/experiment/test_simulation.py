"""The traffic model of `feedlab simulate`: visit plans, planted effects, replayed likes."""

import numpy as np
import pytest

from experiment.simulation import TruthLikes, parse_effects, plan_day
from feeddata.sources.synthetic import SyntheticConfig, ground_truth, like_probability


@pytest.fixture(scope="module")
def truth_likes() -> TruthLikes:
    return TruthLikes(ground_truth(SyntheticConfig.demo(users=300, posts=80, days=2, seed=5)))


def test_visits_follow_the_hour_curve_and_the_rates(truth_likes: TruthLikes) -> None:
    users = truth_likes.users()
    rates = truth_likes.visits_per_day(users, 2.0)
    assert rates.mean() == pytest.approx(2.0)
    weights = np.zeros(24)
    weights[18:22] = 1.0  # evenings only
    visits = plan_day(
        day_start=86_400 * 10,
        user_ids=users,
        visits_per_day=rates,
        hour_weights=weights,
        rng=np.random.default_rng(1),
    )
    assert len(visits) == pytest.approx(2.0 * len(users), rel=0.15)
    assert all(18 <= (v.time - 86_400 * 10) // 3600 < 22 for v in visits)
    assert [v.time for v in visits] == sorted(v.time for v in visits)


def test_a_planted_effect_scales_the_like_probability(truth_likes: TruthLikes) -> None:
    posts = truth_likes.truth.post_ids
    user = int(truth_likes.users()[0])
    planted = TruthLikes(truth_likes.truth, {"test": 0.0, "control": 1e9})

    def liked(model: TruthLikes, arm: str, seed: int) -> int:
        rng = np.random.default_rng(seed)
        return int(model.liked(user, posts, 1_640_000_000, arm, rng).sum())

    assert liked(planted, "test", 0) == 0
    assert liked(planted, "control", 0) == len(posts)
    assert liked(truth_likes, "test", 0) == liked(truth_likes, "other", 0)  # default factor 1
    draws = [liked(truth_likes, "x", s) for s in range(200)]
    mean = like_probability(truth_likes.truth, user, posts, 1_640_000_000).sum()
    assert np.mean(draws) == pytest.approx(mean, rel=0.1)


def test_effects_are_parsed_strictly() -> None:
    assert parse_effects([]) == {}
    for bad in ("test", "test=", "=1.1", "test=-1", "test=abc"):
        with pytest.raises(ValueError, match="expected ARM=FACTOR"):
            parse_effects([bad])


def test_unknown_users_are_refused(truth_likes: TruthLikes) -> None:
    with pytest.raises(ValueError, match="user_ids: 1 is not in the ground truth"):
        truth_likes.liked(1, truth_likes.truth.post_ids[:3], 0, "control", np.random.default_rng())
