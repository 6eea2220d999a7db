"""A throwaway PostgreSQL database for tests whose writes commit (the exposure writer's
own transactions cannot be rolled back by a test)."""

from collections.abc import Iterator

import pytest

from tests.conftest import throwaway_database


@pytest.fixture(scope="session")
def throwaway_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    yield from throwaway_database("feedlab_experiment_test")
