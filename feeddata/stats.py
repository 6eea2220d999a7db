"""A summary of the social network's data, computed in the database (``feedlab data stats``)."""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, distinct, func, select

from feeddata.db import Bind, connect
from feeddata.schema import feed_data, post_text_df, user_data


@dataclass(frozen=True)
class DataStats:
    """Counts and rates of the three tables.

    ``like_rate`` is likes per view; ``target_rate`` the share of views with ``target`` 1
    (followed by a like). Both are None without views. ``topics`` are (topic, posts) pairs,
    most posts first; posts without a topic count under ``""``.
    """

    users: int
    posts: int
    feed_rows: int
    views: int
    likes: int
    first_event: datetime | None
    last_event: datetime | None
    active_users: int
    like_rate: float | None
    target_rate: float | None
    topics: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO-8601 strings, topics as an object."""
        out = asdict(self)
        for key in ("first_event", "last_event"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value is not None else None
        out["topics"] = dict(self.topics)
        return out


def data_stats(*, bind: Bind) -> DataStats:
    """Row counts, the feed's time range, views, likes, like rates, active users and posts
    per topic, each aggregated by the database (nothing row by row in Python)."""
    is_view = feed_data.c.action == "view"
    is_like = feed_data.c.action == "like"
    feed_query = select(
        func.count(),
        func.min(feed_data.c.timestamp),
        func.max(feed_data.c.timestamp),
        func.coalesce(func.sum(case((is_view, 1), else_=0)), 0),
        func.coalesce(func.sum(case((is_like, 1), else_=0)), 0),
        func.coalesce(func.sum(case((is_view & (feed_data.c.target == 1), 1), else_=0)), 0),
        func.count(distinct(feed_data.c.user_id)),
    )
    topic = func.coalesce(post_text_df.c.topic, "")
    topic_query = select(topic, func.count()).group_by(topic).order_by(func.count().desc(), topic)
    with connect(bind) as conn:
        users = conn.execute(select(func.count()).select_from(user_data)).scalar_one()
        rows, first, last, views, likes, liked_views, active = conn.execute(feed_query).one()
        topics = tuple((str(name), int(count)) for name, count in conn.execute(topic_query))
    return DataStats(
        users=int(users),
        posts=sum(count for _, count in topics),
        feed_rows=int(rows),
        views=int(views),
        likes=int(likes),
        first_event=first,
        last_event=last,
        active_users=int(active),
        like_rate=likes / views if views else None,
        target_rate=liked_views / views if views else None,
        topics=topics,
    )
