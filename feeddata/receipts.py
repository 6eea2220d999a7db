"""Feed actions recorded at most once per client event id.

The receipt (event id and what was stored) is written in the transaction of the
``feed_data`` row, so either both exist or neither does; a retry finds the receipt and
gets the stored event back without a second row.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from feeddata.db import Bind, connect, transaction
from feeddata.queries import FeedEvent, RecordedAction, record_action
from feeddata.schema import feed_action_receipts as receipts


class EventIdConflictError(ValueError):
    """An event id already used for a different action."""


@dataclass(frozen=True)
class Receipt:
    """What :func:`record_action_once` did: the stored action, and whether it was stored
    by an earlier call with the same event id (``replayed``)."""

    recorded: RecordedAction
    replayed: bool


def record_action_once(
    *, bind: Bind, event_id: str, user_id: int, post_id: int, action: str, time: datetime
) -> Receipt:
    """:func:`~feeddata.queries.record_action`, unless ``event_id`` was recorded before:
    then the stored action is returned (an EventIdConflictError if it differs)."""
    asked = (user_id, post_id, action)
    if (stored := _stored(bind, event_id)) is not None:
        return _replay(stored, asked, event_id)
    try:
        with transaction(bind) as conn:
            # The receipt first: a concurrent duplicate fails here before any other work.
            conn.execute(
                insert(receipts).values(
                    event_id=event_id,
                    timestamp=time,
                    user_id=user_id,
                    post_id=post_id,
                    action=action,
                    target=0,
                    views_marked=0,
                    received_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
            recorded = record_action(
                bind=conn, user_id=user_id, post_id=post_id, action=action, time=time
            )
            conn.execute(
                update(receipts)
                .where(receipts.c.event_id == event_id)
                .values(target=recorded.event.target, views_marked=recorded.views_marked)
            )
    except IntegrityError:
        # A concurrent request with the same id committed first; ours was rolled back.
        if (stored := _stored(bind, event_id)) is None:
            raise
        return _replay(stored, asked, event_id)
    return Receipt(recorded, replayed=False)


def _replay(stored: RecordedAction, asked: tuple[int, int, str], event_id: str) -> Receipt:
    event = stored.event
    if (event.user_id, event.post_id, event.action) != asked:
        raise EventIdConflictError(
            f"event_id {event_id!r} was already used for a {event.action} of post "
            f"{event.post_id} by user {event.user_id}; use a new event_id for a new action"
        )
    return Receipt(stored, replayed=True)


def _stored(bind: Bind, event_id: str) -> RecordedAction | None:
    columns = receipts.c
    query = select(
        columns.timestamp,
        columns.user_id,
        columns.post_id,
        columns.action,
        columns.target,
        columns.views_marked,
    ).where(columns.event_id == event_id)
    with connect(bind) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return RecordedAction(FeedEvent(*row[:5]), views_marked=int(row[5]))
