"""Atomic bulk loading of the three tables: COPY on PostgreSQL, batched inserts on SQLite.

Data arrive as a stream of :class:`Chunk` (a table's rows as a DataFrame, and where they came
from). Each chunk is validated, then written inside one transaction: an import either lands
whole or leaves the database exactly as it was. Memory is bounded by the chunk size.
"""

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from feeddata.db import Bind, create_schema, is_postgres, transaction
from feeddata.schema import (
    ACTIONS,
    FEED_COLUMNS,
    POST_COLUMNS,
    USER_COLUMNS,
    feed_data,
    post_text_df,
    user_data,
)

TABLE_COLUMNS = {"user_data": USER_COLUMNS, "post_text_df": POST_COLUMNS, "feed_data": FEED_COLUMNS}
INT_COLUMNS = {
    "user_data": ("user_id", "gender", "age", "exp_group"),
    "post_text_df": ("post_id",),
    "feed_data": ("user_id", "post_id", "target"),
}
OPTIONAL_COLUMNS = {"post_text_df": ("text", "topic"), "feed_data": ("target",)}
# SQLAlchemy's own text format for DateTime on SQLite, so rows read back as datetimes.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
# psycopg2 feeds COPY 8 KiB at a time by default; larger reads cut Python round trips.
COPY_READ_BYTES = 1 << 20
# A post's text, a city...: longer is a broken file (a quote left open) or an attack.
MAX_TEXT_CHARS = 100_000


class DataImportError(ValueError):
    """Bad input data; names the file, the row and the column so the user can fix it."""

    def __init__(self, source: str, message: str, row: int | None = None, column: str = "") -> None:
        where = source
        if row is not None:
            where += f", row {row}"
        if column:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")
        self.source, self.row, self.column = source, row, column


@dataclass(frozen=True)
class Chunk:
    """Rows of one table and their origin; ``first_row`` is the 1-based row number of the
    chunk's first row in its source (for CSV, data rows counted after the header)."""

    table: str
    rows: pd.DataFrame
    source: str
    first_row: int = 1


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_COLUMNS, 0))


def normalize(chunk: Chunk) -> pd.DataFrame:
    """Validate a chunk and return its rows in the table's column order and types."""
    frame = chunk.rows
    columns = TABLE_COLUMNS[chunk.table]
    optional = OPTIONAL_COLUMNS.get(chunk.table, ())
    missing = [c for c in columns if c not in frame.columns and c not in optional]
    if missing:
        raise DataImportError(
            chunk.source,
            f"missing column(s) {', '.join(missing)} for {chunk.table}; "
            f"expected {', '.join(columns)}",
        )
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        if column not in frame.columns:
            out[column] = 0 if column == "target" else ""
            continue
        values = frame[column]
        if column in INT_COLUMNS[chunk.table]:
            out[column] = _as_int(values, chunk, column)
        elif column == "timestamp":
            out[column] = _as_timestamp(values, chunk)
        else:
            out[column] = _as_text(values, chunk, column, nullable=column in optional)
    if chunk.table == "feed_data":
        bad = ~out["action"].isin(ACTIONS)
        _raise_first(bad, chunk, "action", f"action must be one of {', '.join(ACTIONS)}", frame)
        bad = ~out["target"].isin((0, 1))
        _raise_first(bad, chunk, "target", "target must be 0 or 1", frame)
    if chunk.table == "user_data":
        bad = ~out["gender"].isin((0, 1))
        _raise_first(bad, chunk, "gender", "gender must be 0 or 1", frame)
    return out.reset_index(drop=True)


def _raise_first(
    bad: pd.Series, chunk: Chunk, column: str, message: str, raw: pd.DataFrame
) -> None:
    if bool(bad.any()):
        position = int(np.flatnonzero(bad.to_numpy())[0])
        value = raw[column].iloc[position] if column in raw.columns else None
        raise DataImportError(
            chunk.source, f"{message}, got {shown(value)}", chunk.first_row + position, column
        )


def shown(value: object, max_chars: int = 60) -> str:
    """``repr(value)``, cut short for a message: a bad cell may be megabytes long."""
    text = repr(value)
    if len(text) <= max_chars:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else type(value).__name__
    return f"{text[:max_chars]}... ({size})"


def _as_int(values: pd.Series, chunk: Chunk, column: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers.fillna(0) % 1 != 0) | (numbers.abs() > 2**31 - 1)
    _raise_first(bad, chunk, column, "expected an integer", chunk.rows)
    return numbers.astype("int64")


def _as_text(values: pd.Series, chunk: Chunk, column: str, *, nullable: bool) -> pd.Series:
    text = values.astype("string")
    if chunk.table != "feed_data":  # feed_data's only text, action, is checked against ACTIONS
        _check_text_content(text, chunk, column)
    if nullable:
        return text.fillna("").astype(object)
    bad = text.isna() | (text.str.len() == 0)
    _raise_first(bad, chunk, column, "expected a non-empty text", chunk.rows)
    return text.astype(object)


def _check_text_content(text: pd.Series, chunk: Chunk, column: str) -> None:
    too_long = text.str.len().fillna(0) > MAX_TEXT_CHARS
    message = f"text longer than {MAX_TEXT_CHARS:,} characters"
    _raise_first(too_long, chunk, column, message, chunk.rows)
    # PostgreSQL cannot store NUL in text; refused on every database alike
    nul = text.str.contains("\x00", regex=False).fillna(False).astype(bool)
    _raise_first(nul, chunk, column, "text contains a NUL character (\\x00)", chunk.rows)


def _as_timestamp(values: pd.Series, chunk: Chunk) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        parsed = pd.to_datetime(values, unit="s", errors="coerce")
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        parsed = parsed.dt.tz_convert(None)
    _raise_first(parsed.isna(), chunk, "timestamp", "expected a date and time", chunk.rows)
    return parsed.astype("datetime64[us]")


