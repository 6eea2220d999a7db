from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy import Connection, func, inspect, select

from feeddata.db import count_rows
from feeddata.interactions import read_interactions, read_posts
from feeddata.loading import Chunk, DataImportError, load
from feeddata.schema import feed_data, post_text_df


def _users(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ids,
            "gender": [i % 2 for i in ids],
            "age": [20] * len(ids),
            "country": ["Russia"] * len(ids),
            "city": ["Moscow"] * len(ids),
            "exp_group": [0] * len(ids),
            "os": ["iOS"] * len(ids),
            "source": ["ads"] * len(ids),
        }
    )


def _posts(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"post_id": ids, "text": [f"post {i}" for i in ids], "topic": "tech"})


def _feed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": ["2021-10-01 10:00:00", "2021-10-01 10:00:05", "2021-10-02 11:30:00"],
            "user_id": [1, 1, 2],
            "post_id": [10, 10, 11],
            "action": ["view", "like", "view"],
            "target": [1, 0, 0],
        }
    )


def test_load_then_read_back(db: Connection) -> None:
    report = load(
        db,
        [
            Chunk("user_data", _users([1, 2]), "users.csv"),
            Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
            Chunk("feed_data", _feed(), "feed.csv"),
        ],
    )
    assert report.rows == {"user_data": 2, "post_text_df": 2, "feed_data": 3}
    events = read_interactions(db, progress=False)
    assert events.user_id.tolist() == [1, 1, 2]
    assert events.is_like.tolist() == [False, True, False]
    assert events.timestamp[0] == 1633082400  # 2021-10-01 10:00:00 UTC
    assert read_posts(db).loc[11, "text"] == "post 11"


def test_failed_import_changes_nothing(db: Connection) -> None:
    load(db, [Chunk("user_data", _users([1]), "first.csv")])
    bad_feed = _feed()
    bad_feed.loc[2, "action"] = "share"
    with pytest.raises(DataImportError, match=r"feed.csv, row 3, column 'action'"):
        load(
            db,
            [
                Chunk("user_data", _users([2]), "users.csv"),
                Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
                Chunk("feed_data", bad_feed, "feed.csv"),
            ],
        )
    assert count_rows(db, "user_data") == 1
    assert count_rows(db, "post_text_df") == 0
    assert count_rows(db, "feed_data") == 0


TRICKY_TEXTS = [
    "",
    "a, b",
    'he said "hi"',
    "line one\nline two\r\nthree",
    "back\\slash \\N",
    "NULL",
    "  padded  ",
    "Misérables 🙂 Ёжик",
]


def test_texts_survive_the_bulk_path(db: Connection) -> None:
    ids = list(range(1, len(TRICKY_TEXTS) + 1))
    posts = pd.DataFrame({"post_id": ids, "text": TRICKY_TEXTS, "topic": TRICKY_TEXTS[::-1]})
    load(db, [Chunk("post_text_df", posts, "posts.csv")])
    stored = read_posts(db)
    assert stored["text"].tolist() == TRICKY_TEXTS
    assert stored["topic"].tolist() == TRICKY_TEXTS[::-1]
    nulls = db.execute(select(func.count()).where(post_text_df.c.text.is_(None))).scalar_one()
    assert nulls == 0  # an empty text is stored as '', not NULL


def test_timestamps_keep_microseconds(db: Connection) -> None:
    feed = _feed()
    feed["timestamp"] = pd.to_datetime(feed["timestamp"]) + pd.Timedelta(microseconds=250_001)
    load(
        db,
        [
            Chunk("user_data", _users([1, 2]), "users.csv"),
            Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
            Chunk("feed_data", feed, "feed.csv"),
        ],
    )
    stored = db.execute(select(feed_data.c.timestamp).order_by(feed_data.c.timestamp)).scalars()
    assert next(iter(stored)) == datetime(2021, 10, 1, 10, 0, 0, 250_001)


def test_optional_columns_default(db: Connection) -> None:
    feed = _feed().drop(columns="target")
    load(
        db,
        [
            Chunk("user_data", _users([1, 2]), "users.csv"),
            Chunk("post_text_df", _posts([10, 11])[["post_id"]], "posts.csv"),
            Chunk("feed_data", feed, "feed.csv"),
        ],
    )
    assert read_posts(db)["text"].tolist() == ["", ""]
    assert read_interactions(db, progress=False).target.tolist() == [0, 0, 0]


def test_errors_count_rows_across_chunks(db: Connection) -> None:
    chunks = [
        Chunk("user_data", _users([1, 2]), "users.csv", first_row=1),
        Chunk("user_data", _users([3, 2]), "users.csv", first_row=3),
    ]
    with pytest.raises(DataImportError, match=r"users.csv, row 4, column 'user_id': duplicate"):
        load(db, chunks)
    assert count_rows(db, "user_data") == 0


@pytest.mark.parametrize(
    ("column", "value", "table"), [("user_id", 7, "user_data"), ("post_id", 70, "post_text_df")]
)
def test_feed_rows_must_name_known_ids(db: Connection, column: str, value: int, table: str) -> None:
    feed = _feed()
    feed.loc[1, column] = value
    with pytest.raises(
        DataImportError,
        match=rf"feed.csv, row 2, column '{column}': {column} {value} is not in {table}",
    ):
        load(
            db,
            [
                Chunk("user_data", _users([1, 2]), "users.csv"),
                Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
                Chunk("feed_data", feed, "feed.csv"),
            ],
        )
    assert count_rows(db, "user_data") == 0


def test_indexes_are_rebuilt_after_a_deferred_load(db: Connection) -> None:
    load(
        db,
        [
            Chunk("user_data", _users([1, 2]), "users.csv"),
            Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
            Chunk("feed_data", _feed(), "feed.csv"),
        ],
    )
    names = {index["name"] for index in inspect(db).get_indexes("feed_data")}
    assert names == {index.name for index in feed_data.indexes}


@pytest.mark.parametrize("likes_only", [False, True])
def test_copy_reader_matches_the_driver_reader(pg: Connection, likes_only: bool) -> None:
    """PostgreSQL's COPY path and the row-fetching path read the same events."""
    from feeddata.interactions import _fetch_columns, feed_query

    load(
        pg,
        [
            Chunk("user_data", _users([1, 2]), "users.csv"),
            Chunk("post_text_df", _posts([10, 11]), "posts.csv"),
            Chunk("feed_data", _feed(), "feed.csv"),
        ],
    )
    copied = read_interactions(pg, likes_only=likes_only, progress=False)
    fetched = _fetch_columns(pg, feed_query(likes_only), 2, progress=False)
    assert len(copied) == (1 if likes_only else 3)
    assert sorted(zip(*(c.tolist() for c in fetched), strict=True)) == sorted(
        zip(
            copied.user_id.tolist(),
            copied.post_id.tolist(),
            copied.timestamp.tolist(),
            copied.is_like.astype(int).tolist(),
            copied.target.tolist(),
            strict=True,
        )
    )
