"""Reading the feed and the catalogue into plain numpy/pandas data for the recommenders.

On PostgreSQL the feed is read with ``COPY ... TO STDOUT`` into a temporary CSV file that
Arrow parses in parallel: at the course's 76.5M rows that is minutes faster than
fetching rows through the driver (one Python tuple per row), and it needs far less memory.
SQLite goes through the driver in chunks.
"""

import tempfile
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from numpy.typing import ArrayLike
from sqlalchemy import Connection, Select, case, select
from tqdm import tqdm

from feeddata.db import Bind, connect, epoch_seconds, is_postgres
from feeddata.schema import POST_COLUMNS, USER_COLUMNS, feed_data, post_text_df, user_data


@dataclass(frozen=True)
class Interactions:
    """Feed events as parallel arrays sorted by time (ties keep database order).

    ``timestamp`` is in whole seconds since 1970-01-01 UTC; ``is_like`` marks like events
    (the rest are views); ``target`` is the view's "followed by a like" flag.
    """

    user_id: np.ndarray  # int64
    post_id: np.ndarray  # int64
    timestamp: np.ndarray  # int64
    is_like: np.ndarray  # bool
    target: np.ndarray  # int8

    def __len__(self) -> int:
        return len(self.timestamp)

    def select(self, mask: np.ndarray) -> "Interactions":
        return Interactions(
            self.user_id[mask],
            self.post_id[mask],
            self.timestamp[mask],
            self.is_like[mask],
            self.target[mask],
        )

    def before(self, time: int) -> "Interactions":
        """Events strictly before ``time``."""
        end = int(np.searchsorted(self.timestamp, time, side="left"))
        return self.select(slice(0, end))  # type: ignore[arg-type]

    def likes(self) -> "Interactions":
        return self.select(self.is_like)

    def views(self) -> "Interactions":
        return self.select(~self.is_like)

    @classmethod
    def from_arrays(
        cls,
        user_id: ArrayLike,
        post_id: ArrayLike,
        timestamp: ArrayLike,
        is_like: ArrayLike,
        target: ArrayLike | None = None,
    ) -> "Interactions":
        """Build from unsorted arrays; sorts by time, stably. Arrays already in time order
        and of the right types are kept, not copied (a service reads millions of likes at
        start)."""
        ts = np.asarray(timestamp, dtype=np.int64)
        columns = [
            np.asarray(user_id, np.int64),
            np.asarray(post_id, np.int64),
            ts,
            np.asarray(is_like, bool),
            np.zeros(len(ts), np.int8) if target is None else np.asarray(target, np.int8),
        ]
        if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
            order = np.argsort(ts, kind="stable")
            columns = [column[order] for column in columns]
        return cls(*columns)


def read_interactions(
    bind: Bind,
    *,
    likes_only: bool = False,
    chunk_rows: int = 1_000_000,
    progress: bool = True,
) -> Interactions:
    """All feed events (or only the likes), streamed from the database in chunks."""
    query = feed_query(likes_only)
    with connect(bind) as conn:
        if is_postgres(conn):
            columns = _copy_columns(conn, query, progress)
        else:
            columns = _fetch_columns(conn, query, chunk_rows, progress)
    user, post, ts, like, target = columns
    del columns
    interactions = Interactions.from_arrays(user, post, ts, like == 1, target)
    del user, post, ts, like, target
    # the columns Arrow parsed were copied when sorted by time; hand their memory back
    pa.default_memory_pool().release_unused()
    return interactions


_FEED_COLUMNS = ("user_id", "post_id", "timestamp", "is_like", "target")


def feed_query(likes_only: bool) -> Select[tuple[int, ...]]:
    """The feed as integer columns (:data:`_FEED_COLUMNS`); only likes if ``likes_only``."""
    query = select(
        feed_data.c.user_id,
        feed_data.c.post_id,
        epoch_seconds(feed_data.c.timestamp),
        case((feed_data.c.action == "like", 1), else_=0),
        feed_data.c.target,
    )
    return query.where(feed_data.c.action == "like") if likes_only else query


def _fetch_columns(
    conn: Connection, query: Select[tuple[int, ...]], chunk_rows: int, progress: bool
) -> list[np.ndarray]:
    parts: list[np.ndarray] = []
    with tqdm(unit=" rows", unit_scale=True, desc="read feed", disable=not progress) as bar:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
        for rows in result.partitions():
            # tuples, not Row objects: numpy converts them ~50x faster
            block = np.array([tuple(r) for r in rows], dtype=np.int64).reshape(-1, 5)
            parts.append(block)
            bar.update(len(block))
    data = np.concatenate(parts) if parts else np.zeros((0, 5), np.int64)
    return [data[:, i] for i in range(5)]


class _CountingWriter:
    """A file wrapper that advances a progress bar by the bytes written through it."""

    def __init__(self, sink: IO[bytes], bar: tqdm) -> None:
        self.sink, self.bar = sink, bar

    def write(self, data: bytes) -> int:
        self.bar.update(len(data))
        return self.sink.write(data)


def _copy_columns(
    conn: Connection, query: Select[tuple[int, ...]], progress: bool
) -> list[np.ndarray]:
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    types = dict.fromkeys(_FEED_COLUMNS, pa.int64()) | {"is_like": pa.int8(), "target": pa.int8()}
    with tempfile.TemporaryFile() as spool:
        try:
            with tqdm(unit="B", unit_scale=True, desc="copy feed", disable=not progress) as bar:
                cursor.copy_expert(
                    f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", _CountingWriter(spool, bar)
                )
        finally:
            cursor.close()
        spool.seek(0)
        table = pa_csv.read_csv(
            spool,
            read_options=pa_csv.ReadOptions(column_names=list(_FEED_COLUMNS)),
            convert_options=pa_csv.ConvertOptions(column_types=types),
        )
    columns = [table.column(name).to_numpy() for name in _FEED_COLUMNS]
    del table
    # Arrow's allocator keeps freed blocks for reuse; the feed is read once, at start
    pa.default_memory_pool().release_unused()
    return columns


def read_posts(bind: Bind) -> pd.DataFrame:
    """The post catalogue indexed by post_id, sorted, with empty text/topic as ''."""
    with connect(bind) as conn:
        frame = pd.read_sql(select(post_text_df).order_by(post_text_df.c.post_id), conn)
    frame = frame.reindex(columns=list(POST_COLUMNS))
    frame["text"] = frame["text"].fillna("")
    frame["topic"] = frame["topic"].fillna("")
    return frame.set_index("post_id")


def read_users(bind: Bind) -> pd.DataFrame:
    """User profiles indexed by user_id, sorted."""
    with connect(bind) as conn:
        frame = pd.read_sql(select(user_data).order_by(user_data.c.user_id), conn)
    return frame.reindex(columns=list(USER_COLUMNS)).set_index("user_id")
