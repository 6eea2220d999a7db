"""Feed actions with a client event id are stored once, however often they are retried."""

from datetime import datetime

import pytest
from sqlalchemy import Connection, func, select

from feeddata.loading import load
from feeddata.receipts import EventIdConflictError, record_action_once
from feeddata.schema import feed_data
from tests.api import tiny_data

LIKE = {"user_id": 4, "post_id": 14, "action": "like", "time": datetime(2021, 10, 2, 8)}


def feed_rows(bind: Connection) -> int:
    return int(bind.execute(select(func.count()).select_from(feed_data)).scalar_one())


@pytest.fixture
def tiny(db: Connection) -> Connection:
    load(db, tiny_data.chunks(), progress=False)
    return db


def test_a_retry_returns_the_stored_event(tiny: Connection) -> None:
    before = feed_rows(tiny)
    first = record_action_once(bind=tiny, event_id="ev-1", **LIKE)  # type: ignore[arg-type]
    again = record_action_once(bind=tiny, event_id="ev-1", **LIKE)  # type: ignore[arg-type]
    assert (first.replayed, again.replayed) == (False, True)
    assert again.recorded == first.recorded
    assert feed_rows(tiny) == before + 1


def test_an_event_id_reused_for_another_action_is_refused(tiny: Connection) -> None:
    record_action_once(bind=tiny, event_id="ev-2", **LIKE)  # type: ignore[arg-type]
    other = {**LIKE, "post_id": 13}
    with pytest.raises(EventIdConflictError, match="'ev-2' was already used for a like of post"):
        record_action_once(bind=tiny, event_id="ev-2", **other)  # type: ignore[arg-type]