def load(
    bind: Bind,
    chunks: Iterable[Chunk],
    *,
    total_rows: int | None = None,
    description: str = "import",
    check_references: bool = True,
    progress: bool = True,
) -> LoadReport:
    """Write every chunk in one transaction; on any error nothing is written.

    Users and posts must come before the feed rows that refer to them. With
    ``check_references`` every feed row must name a user and a post that exist (already
    stored or earlier in this import).
    """
    create_schema(bind)
    report = LoadReport()
    with (
        transaction(bind) as conn,
        tqdm(
            total=total_rows, unit=" rows", unit_scale=True, desc=description, disable=not progress
        ) as bar,
    ):
        known = _KnownIds(conn) if check_references else None
        deferred = _IndexDeferral(conn)
        for chunk in chunks:
            rows = normalize(chunk)
            if known is not None:
                known.check_and_add(chunk, rows)
            if chunk.table == "feed_data" and len(rows):
                deferred.defer_once()
            _write(conn, chunk, rows)
            report.rows[chunk.table] += len(rows)
            bar.update(len(rows))
        deferred.restore()
    return report


class _KnownIds:
    """Primary keys already stored or imported, to reject duplicates and dangling feed rows."""

    def __init__(self, conn: Connection) -> None:
        self.users = _sorted_ids(conn, user_data.c.user_id)
        self.posts = _sorted_ids(conn, post_text_df.c.post_id)

    def check_and_add(self, chunk: Chunk, rows: pd.DataFrame) -> None:
        if chunk.table == "feed_data":
            self._check_exists(chunk, rows, "user_id", self.users, "user_data")
            self._check_exists(chunk, rows, "post_id", self.posts, "post_text_df")
            return
        key = "user_id" if chunk.table == "user_data" else "post_id"
        ids = rows[key].to_numpy(np.int64)
        dup_in_chunk = pd.Series(ids).duplicated().to_numpy()
        known = self.users if key == "user_id" else self.posts
        dup = dup_in_chunk | _isin_sorted(ids, known)
        if dup.any():
            position = int(np.flatnonzero(dup)[0])
            raise DataImportError(
                chunk.source,
                f"duplicate {key} {ids[position]} "
                f"(already in {chunk.table} or earlier in this import)",
                chunk.first_row + position,
                key,
            )
        merged = np.union1d(known, ids)
        if key == "user_id":
            self.users = merged
        else:
            self.posts = merged

    @staticmethod
    def _check_exists(
        chunk: Chunk, rows: pd.DataFrame, column: str, known: np.ndarray, table: str
    ) -> None:
        ids = rows[column].to_numpy(np.int64)
        unknown = ~_isin_sorted(ids, known)
        if unknown.any():
            position = int(np.flatnonzero(unknown)[0])
            raise DataImportError(
                chunk.source,
                f"{column} {ids[position]} is not in {table}; import it first",
                chunk.first_row + position,
                column,
            )


def _sorted_ids(conn: Connection, column: Any) -> np.ndarray:
    ids = conn.execute(select(column)).scalars().all()
    return np.sort(np.asarray(ids, dtype=np.int64))


def _isin_sorted(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.clip(np.searchsorted(sorted_ids, values), 0, len(sorted_ids) - 1)
    return np.asarray(sorted_ids[pos] == values)


class _IndexDeferral:
    """Drops feed_data's indexes while a large load fills an empty table, and rebuilds them
    at the end, inside the same transaction (DDL is transactional on both databases)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dropped: list[Any] = []
        self.decided = False

    def defer_once(self) -> None:
        if self.decided:
            return
        self.decided = True
        if self.conn.execute(select(feed_data.c.user_id).limit(1)).first() is not None:
            return
        present = {ix["name"] for ix in _inspect_indexes(self.conn)}
        for index in feed_data.indexes:
            if index.name in present:
                index.drop(self.conn)
                self.dropped.append(index)

    def restore(self) -> None:
        for index in self.dropped:
            index.create(self.conn)
        self.dropped = []


def _inspect_indexes(conn: Connection) -> list[Any]:
    from sqlalchemy import inspect

    return list(inspect(conn).get_indexes("feed_data"))


def _write(conn: Connection, chunk: Chunk, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    try:
        if is_postgres(conn):
            _copy_postgres(conn, chunk.table, rows)
        else:
            _insert_sqlite(conn, chunk.table, rows)
    except DBAPIError as error:
        detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DataImportError(chunk.source, f"the database refused the rows: {detail}") from error


def _copy_postgres(conn: Connection, table: str, rows: pd.DataFrame) -> None:
    # Arrow's C++ CSV writer is about 5x faster than DataFrame.to_csv. It quotes every string,
    # so an empty text stays '' (an unquoted empty field is NULL to COPY), and writes
    # timestamps as "2021-10-01 10:00:00.000000", which PostgreSQL reads as they are.
    buffer = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    pa_csv.write_csv(pa.Table.from_pandas(rows, preserve_index=False), buffer, options)
    buffer.seek(0)
    columns = ", ".join(f'"{c}"' for c in rows.columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')",
            buffer,
            size=COPY_READ_BYTES,
        )
    finally:
        cursor.close()


def _insert_sqlite(conn: Connection, table: str, rows: pd.DataFrame) -> None:
    out = rows
    if "timestamp" in out:
        out = out.copy()
        out["timestamp"] = out["timestamp"].dt.strftime(TIMESTAMP_FORMAT)
    columns = ", ".join(f'"{c}"' for c in rows.columns)
    marks = ", ".join("?" for _ in rows.columns)
    records = list(out.itertuples(index=False, name=None))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", records)
    finally:
        cursor.close()
