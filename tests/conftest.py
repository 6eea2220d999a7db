"""Shared fixtures: real SQLite and PostgreSQL databases, each test in a rolled-back
transaction."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, make_url, text

from feeddata.db import create_schema, make_engine

POSTGRES_URL = os.environ.get(
    "FEEDLAB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parents[1]
MOVIELENS_DIR = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """The real PostgreSQL server. Required: a missing server fails the run unless
    FEEDLAB_SKIP_POSTGRES=1 (CI never sets it)."""
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # pragma: no cover - depends on the machine
        if os.environ.get("FEEDLAB_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {error}")
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_URL}; start it or set "
            "FEEDLAB_TEST_POSTGRES_URL (FEEDLAB_SKIP_POSTGRES=1 to skip)"
        ) from error
    create_schema(engine)
    yield engine
    engine.dispose()


def _rolled_back(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def pg(postgres_engine: Engine) -> Iterator[Connection]:
    """A PostgreSQL connection inside a transaction rolled back after the test."""
    yield from _rolled_back(postgres_engine)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'feedlab.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def lite(sqlite_engine: Engine) -> Iterator[Connection]:
    """An SQLite connection inside a transaction rolled back after the test."""
    yield from _rolled_back(sqlite_engine)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Connection:
    """The same test on both databases."""
    return request.getfixturevalue("lite" if request.param == "sqlite" else "pg")


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    if not (MOVIELENS_DIR / "u.data").is_file():
        pytest.fail(f"MovieLens 100K expected at {MOVIELENS_DIR}")
    return MOVIELENS_DIR


def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database named ``<prefix>_<pid>`` for a live app or server,
    dropped at the end; a generator for session fixtures to ``yield from``."""
    base = make_url(POSTGRES_URL)
    name = f"{prefix}_{os.getpid()}"
    admin = make_engine(
        base.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # pragma: no cover - depends on the machine
        admin.dispose()
        if os.environ.get("FEEDLAB_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {error}")
        raise
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
