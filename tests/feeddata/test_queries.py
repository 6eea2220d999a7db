"""The service's SQL on both databases, inside a rolled-back transaction."""

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, select, text

from feeddata import queries
from feeddata.db import is_postgres
from feeddata.loading import load
from feeddata.schema import feed_data
from tests.api import tiny_data


@pytest.fixture
def tiny(db: Connection) -> Connection:
    load(db, tiny_data.chunks(), description="tiny")
    return db


def test_get_user_and_post(tiny: Connection) -> None:
    assert queries.get_user(bind=tiny, user_id=2) == {
        "user_id": 2,
        "gender": 0,
        "age": 31,
        "country": "Russia",
        "city": "Kazan",
        "exp_group": 0,
        "os": "Android",
        "source": "organic",
    }
    assert queries.get_post(bind=tiny, post_id=12) == {
        "post_id": 12,
        "text": "Markets fall",
        "topic": "business",
    }


def test_unknown_ids_raise_naming_the_id(tiny: Connection) -> None:
    with pytest.raises(queries.NotFoundError, match=r"^user 5 not found$"):
        queries.get_user(bind=tiny, user_id=5)
    with pytest.raises(queries.NotFoundError, match=r"^post 9 not found$"):
        queries.post_feed(bind=tiny, post_id=9, limit=1)
    with pytest.raises(queries.NotFoundError, match=r"^post 9 not found$"):
        queries.record_action(
            bind=tiny, user_id=1, post_id=9, action="like", time=tiny_data.at("13:00")
        )


def test_feeds_newest_first(tiny: Connection) -> None:
    events = queries.user_feed(bind=tiny, user_id=3, limit=3)
    assert [(e.time, e.post_id, e.action, e.target) for e in events] == [
        (tiny_data.at("12:00"), 13, "like", 0),
        (tiny_data.at("11:59"), 13, "view", 1),
        (tiny_data.at("09:30"), 12, "like", 0),
    ]
    events = queries.post_feed(bind=tiny, post_id=11, limit=10)
    assert [(e.time.strftime("%H:%M"), e.user_id) for e in events] == [
        ("09:10", 2),
        ("09:09", 2),
        ("09:00", 1),
        ("08:59", 1),
    ]


def test_record_a_like_marks_earlier_views(tiny: Connection) -> None:
    queries.record_action(bind=tiny, user_id=2, post_id=10, action="view", time=at(8))
    queries.record_action(bind=tiny, user_id=2, post_id=10, action="view", time=at(9))
    queries.record_action(bind=tiny, user_id=2, post_id=10, action="view", time=at(15))
    liked = queries.record_action(bind=tiny, user_id=2, post_id=10, action="like", time=at(10))
    assert liked.views_marked == 2
    assert liked.event == queries.FeedEvent(at(10), 2, 10, "like", 0)
    rows = tiny.execute(
        select(feed_data.c.timestamp, feed_data.c.action, feed_data.c.target)
        .where(feed_data.c.user_id == 2, feed_data.c.post_id == 10)
        .order_by(feed_data.c.timestamp)
    ).all()
    assert [tuple(r) for r in rows] == [
        (at(8), "view", 1),
        (at(9), "view", 1),
        (at(10), "like", 0),
        (at(15), "view", 0),
    ]


def test_record_keeps_microseconds(tiny: Connection) -> None:
    time = datetime(2021, 10, 2, 8, 0, 0, 123456)
    queries.record_action(bind=tiny, user_id=4, post_id=14, action="view", time=time)
    assert queries.user_feed(bind=tiny, user_id=4, limit=1)[0].time == time


def test_all_user_ids_and_ping(tiny: Connection) -> None:
    assert queries.all_user_ids(bind=tiny).tolist() == [1, 2, 3, 4]
    assert queries.ping(bind=tiny)


@pytest.mark.parametrize(
    ("column", "index"),
    [
        (feed_data.c.user_id, "ix_feed_data_user_time"),
        (feed_data.c.post_id, "ix_feed_data_post_time"),
    ],
)
def test_feed_pages_read_the_index_in_order(tiny: Connection, column: Any, index: str) -> None:
    query = queries.feed_page_query(by=column, id_=1, limit=10)
    sql = str(query.compile(tiny, compile_kwargs={"literal_binds": True}))
    if is_postgres(tiny):
        # the tiny table would be scanned whole; ask what the plan is when it is large
        tiny.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(tiny.execute(text(f"EXPLAIN {sql}")).scalars())
        tiny.execute(text("SET LOCAL enable_seqscan = on"))
    else:
        plan = "\n".join(str(row[-1]) for row in tiny.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert index in plan
    assert "Sort" not in plan
    assert "TEMP B-TREE" not in plan


def at(hour: int) -> datetime:
    return datetime(2021, 10, 2, hour)
