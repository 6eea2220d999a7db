"""The social network's tables, named exactly as in the original course database, and
feedlab's own tables beside them (exposures and action receipts).

feedlab's own tables are created by the service at start when missing (``FEEDLAB_TABLES``);
the course tables are never created or altered by serving.
"""

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
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

# --- feedlab's own tables -------------------------------------------------------------

exposures = Table(
    "exposures",
    metadata,
    # One row per recommendation response. Times are naive UTC like feed_data.timestamp.
    # `experiment` is NULL when the user was in no experiment (none running at
    # request_time, or outside its coverage): such rows are logged but belong to no
    # analysis; `arm` is then what the response said (control). `post_ids` repeats the
    # shown posts in the course log format "[3644 4529 4704]" for people and exports;
    # SQL joins use exposure_posts.
    Column("request_id", Text, primary_key=True),
    Column("experiment", Text),
    Column("arm", Text, nullable=False),
    Column("bucket", Integer),
    Column("forced", Boolean, nullable=False, server_default="0"),
    Column("user_id", Integer, nullable=False),
    Column("request_time", DateTime, nullable=False),
    Column("served_at", DateTime, nullable=False),
    Column("recommender", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("post_ids", Text, nullable=False),
    # live counts per arm and per-arm user aggregation in analysis
    Index("ix_exposures_experiment_arm_user", "experiment", "arm", "user_id"),
    Index("ix_exposures_user_time", "user_id", "request_time"),
    # a report reads the exposures of a range of days: rows are appended in time order, so
    # a block range index (a few kB per GB, nothing to do on most inserts) finds them
    Index("ix_exposures_time", "request_time", postgresql_using="brin").ddl_if(
        dialect="postgresql"
    ),
)

exposure_posts = Table(
    "exposure_posts",
    metadata,
    # The posts of an exposure in the order shown (position 0 first). "Was any shown post
    # liked within [t, t + W]" is exposures JOIN exposure_posts USING (request_id) JOIN
    # feed_data ON (user_id, post_id) with action = 'like' and timestamp in the window,
    # served by feed_data's (user_id, timestamp) index or, from the likes' side, by
    # ix_exposure_posts_post.
    Column("request_id", Text, nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("post_id", Integer, nullable=False),
    PrimaryKeyConstraint("request_id", "position", name="pk_exposure_posts"),
    Index("ix_exposure_posts_post", "post_id", "request_id"),
)

feed_action_receipts = Table(
    "feed_action_receipts",
    metadata,
    # Client event ids of POST /feed/actions, written in the feed_data row's transaction,
    # so a retried event is answered with what was stored and never inserted twice.
    Column("event_id", Text, primary_key=True),
    Column("timestamp", DateTime, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("post_id", Integer, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Integer, nullable=False),
    Column("views_marked", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
)

FEEDLAB_TABLES = {t.name: t for t in (exposures, exposure_posts, feed_action_receipts)}
"""Tables of feedlab itself, which the service creates when missing."""
