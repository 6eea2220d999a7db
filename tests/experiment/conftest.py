"""A throwaway PostgreSQL database for tests whose writes commit (the exposure writer's
own transactions cannot be rolled back by a test)."""

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from feeddata.db import make_engine
from tests.conftest import POSTGRES_URL


@pytest.fixture(scope="session")
def throwaway_postgres_url() -> Iterator[str]:
    base = make_url(POSTGRES_URL)
    name = f"feedlab_experiment_test_{os.getpid()}"
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
