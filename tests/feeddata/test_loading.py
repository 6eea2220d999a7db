import pandas as pd
import pytest
from sqlalchemy import Connection

from feeddata.db import count_rows
from feeddata.interactions import read_interactions, read_posts
from feeddata.loading import Chunk, DataImportError, load


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
