"""Engines, sessions and the idempotent schema, for SQLite and PostgreSQL alike."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect
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
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


Bind = Engine | Connection
"""Data-layer functions take an engine, or a connection whose transaction the caller owns
(tests wrap each test in one and roll it back)."""


@contextmanager
def transaction(bind: Bind) -> Iterator[Connection]:
    """A connection inside a transaction that commits or rolls back as a unit: a new
    transaction on an engine, a savepoint inside the caller's transaction on a connection."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin():
            yield bind


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
    """A session committed on success and rolled back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
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
