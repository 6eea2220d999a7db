"""The course's log files reduced to per-user rows: window edges, top-k, crossover users,
pre-period likes and the daily statistics, counted by hand."""

from pathlib import Path

import pandas as pd
import pytest

from analysis.logs import parse_recommendations, read_likes, read_views, reduce_logs

VIEWS = pd.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 3, 4],
        "exp_group": ["control", "control", "test", "control", "test", "test"],
        "recommendations": ["[10 11 12]", "[13 14]", "[10 20]", "[30 31]", "[30 32]", "[40, 41]"],
        "timestamp": [1000, 90_000, 2000, 5000, 6000, 100],
    }
)
LIKES = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 1, 1, 2, 2, 2, 3, 5],
        "post_id": [10, 11, 12, 13, 99, 20, 20, 20, 30, 10],
        "timestamp": [1000, 4600, 1500, 93_601, 500, 1999, 2500, 2600, 5500, 1000],
    }
)


@pytest.fixture
def data():
    return reduce_logs(VIEWS, LIKES, window=3600, k=2)


def column(data, name):
    return dict(zip(data.users.user_id.tolist(), getattr(data.users, name).tolist(), strict=True))


def test_crossover_users_are_listed_and_excluded(data):
    assert data.crossover_users == (3,)
    assert data.users_seen == 4
    assert data.users.user_id.tolist() == [1, 2, 4]
    assert data.exposures == 4


def test_hits_count_likes_of_the_first_k_posts_within_the_window(data):
    # user 1: likes at t and at t + window count; post 12 is not in the top 2; the like
    # one second after the second event's window does not count
    assert column(data, "exposures") == {1: 2, 2: 1, 4: 1}
    assert column(data, "hits") == {1: 1, 2: 1, 4: 0}
    assert column(data, "shown") == {1: 4, 2: 2, 4: 2}
    # user 2 liked post 20 twice in the window: one liked shown post
    assert column(data, "liked_shown") == {1: 2, 2: 1, 4: 0}


def test_likes_during_the_experiment_and_before_the_first_exposure(data):
    # the experiment ends one window after the last exposure (90,000 + 3,600)
    assert column(data, "likes") == {1: 3, 2: 2, 4: 0}
    assert column(data, "pre_likes") == {1: 1, 2: 1, 4: 0}
    assert data.likes == 3 + 2 + 1 + 1


def test_arm_statistics_and_daily_rows(data):
    assert data.arms == ("control", "test")
    control = data.arm_stats["control"].metrics["hitrate"].metric
    test = data.arm_stats["test"].metrics["hitrate"].metric
    assert (control.n, control.num_sum, control.den_sum) == (1, 1, 2)
    assert (test.n, test.num_sum, test.den_sum) == (2, 1, 2)
    days = {(d.day, d.arm): (d.stat.n, d.stat.num_sum, d.stat.den_sum) for d in data.daily}
    assert days == {
        ("1970-01-01", "control"): (1, 1, 1),
        ("1970-01-01", "test"): (2, 1, 2),
        ("1970-01-02", "control"): (1, 0, 1),
    }
    assert data.time_range == (100, 90_000)


def test_parse_recommendations_keeps_the_first_k_of_each_row():
    events, posts = parse_recommendations(pd.Series(["[1 2 3]", "[]", "[4,5,6]", "[ 7 ]"]), k=2)
    assert events.tolist() == [0, 0, 2, 2, 3]
    assert posts.tolist() == [1, 2, 4, 5, 7]


def test_bad_recommendations_name_the_row():
    with pytest.raises(ValueError, match=r"data row 2: '\[1 x\]'"):
        parse_recommendations(pd.Series(["[1 2]", "[1 x]"]), k=5)


def test_files_round_trip_and_errors_name_file_and_column(tmp_path: Path):
    views_path, likes_path = tmp_path / "views.csv", tmp_path / "likes.csv"
    VIEWS.to_csv(views_path, index=False)
    LIKES.to_csv(likes_path, index=False)
    from_files = reduce_logs(read_views(views_path), read_likes(likes_path), window=3600, k=2)
    assert from_files.arm_stats == reduce_logs(VIEWS, LIKES, window=3600, k=2).arm_stats
    LIKES.drop(columns="post_id").to_csv(likes_path, index=False)
    with pytest.raises(ValueError, match=r"likes.csv: missing column\(s\) post_id"):
        read_likes(likes_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_views(tmp_path / "nope.csv")


def test_numeric_groups_and_empty_logs():
    numeric = VIEWS.assign(exp_group=[0, 0, 1, 0, 1, 1])
    assert reduce_logs(numeric, LIKES).arms == ("0", "1")
    empty = reduce_logs(VIEWS.iloc[:0], LIKES.iloc[:0])
    assert empty.arms == ()
    assert empty.users is not None
    assert empty.users.user_id.size == 0
    assert empty.time_range is None
