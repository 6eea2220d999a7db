from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from recommenders.baselines import PopularityRecommender, RandomRecommender
from recommenders.evaluation import (
    compare_paired,
    evaluate,
    sample_requests,
    split_time_at_quantile,
)


def _movielens(directory: Path) -> tuple[Interactions, pd.DataFrame, pd.DataFrame]:
    """MovieLens as SPEC.md maps it, read straight from u.data (independent of the importer)."""
    ratings = pd.read_csv(directory / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    liked = ratings[ratings.rating >= 4]
    events = Interactions.from_arrays(
        np.r_[ratings.user, liked.user],
        np.r_[ratings.item, liked.item],
        np.r_[ratings.ts, liked.ts],
        np.r_[np.zeros(len(ratings), bool), np.ones(len(liked), bool)],
    )
    posts = pd.DataFrame({"text": "", "topic": ""}, index=np.arange(1, 1683))
    users = pd.DataFrame({"age": 0}, index=np.arange(1, 944))
    return events, posts, users


def test_movielens_protocol_matches_the_independent_computation(movielens_dir: Path) -> None:
    events, posts, users = _movielens(movielens_dir)
    split = split_time_at_quantile(events, 0.8)
    report = evaluate(
        events,
        posts,
        users,
        {"popular": PopularityRecommender(), "random": RandomRecommender()},
        split_time=split,
        k=5,
        progress=False,
    )
    assert report.requests == 775
    assert report.recommenders["popular"].hitrate == pytest.approx(0.29, abs=0.01)
    assert report.recommenders["random"].hitrate < 0.1
    assert report.ceiling == pytest.approx(0.85, abs=0.01)
    # random against popular (the first listed), on the same 775 requests
    versus = report.comparisons["random"]
    assert set(report.comparisons) == {"random"}
    assert versus.reference == "popular"
    hits = {name: score.hits for name, score in report.recommenders.items()}
    assert versus.only_this - versus.only_reference == hits["random"] - hits["popular"]
    assert versus.difference == pytest.approx((hits["random"] - hits["popular"]) / 775)
    assert versus.ci95[0] < versus.difference < versus.ci95[1] < 0
    assert versus.p_value < 1e-6


def test_a_paired_comparison_counts_the_requests_only_one_hit() -> None:
    # 10 requests only the first hit, 2 only the reference, 88 both or neither
    hits = np.r_[np.ones(10), np.zeros(2), np.ones(30), np.zeros(58)].astype(bool)
    reference = np.r_[np.zeros(10), np.ones(2), np.ones(30), np.zeros(58)].astype(bool)
    c = compare_paired(hits, reference, "catboost")
    assert (c.only_this, c.only_reference) == (10, 2)
    assert c.difference == pytest.approx(0.08)
    # two-sided exact binomial on 12 discordant requests: 2 * P(X <= 2) = 2 * 79 / 4096
    assert c.p_value == pytest.approx(2 * 79 / 4096)
    d = hits.astype(float) - reference
    half = 1.96 * d.std(ddof=1) / 10
    assert c.ci95 == pytest.approx((0.08 - half, 0.08 + half))
    same = compare_paired(reference, reference, "catboost")
    assert (same.difference, same.p_value, same.only_this) == (0.0, 1.0, 0)
    with pytest.raises(ValueError, match="equal-length"):
        compare_paired(hits, reference[:5], "catboost")


def test_hits_are_likes_of_shown_posts_within_the_window() -> None:
    # post 1 is the most liked before t=1000; user 5 views at 1000 and 5000 and likes post 1
    # at 1000 + 3600 (inside the window) and post 2 at 9000 (outside the second window)
    events = Interactions.from_arrays(
        user_id=[1, 2, 3, 5, 5, 5, 5],
        post_id=[1, 1, 2, 3, 1, 3, 2],
        timestamp=[10, 20, 30, 1000, 4600, 5000, 9000],
        is_like=[True, True, True, False, True, False, True],
    )
    posts = pd.DataFrame({"text": "", "topic": ""}, index=[1, 2, 3])
    report = evaluate(
        events,
        posts,
        pd.DataFrame(index=[1, 2, 3, 5]),
        {"popular": PopularityRecommender()},
        split_time=500,
        k=1,
        progress=False,
    )
    assert report.requests == 2
    assert report.recommenders["popular"].hits == 1
    assert report.ceiling == 0.5


def test_requests_are_sampled_reproducibly() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    events = Interactions.from_arrays(
        rng.integers(0, 500, n),
        rng.integers(0, 50, n),
        rng.integers(0, 10**6, n),
        np.zeros(n, bool),
    )
    a = sample_requests(events, 10**5, max_requests=100, seed=4)
    b = sample_requests(events, 10**5, max_requests=100, seed=4)
    assert len(a) == 100
    assert np.array_equal(a.user_id, b.user_id)
    assert np.array_equal(a.time, b.time)
    assert np.all(a.time >= 10**5)
    assert np.all(np.diff(a.time) >= 0)


def test_bad_arguments_name_the_problem() -> None:
    events = Interactions.from_arrays([1], [1], [10], [False])
    with pytest.raises(ValueError, match="quantile"):
        split_time_at_quantile(events, 1.5)
    with pytest.raises(ValueError, match="no view events"):
        evaluate(events, pd.DataFrame(index=[1]), pd.DataFrame(), {}, split_time=100)
    with pytest.raises(ValueError, match="reference 'catboost' is not among"):
        evaluate(
            events,
            pd.DataFrame(index=[1]),
            pd.DataFrame(),
            {"popular": PopularityRecommender()},
            split_time=0,
            reference="catboost",
        )
