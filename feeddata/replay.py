"""Real feed events of a period, for replaying real users' behaviour against the service."""

from datetime import datetime

import numpy as np
from sqlalchemy import case, select

from feeddata.db import Bind, connect, epoch_seconds
from feeddata.interactions import Interactions
from feeddata.schema import feed_data


def events_between(*, bind: Bind, start: datetime, end: datetime) -> Interactions:
    """Views and likes with ``start <= timestamp < end`` (naive UTC), in time order."""
    query = (
        select(
            feed_data.c.user_id,
            feed_data.c.post_id,
            epoch_seconds(feed_data.c.timestamp),
            case((feed_data.c.action == "like", 1), else_=0),
            feed_data.c.target,
        )
        .where(feed_data.c.timestamp >= start, feed_data.c.timestamp < end)
        .order_by(feed_data.c.timestamp)
    )
    with connect(bind) as conn:
        rows = np.array([tuple(r) for r in conn.execute(query)], dtype=np.int64).reshape(-1, 5)
    return Interactions.from_arrays(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] == 1, rows[:, 4])
