"""The social network's tables, named exactly as in the original course database."""

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)


class Columns:
    """Column names used across the project, defined once."""

    user_id = "user_id"
    post_id = "post_id"
    timestamp = "timestamp"
    action = "action"
    target = "target"
    text = "text"
    topic = "topic"
    gender = "gender"
    age = "age"
    country = "country"
    city = "city"
    exp_group = "exp_group"
    os = "os"
    source = "source"


USER_COLUMNS = ("user_id", "gender", "age", "country", "city", "exp_group", "os", "source")
POST_COLUMNS = ("post_id", "text", "topic")
FEED_COLUMNS = ("timestamp", "user_id", "post_id", "action", "target")
ACTIONS = ("view", "like")

metadata = MetaData()

user_data = Table(
    "user_data",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("gender", Integer),
    Column("age", Integer),
    Column("country", Text),
    Column("city", Text),
    Column("exp_group", Integer),
    Column("os", Text),
    Column("source", Text),
)

post_text_df = Table(
    "post_text_df",
    metadata,
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("text", Text),
    Column("topic", Text),
)

feed_data = Table(
    "feed_data",
    metadata,
    Column("timestamp", DateTime, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("post_id", Integer, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Integer, nullable=False, server_default="0"),
    # /user/{id}/feed and a user's history: newest first
    Index("ix_feed_data_user_time", "user_id", "timestamp"),
    # /post/{id}/feed
    Index("ix_feed_data_post_time", "post_id", "timestamp"),
    # loading likes at start and time-range scans for evaluation
    Index("ix_feed_data_action_time", "action", "timestamp"),
)

TABLES = {t.name: t for t in (user_data, post_text_df, feed_data)}
