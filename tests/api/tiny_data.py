"""A tiny social network whose popularity rankings are easy to compute by hand.

Likes (each preceded one minute earlier by the user's view, target 1), 2021-10-01 UTC:
09:00 u1->11, 09:10 u2->11, 09:20 u2->12, 09:30 u3->12, 12:00 u3->13, 12:10 u1->13,
12:20 u2->13. Plus views without likes: 08:00 u1->10 and 12:30 u2->14. User 4 has no
actions. Likes before 10:00: post 11: 2, 12: 2; before 13:00: 13: 3, 11: 2, 12: 2.
"""

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from feeddata.loading import Chunk, load
from feeddata.schema import metadata

DAY = "2021-10-01"
USERS = pd.DataFrame(
    {
        "user_id": [1, 2, 3, 4],
        "gender": [1, 0, 1, 0],
        "age": [25, 31, 19, 40],
        "country": ["Russia", "Russia", "Ukraine", "Belarus"],
        "city": ["Moscow", "Kazan", "Kyiv", "Minsk"],
        "exp_group": [3, 0, 1, 4],
        "os": ["iOS", "Android", "Android", "iOS"],
        "source": ["ads", "organic", "ads", "organic"],
    }
)
POSTS = pd.DataFrame(
    {
        "post_id": [10, 11, 12, 13, 14],
        "text": ["A film review", "Covid news", "Markets fall", "Cup final", "New phone"],
        "topic": ["movie", "covid", "business", "sport", "tech"],
    }
)
LIKES = [
    ("09:00", 1, 11),
    ("09:10", 2, 11),
    ("09:20", 2, 12),
    ("09:30", 3, 12),
    ("12:00", 3, 13),
    ("12:10", 1, 13),
    ("12:20", 2, 13),
]
PLAIN_VIEWS = [("08:00", 1, 10), ("12:30", 2, 14)]
N_LIKES = len(LIKES)


def at(hh_mm: str) -> datetime:
    """A time of the tiny data set's day (naive UTC)."""
    return datetime.fromisoformat(f"{DAY}T{hh_mm}")


def feed() -> pd.DataFrame:
    rows = [(at(t), u, p, "view", 0) for t, u, p in PLAIN_VIEWS]
    for t, u, p in LIKES:
        rows.append((at(t) - timedelta(minutes=1), u, p, "view", 1))
        rows.append((at(t), u, p, "like", 0))
    frame = pd.DataFrame(rows, columns=["timestamp", "user_id", "post_id", "action", "target"])
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def chunks() -> list[Chunk]:
    return [
        Chunk("user_data", USERS, "tiny users"),
        Chunk("post_text_df", POSTS, "tiny posts"),
        Chunk("feed_data", feed(), "tiny feed"),
    ]


def fill(engine: Engine) -> None:
    """Replace the database's tables with the tiny data set."""
    metadata.drop_all(engine)
    load(engine, chunks(), description="tiny")
