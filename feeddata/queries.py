"""The service's SQL: browsing users, posts and their feeds, and recording feed actions.

Plain keyword-only functions over a :data:`~feeddata.db.Bind`. Lookups of a user or a post
that does not exist raise :class:`NotFoundError`, whose message names the id. Feed pages
read ``feed_data`` through its (user_id, timestamp) and (post_id, timestamp) indexes,
newest first, so a page costs an index range scan whatever the table's size.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Column, Connection, Select, exists, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from feeddata.db import Bind, connect, transaction
from feeddata.schema import ACTIONS, feed_data, post_text_df, user_data


class NotFoundError(LookupError):
    """A user or a post that is not in the database."""

    def __init__(self, kind: str, id_: int) -> None:
        super().__init__(f"{kind} {id_} not found")
        self.kind, self.id = kind, id_


@dataclass(frozen=True)
class FeedEvent:
    """One row of ``feed_data``; ``time`` is naive UTC, as stored."""

    time: datetime
    user_id: int
    post_id: int
    action: str
    target: int


@dataclass(frozen=True)
class RecordedAction:
    """A stored action, and how many of the user's earlier views of the post a like marked
    as followed by a like (``target`` set to 1)."""

    event: FeedEvent
    views_marked: int


def get_user(*, bind: Bind, user_id: int) -> dict[str, Any]:
    """The profile of ``user_id`` as a dict of ``user_data``'s columns."""
    with connect(bind) as conn:
        row = conn.execute(select(user_data).where(user_data.c.user_id == user_id)).first()
    if row is None:
        raise NotFoundError("user", user_id)
    return dict(row._mapping)


def get_post(*, bind: Bind, post_id: int) -> dict[str, Any]:
    """The post ``post_id`` as a dict of ``post_text_df``'s columns (missing text or topic
    read as '')."""
    with connect(bind) as conn:
        row = conn.execute(select(post_text_df).where(post_text_df.c.post_id == post_id)).first()
    if row is None:
        raise NotFoundError("post", post_id)
    post = dict(row._mapping)
    post["text"] = post["text"] or ""
    post["topic"] = post["topic"] or ""
    return post


def user_feed(*, bind: Bind, user_id: int, limit: int) -> list[FeedEvent]:
    """The ``limit`` latest actions of ``user_id``, newest first."""
    with connect(bind) as conn:
        _require(conn, user_data.c.user_id, user_id, "user")
        query = feed_page_query(by=feed_data.c.user_id, id_=user_id, limit=limit)
        return [FeedEvent(*row) for row in conn.execute(query)]


def post_feed(*, bind: Bind, post_id: int, limit: int) -> list[FeedEvent]:
    """The ``limit`` latest actions on ``post_id``, newest first."""
    with connect(bind) as conn:
        _require(conn, post_text_df.c.post_id, post_id, "post")
        query = feed_page_query(by=feed_data.c.post_id, id_=post_id, limit=limit)
        return [FeedEvent(*row) for row in conn.execute(query)]


def record_action(
    *, bind: Bind, user_id: int, post_id: int, action: str, time: datetime
) -> RecordedAction:
    """Store a view or a like made by ``user_id`` on ``post_id`` at ``time`` (naive UTC).

    Keeps ``target`` true to its meaning (1 on a view followed by a like): a like sets it
    on the user's views of the post up to the like, and a view logged after a later like
    of the same post (clients may report out of order) is stored with target 1.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    same_pair = (feed_data.c.user_id == user_id) & (feed_data.c.post_id == post_id)
    with transaction(bind) as conn:
        _require(conn, user_data.c.user_id, user_id, "user")
        _require(conn, post_text_df.c.post_id, post_id, "post")
        views_marked, target = 0, 0
        if action == "like":
            marked = conn.execute(
                update(feed_data)
                .where(same_pair, feed_data.c.action == "view", feed_data.c.timestamp <= time)
                .where(feed_data.c.target == 0)
                .values(target=1)
            )
            views_marked = marked.rowcount
        else:
            liked_later = exists().where(
                same_pair, feed_data.c.action == "like", feed_data.c.timestamp >= time
            )
            target = int(bool(conn.execute(select(liked_later)).scalar()))
        event = FeedEvent(time, user_id, post_id, action, target)
        conn.execute(
            insert(feed_data).values(
                timestamp=time, user_id=user_id, post_id=post_id, action=action, target=target
            )
        )
    return RecordedAction(event, views_marked)


def all_user_ids(*, bind: Bind) -> np.ndarray:
    """Every user id, sorted, as int64."""
    with connect(bind) as conn:
        ids = conn.execute(select(user_data.c.user_id).order_by(user_data.c.user_id)).scalars()
        return np.fromiter(ids, dtype=np.int64)


def ping(*, bind: Bind) -> bool:
    """Whether the database answers a trivial query on the catalogue table."""
    try:
        with connect(bind) as conn:
            conn.execute(select(post_text_df.c.post_id).limit(1)).all()
    except SQLAlchemyError:
        return False
    return True


def _require(conn: Connection, key: Column[int], id_: int, kind: str) -> None:
    if conn.execute(select(key).where(key == id_)).first() is None:
        raise NotFoundError(kind, id_)


def feed_page_query(*, by: Column[int], id_: int, limit: int) -> Select[Any]:
    """The ``limit`` latest rows of ``feed_data`` whose ``by`` column (user_id or post_id)
    is ``id_``, newest first."""
    # ORDER BY timestamp alone, so the (id, timestamp) index yields rows in order, no sort.
    return (
        select(
            feed_data.c.timestamp,
            feed_data.c.user_id,
            feed_data.c.post_id,
            feed_data.c.action,
            feed_data.c.target,
        )
        .where(by == id_)
        .order_by(feed_data.c.timestamp.desc())
        .limit(limit)
    )
