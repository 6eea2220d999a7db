"""Exposures (what the service showed to whom, when, from which arm): writing and counting.

Writes are idempotent on ``request_id`` (``ON CONFLICT DO NOTHING`` on both databases), so
a batch retried after an ambiguous failure, or replayed from a spill file, is stored once.
"""

import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from feeddata.db import Bind, connect, is_postgres, transaction
from feeddata.schema import FEEDLAB_TABLES, exposure_posts, exposures, metadata


@dataclass(frozen=True)
class Exposure:
    """One recommendation response. Times are naive UTC; ``experiment`` is None outside
    any experiment."""

    request_id: str
    experiment: str | None
    arm: str
    bucket: int | None
    forced: bool
    user_id: int
    request_time: datetime
    served_at: datetime
    recommender: str
    model_version: str
    post_ids: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["request_time"] = self.request_time.isoformat()
        record["served_at"] = self.served_at.isoformat()
        record["post_ids"] = list(self.post_ids)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "Exposure":
        return cls(
            **{
                **record,
                "request_time": datetime.fromisoformat(record["request_time"]),
                "served_at": datetime.fromisoformat(record["served_at"]),
                "post_ids": tuple(record["post_ids"]),
            }
        )


@dataclass(frozen=True)
class ArmCounts:
    exposures: int
    users: int


def create_feedlab_tables(bind: Bind, *, attempts: int = 5) -> None:
    """Create feedlab's own tables when missing; the course tables are not touched.

    Service workers start together and may race: PostgreSQL serialises them with an
    advisory lock; on SQLite a worker that loses the race retries.
    """
    for attempt in range(attempts):
        try:
            with transaction(bind) as conn:
                if is_postgres(conn):
                    conn.execute(select(func.pg_advisory_xact_lock(_CREATE_LOCK)))
                metadata.create_all(conn, tables=list(FEEDLAB_TABLES.values()), checkfirst=True)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


_CREATE_LOCK = 0x6665_6564_6C61_62  # "feedlab"


def write_exposures(*, bind: Bind, batch: Sequence[Exposure]) -> None:
    """Store ``batch`` in one transaction; exposures already stored are skipped.

    On PostgreSQL through psycopg2 the batch is one ``COPY`` into a session's staging
    table, moved on by two ``INSERT ... SELECT``: 4-7 us of Python per exposure where
    SQLAlchemy's parameters took 112-121, and 69-79 us of wall time where 317-359 (batches
    of 1,000 with five posts each). That matters because the service's writer thread
    shares its worker's interpreter with the requests. SQLite and other drivers take
    plain inserts.
    """
    if not batch:
        return
    with transaction(bind) as conn:
        if is_postgres(conn) and conn.dialect.driver == "psycopg2":  # COPY is psycopg2's API
            _copy_exposures(conn, batch)
            return
        conn.execute(_insert_new(bind, exposures), [_row(e) for e in batch])
        posts = [
            {"request_id": e.request_id, "position": i, "post_id": post_id}
            for e in batch
            for i, post_id in enumerate(e.post_ids)
        ]
        if posts:
            conn.execute(_insert_new(bind, exposure_posts), posts)


def _row(e: Exposure) -> dict[str, Any]:
    return {
        "request_id": e.request_id,
        "experiment": e.experiment,
        "arm": e.arm,
        "bucket": e.bucket,
        "forced": e.forced,
        "user_id": e.user_id,
        "request_time": e.request_time,
        "served_at": e.served_at,
        "recommender": e.recommender,
        "model_version": e.model_version,
        "post_ids": _post_list(e.post_ids),
    }


def _post_list(post_ids: Iterable[int]) -> str:
    return "[" + " ".join(map(str, post_ids)) + "]"


_STAGING = "feedlab_exposures_in"
_COLUMNS = ", ".join(c.name for c in exposures.columns)


def _copy_exposures(conn: Connection, batch: Sequence[Exposure]) -> None:
    """PostgreSQL: ``batch`` into a temporary table of this session (emptied at commit),
    then into the two tables; a shown post's row is cut from the ``post_ids`` text."""
    text = io.StringIO()
    for e in batch:
        text.write(_copy_line(e))
    text.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (LIKE exposures) "
            "ON COMMIT DELETE ROWS"
        )
        # Emptied at commit, but a caller's transaction may hold an earlier batch. DELETE,
        # not TRUNCATE: nearly always there is nothing to delete, and TRUNCATE would give
        # the table a new file every batch.
        cursor.execute(f"DELETE FROM {_STAGING}")
        cursor.copy_expert(f"COPY {_STAGING} ({_COLUMNS}) FROM STDIN", text)
        cursor.execute(
            f"INSERT INTO exposures ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGING} "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(
            "INSERT INTO exposure_posts (request_id, position, post_id) "
            "SELECT s.request_id, p.n - 1, p.post::integer "
            f"FROM {_STAGING} s, unnest(string_to_array(btrim(s.post_ids, '[]'), ' ')) "
            "WITH ORDINALITY AS p(post, n) "
            "ON CONFLICT DO NOTHING"
        )
    finally:
        cursor.close()


def _copy_line(e: Exposure) -> str:
    """One row of ``COPY ... FROM STDIN`` (text format), in the table's column order."""
    fields = (
        _copy_text(e.request_id),
        _copy_text(e.experiment),
        _copy_text(e.arm),
        "\\N" if e.bucket is None else str(int(e.bucket)),
        "t" if e.forced else "f",
        str(int(e.user_id)),
        e.request_time.isoformat(),
        e.served_at.isoformat(),
        _copy_text(e.recommender),
        _copy_text(e.model_version),
        _post_list(int(p) for p in e.post_ids),
    )
    return "\t".join(fields) + "\n"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def _insert_new(bind: Bind, table: Table) -> Insert:
    dialect = postgresql if is_postgres(bind) else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def arm_counts(*, bind: Bind, experiment: str) -> dict[str, ArmCounts]:
    """Stored exposures and distinct users per arm of ``experiment``."""
    query = (
        select(exposures.c.arm, func.count(), func.count(distinct(exposures.c.user_id)))
        .where(exposures.c.experiment == experiment)
        .group_by(exposures.c.arm)
        .order_by(exposures.c.arm)
    )
    with connect(bind) as conn:
        return {arm: ArmCounts(int(n), int(users)) for arm, n, users in conn.execute(query)}


def count_exposures(*, bind: Bind) -> int:
    """Every stored exposure, in or out of experiments."""
    with connect(bind) as conn:
        return int(conn.execute(select(func.count()).select_from(exposures)).scalar_one())


def shown_posts(*, bind: Bind, request_id: str) -> list[int]:
    """The posts of one exposure in the order shown."""
    query = (
        select(exposure_posts.c.post_id)
        .where(exposure_posts.c.request_id == request_id)
        .order_by(exposure_posts.c.position)
    )
    with connect(bind) as conn:
        return [int(p) for p in conn.execute(query).scalars()]
