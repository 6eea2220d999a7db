"""Exposure rows on both databases: idempotent batch writes, shown posts in order, counts,
and the hit join the analysis runs."""

from dataclasses import asdict, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from feeddata.db import epoch_seconds
from feeddata.exposures import (
    Exposure,
    arm_counts,
    count_exposures,
    create_feedlab_tables,
    shown_posts,
    write_exposures,
)
from feeddata.schema import exposure_posts, exposures, feed_data

T0 = datetime(2021, 12, 30, 12, 0)


def exposure(request_id: str, user_id: int, arm: str, posts: tuple[int, ...]) -> Exposure:
    return Exposure(
        request_id=request_id,
        experiment="e",
        arm=arm,
        bucket=17,
        forced=False,
        user_id=user_id,
        request_time=T0,
        served_at=T0 + timedelta(milliseconds=3),
        recommender="popular",
        model_version="popular-1",
        post_ids=posts,
    )


def test_writes_are_idempotent_and_keep_the_order(db: Connection) -> None:
    create_feedlab_tables(db)  # again: a no-op
    batch = [exposure("a", 1, "control", (5, 3, 9)), exposure("b", 2, "test", (1, 2))]
    write_exposures(bind=db, batch=batch)
    write_exposures(bind=db, batch=[*batch, exposure("c", 1, "control", (4,))])
    assert count_exposures(bind=db) == 3
    assert shown_posts(bind=db, request_id="a") == [5, 3, 9]
    counts = arm_counts(bind=db, experiment="e")
    assert {arm: (c.exposures, c.users) for arm, c in counts.items()} == {
        "control": (2, 1),
        "test": (1, 1),
    }
    stored = db.execute(select(exposures.c.post_ids).where(exposures.c.request_id == "a"))
    assert stored.scalar_one() == "[5 3 9]"


def test_every_field_is_stored_as_given_whatever_its_characters(db: Connection) -> None:
    # PostgreSQL takes a batch through COPY's text format: tabs, newlines and backslashes
    # in names must come back as they went in, and None as NULL.
    odd = Exposure(
        request_id="odd-1",
        experiment="tab\there, line\nbreak, back\\slash \\N",
        arm="contrôle\r",
        bucket=None,
        forced=True,
        user_id=2**31 - 1,
        request_time=T0.replace(microsecond=123456),
        served_at=T0 + timedelta(seconds=1),
        recommender="pop\\ular",
        model_version="v\t1",
        post_ids=(),
    )
    outside = replace(odd, request_id="odd-2", experiment=None, bucket=0, post_ids=(7,))
    write_exposures(bind=db, batch=[odd, outside])
    rows = db.execute(select(exposures).order_by(exposures.c.request_id)).mappings().all()
    for row, given in zip(rows, [odd, outside], strict=True):
        assert {**row, "post_ids": row["post_ids"]} == {
            **asdict(given),
            "post_ids": "[" + " ".join(map(str, given.post_ids)) + "]",
        }
    assert shown_posts(bind=db, request_id="odd-1") == []
    assert shown_posts(bind=db, request_id="odd-2") == [7]


def test_the_hit_join_of_the_analysis(db: Connection) -> None:
    write_exposures(
        bind=db, batch=[exposure("a", 1, "control", (5, 3)), exposure("b", 2, "test", (7,))]
    )
    db.execute(
        feed_data.insert(),
        [
            # user 1 likes shown post 3 within the hour: a hit; user 2 likes 7 too late
            {"timestamp": T0 + timedelta(minutes=5), "user_id": 1, "post_id": 3,
             "action": "like", "target": 0},
            {"timestamp": T0 + timedelta(hours=2), "user_id": 2, "post_id": 7,
             "action": "like", "target": 0},
        ],
    )  # fmt: skip
    # epoch seconds: datetime arithmetic differs between the two databases
    liked_at, shown_at = (
        epoch_seconds(feed_data.c.timestamp),
        epoch_seconds(exposures.c.request_time),
    )
    liked = and_(
        feed_data.c.user_id == exposures.c.user_id,
        feed_data.c.post_id == exposure_posts.c.post_id,
        feed_data.c.action == "like",
        feed_data.c.timestamp >= exposures.c.request_time,
        liked_at <= shown_at + 3600,
    )
    query = (
        select(exposures.c.request_id, func.count(feed_data.c.post_id))
        .join(exposure_posts, exposure_posts.c.request_id == exposures.c.request_id)
        .outerjoin(feed_data, liked)
        .group_by(exposures.c.request_id)
        .order_by(exposures.c.request_id)
    )
    assert db.execute(query).all() == [("a", 1), ("b", 0)]
