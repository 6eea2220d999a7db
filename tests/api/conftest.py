"""An app on the tiny data set, on SQLite and on PostgreSQL.

A live app commits through its own connections, so PostgreSQL tests cannot use the
rolled-back transaction of ``pg``: they get a throwaway database for the session, refilled
for every test.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from feeddata.db import make_engine
from feedlab.settings import Settings
from tests.api import tiny_data
from tests.conftest import throwaway_database


@pytest.fixture(scope="session")
def throwaway_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    yield from throwaway_database("feedlab_api_test")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database holding exactly the tiny data set."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'api.db'}"
    else:
        url = request.getfixturevalue("throwaway_postgres_url")
    engine = make_engine(url)
    try:
        tiny_data.fill(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, artifacts=tmp_path / "artifacts")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the app on the tiny data set; the app's lifespan runs around the test."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
