"""The database input: the same logs stored as exposures and feed_data likes give exactly
the statistics of the file input, on SQLite and on PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Connection, Engine

from analysis.database import read_experiment, read_feed_history
from analysis.logs import reduce_logs
from analysis.report import AnalysisConfig, analyse
from analysis.synthetic_logs import synthetic_logs
from feeddata.db import create_schema, make_engine
from feeddata.exposures import Exposure, write_exposures
from feeddata.schema import feed_data
from tests.conftest import throwaway_database

# far from any id another test might have committed to the shared test database
USER_OFFSET = 900_000_000
EXPERIMENT = "analysis-test"


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC).replace(tzinfo=None)


def store(conn: Connection, views: pd.DataFrame, likes: pd.DataFrame, forced: bool = False):
    batch = [
        Exposure(
            request_id=f"{EXPERIMENT}-{forced}-{i}",
            experiment=EXPERIMENT,
            arm=row["exp_group"],
            bucket=0,
            forced=forced,
            user_id=int(row["user_id"]),
            request_time=_time(row["timestamp"]),
            served_at=_time(row["timestamp"]),
            recommender="popular",
            model_version="1",
            post_ids=tuple(int(p) for p in row["recommendations"].strip("[]").split()),
        )
        for i, row in enumerate(views.to_dict("records"))
    ]
    write_exposures(bind=conn, batch=batch)
    if len(likes):
        conn.execute(
            feed_data.insert(),
            [
                {
                    "timestamp": _time(row["timestamp"]),
                    "user_id": int(row["user_id"]),
                    "post_id": int(row["post_id"]),
                    "action": "like",
                    "target": 0,
                }
                for row in likes.to_dict("records")
            ],
        )


@pytest.fixture
def logs():
    views, likes = synthetic_logs(users=150, exposures=450, likes=500, lift=0.2, seed=7)
    views["user_id"] += USER_OFFSET
    likes["user_id"] += USER_OFFSET
    # a crossover user: their second exposure claims the other arm
    first = views.index[views["user_id"].duplicated(keep=False)][0]
    other = views.index[(views["user_id"] == views.loc[first, "user_id"])][1]
    views.loc[other, "exp_group"] = (
        "test" if views.loc[first, "exp_group"] == "control" else "control"
    )
    return views, likes


def test_database_input_equals_the_file_input(db: Connection, logs):
    views, likes = logs
    store(db, views, likes)
    # a QA account forced into an arm is not randomised: left out
    qa = views.iloc[:3].assign(user_id=USER_OFFSET + 99_999)
    store(db, qa, likes.iloc[:0], forced=True)
    from_db = read_experiment(bind=db, experiment=EXPERIMENT, window=3600, k=5)
    from_files = reduce_logs(views, likes, window=3600, k=5)
    assert from_db.arms == from_files.arms == ("control", "test")
    assert from_db.arm_stats == from_files.arm_stats
    assert from_db.daily == from_files.daily
    assert from_db.crossover_users == from_files.crossover_users
    assert len(from_db.crossover_users) == 1
    assert (from_db.users_seen, from_db.exposures, from_db.likes) == (
        from_files.users_seen,
        from_files.exposures,
        from_files.likes,
    )
    assert from_db.time_range == from_files.time_range
    assert from_db.users is not None
    assert from_files.users is not None
    for name in ("user_id", "arm", "exposures", "hits", "shown", "liked_shown", "likes"):
        assert getattr(from_db.users, name).tolist() == getattr(from_files.users, name).tolist()


def _same_data(a, b) -> None:
    assert (a.arms, a.arm_stats, a.daily, a.crossover_users) == (
        b.arms,
        b.arm_stats,
        b.daily,
        b.crossover_users,
    )
    assert (a.users_seen, a.exposures, a.likes, a.time_range) == (
        b.users_seen,
        b.exposures,
        b.likes,
        b.time_range,
    )
    for name in ("user_id", "arm", "exposures", "hits", "shown", "liked_shown", "likes"):
        assert getattr(a.users, name).tolist() == getattr(b.users, name).tolist(), name
    assert a.users.pre_likes.tolist() == b.users.pre_likes.tolist()


def test_sessions_sharing_the_users_give_the_same_data(db: Connection, logs):
    views, likes = logs
    views = pd.concat([views, views.assign(user_id=-views["user_id"])])  # negative ids too
    likes = pd.concat([likes, likes.assign(user_id=-likes["user_id"])])
    store(db, views, likes)
    one = read_experiment(bind=db, experiment=EXPERIMENT, sessions=1)
    assert one.users is not None
    assert (one.users.user_id < 0).sum() == (one.users.user_id > 0).sum()
    # on a connection, the partitions take turns in it
    _same_data(read_experiment(bind=db, experiment=EXPERIMENT, sessions=3), one)


@pytest.fixture(scope="module")
def committed_engine(postgres_engine: Engine) -> Iterator[Engine]:
    """A throwaway PostgreSQL database whose data other sessions can see."""
    for url in throwaway_database("feedlab_analysis_test"):
        engine = make_engine(url)
        create_schema(engine)
        yield engine
        engine.dispose()


def test_concurrent_sessions_read_one_snapshot(committed_engine: Engine, logs):
    views, likes = logs
    with committed_engine.begin() as conn:
        store(conn, views, likes)
    data = read_experiment(bind=committed_engine, experiment=EXPERIMENT, sessions=3)
    _same_data(data, reduce_logs(views, likes))
    with pytest.raises(ValueError, match="sessions"):
        read_experiment(bind=committed_engine, experiment=EXPERIMENT, sessions=0)


def test_window_and_k_reach_the_sql(db: Connection, logs):
    views, likes = logs
    store(db, views, likes)
    for window, k in ((0, 5), (600, 2)):
        from_db = read_experiment(bind=db, experiment=EXPERIMENT, window=window, k=k)
        assert from_db.arm_stats == reduce_logs(views, likes, window=window, k=k).arm_stats


def test_sums_only_without_user_rows(db: Connection, logs):
    views, likes = logs
    store(db, views, likes)
    data = read_experiment(bind=db, experiment=EXPERIMENT, user_rows=False)
    assert data.users is None
    report = analyse(data, AnalysisConfig(min_users_per_arm=10))
    assert report.metric("hitrate").effect.ok
    assert report.metric("hitrate").bootstrap is None
    assert report.likes_histogram is None


def test_an_experiment_without_exposures_gives_no_verdict(db: Connection):
    data = read_experiment(bind=db, experiment="never-ran")
    assert data.arms == ()
    report = analyse(data)
    assert report.verdict.decision == "no verdict"
    assert "no users" in report.verdict.text


def test_feed_history_users(db: Connection):
    rows = [
        (1, 10, "view", 1, "2021-10-01 10:00:00"),
        (1, 10, "like", 0, "2021-10-01 10:00:05"),
        (1, 11, "view", 0, "2021-10-02 10:00:00"),
        (2, 10, "like", 0, "2021-09-01 10:00:00"),
        (2, 12, "view", 0, "2021-10-03 10:00:00"),
        (3, 12, "like", 0, "2021-10-03 10:00:00"),  # no views: not a user of the A/A
    ]
    db.execute(
        feed_data.insert(),
        [
            {
                "user_id": USER_OFFSET + u,
                "post_id": p,
                "action": a,
                "target": t,
                "timestamp": datetime.fromisoformat(ts),
            }
            for u, p, a, t, ts in rows
        ],
    )
    users = read_feed_history(bind=db, since=datetime(2021, 9, 15))
    mine = users.user_id >= USER_OFFSET
    assert (users.user_id[mine] - USER_OFFSET).tolist() == [1, 2]
    assert users.exposures[mine].tolist() == [2, 1]
    assert users.hits[mine].tolist() == [1, 0]
    assert users.likes[mine].tolist() == [1, 0]
    assert users.pre_likes[mine].tolist() == [0, 1]


def test_likes_meet_exposures_across_time_buckets(db: Connection):
    """Likes meet exposures at the edges: a like just past a time bucket's edge (SQLite)
    or past midnight (where PostgreSQL sessions split the days), one exactly a window late,
    one a second too late or too early, a post beyond the first k, a post liked twice, two
    exposures in one second, a like days before the user's first exposure."""
    start, hour = 1_640_822_400, 3600  # 2021-12-30 00:00 UTC; buckets are 4 windows wide
    views = pd.DataFrame(
        [
            (1, "control", "[10 11 12 13 14 15]", start + 4 * hour - 1),  # bucket edge
            (2, "control", "[20 21]", start + 10 * hour),
            (3, "control", "[30 31 32]", start + 20 * hour),
            (4, "test", "[40 41]", start + 30 * hour),
            (4, "test", "[41 42]", start + 30 * hour),
            (5, "test", "[50 51 52 53 54]", start + 47 * hour + 1800),  # crosses midnight
            (6, "test", "[]", start + 50 * hour),
        ],
        columns=["user_id", "exp_group", "recommendations", "timestamp"],
    )
    likes = pd.DataFrame(
        [
            (1, 11, start + 4 * hour + 1200),  # the next bucket, within the window: a hit
            (1, 11, start + 4 * hour + 1300),  # the same post again: counted once
            (1, 15, start + 4 * hour),  # the sixth post: beyond k = 5
            (2, 21, start + 11 * hour),  # exactly one window later: a hit
            (2, 20, start + 11 * hour + 1),  # a second too late
            (3, 30, start + 20 * hour - 1),  # a second too early: the covariate
            (4, 41, start + 30 * hour + 5),  # shown by both exposures: two hits
            (5, 54, start + 48 * hour + 600),  # the next day
            (6, 60, start + 50 * hour),
            (6, 61, start + 2 * hour),  # two days before the user's first exposure
        ],
        columns=["user_id", "post_id", "timestamp"],
    )
    views["user_id"] += USER_OFFSET
    likes["user_id"] += USER_OFFSET
    store(db, views, likes)
    for window, k, sessions in ((3600, 5, 1), (3600, 1, 1), (1200, 5, 1), (0, 5, 1), (3600, 5, 3)):
        # three sessions read a day each: a like after midnight meets the day before
        from_db = read_experiment(
            bind=db, experiment=EXPERIMENT, window=window, k=k, sessions=sessions
        )
        from_files = reduce_logs(views, likes, window=window, k=k)
        assert from_db.arm_stats == from_files.arm_stats, (window, k)
        assert from_db.daily == from_files.daily, (window, k)
        assert from_db.users is not None
        assert from_files.users is not None
        for name in ("exposures", "hits", "shown", "liked_shown", "likes", "pre_likes"):
            assert getattr(from_db.users, name).tolist() == (
                getattr(from_files.users, name).tolist()
            ), (window, k, name)
    users = read_experiment(bind=db, experiment=EXPERIMENT).users
    assert users is not None
    assert users.hits.tolist() == [1, 1, 0, 2, 1, 0]
    assert users.liked_shown.tolist() == [1, 1, 0, 2, 1, 0]
    assert users.shown.tolist() == [5, 2, 3, 4, 5, 0]
    assert users.pre_likes.tolist() == [0, 0, 1, 0, 0, 1]
