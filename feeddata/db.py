"""Engines, sessions and the idempotent schema, for SQLite and PostgreSQL alike.

Writes go through :func:`transaction` (or :func:`session_scope`), reads through
:func:`connect`. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``: it takes the
write lock up front, waiting for another writer under ``busy_timeout``. A plain (deferred)
``BEGIN`` that reads and then writes would instead fail at once with "database is locked"
when another connection writes meanwhile, since SQLite cannot wait to upgrade a read
transaction whose snapshot may be stale. Reads keep the deferred ``BEGIN``, so under WAL
they never wait for a writer. PostgreSQL transactions are left as they are.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event, func, inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import BigInteger

from feeddata.schema import TABLES, metadata


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL so readers never block the writer."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite opens transactions lazily and never around DDL; take control so that
        # an import (DDL included) and a test's rollback are truly atomic.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_WRITE = "feedlab_write"
"""Execution option read by the SQLite "begin" event: begin a write transaction."""


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


Bind = Engine | Connection
"""Data-layer functions take an engine, or a connection whose transaction the caller owns
(tests wrap each test in one and roll it back)."""


@contextmanager
def transaction(bind: Bind) -> Iterator[Connection]:
    """A connection inside a write transaction that commits or rolls back as a unit: a new
    transaction on an engine, a savepoint inside the caller's transaction on a connection."""
    if isinstance(bind, Engine):
        with bind.connect() as conn, _begin_write(conn):
            yield conn
    elif bind.in_transaction():
        with bind.begin_nested():
            yield bind
    else:
        with _begin_write(bind):
            yield bind


def _begin_write(conn: Connection) -> RootTransaction:
    """``conn.begin()``, as ``BEGIN IMMEDIATE`` on SQLite; the option is only set for the
    begin, so a caller's connection keeps beginning its reads deferred."""
    conn.execution_options(**{_WRITE: True})
    try:
        return conn.begin()
    finally:
        conn.execution_options(**{_WRITE: False})


@contextmanager
def connect(bind: Bind) -> Iterator[Connection]:
    """A connection for reading."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            yield conn
    else:
        yield bind


def is_postgres(bind: Bind) -> bool:
    return bind.dialect.name == "postgresql"


def create_schema(bind: Bind) -> None:
    """Create the missing tables and their indexes; existing tables are left untouched."""
    with transaction(bind) as conn:
        metadata.create_all(conn, checkfirst=True)


def missing_tables(bind: Bind) -> list[str]:
    """Names of the social network's tables that the database does not have."""
    with connect(bind) as conn:
        present = set(inspect(conn).get_table_names())
    return [name for name in TABLES if name not in present]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on error, in a write transaction."""
    factory = sessionmaker(engine.execution_options(**{_WRITE: True}), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


class epoch_seconds(FunctionElement[int]):  # noqa: N801 - reads like the SQL function it is
    """Seconds since 1970-01-01 UTC of a naive UTC timestamp column, as a SQL expression."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(column, **kw)})) AS BIGINT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(strftime('%s', {compiler.process(column, **kw)}) AS INTEGER)"


def count_rows(bind: Bind, table: str) -> int:
    """Row count of one of the social network's tables."""
    with connect(bind) as conn:
        return int(conn.execute(func.count().select().select_from(TABLES[table])).scalar_one())
