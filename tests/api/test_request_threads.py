"""Recommendations, liveness and metrics are answered on the event loop, outside the
request thread pool (``FEEDLAB_REQUEST_THREADS``): a request that waits on the database
holds a pool thread, never them. A real uvicorn process on the real PostgreSQL server; the
test holds a lock on the likes table so that a like waits in the pool's only thread."""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from feeddata.db import make_engine
from tests.api.experiment_setup import database_with_users
from tests.api.server import BIN, Server, feedlab_env, free_port, running

USERS = 10


@pytest.fixture
def pg_url(throwaway_postgres_url: str) -> str:
    return database_with_users(throwaway_postgres_url, USERS)


def waiting_for_a_lock(engine: Engine) -> int:
    """Queries of the other sessions on this database that wait for a lock."""
    with engine.connect() as conn:
        count: int = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return count


def test_a_request_waiting_on_the_database_holds_up_no_recommendation(
    pg_url: str, tmp_path: Path
) -> None:
    env = feedlab_env(pg_url, tmp_path / "artifacts") | {"FEEDLAB_REQUEST_THREADS": "1"}
    port = free_port()
    command = [str(BIN / "python"), "-m", "uvicorn", "api.main:create_app", "--factory"]
    log = tmp_path / "serve.log"
    watcher = make_engine(pg_url)
    with (
        running([*command, "--port", str(port)], env=env, port=port, log=log) as server,
        ThreadPoolExecutor(1) as pool,
    ):
        locker = watcher.connect()
        transaction = locker.begin()
        locker.execute(text("LOCK TABLE feed_data IN ACCESS EXCLUSIVE MODE"))
        like = pool.submit(
            server.http.post, "/feed/actions", json={"user_id": 1, "post_id": 12, "action": "like"}
        )
        try:
            deadline = time.monotonic() + 30
            while waiting_for_a_lock(watcher) == 0:
                assert time.monotonic() < deadline, "the like never reached the lock"
                assert not like.done(), like.result().text
                time.sleep(0.05)
            # The pool's only thread now waits for the lock, and will until the test lets go.
            answered = recommend_live_and_scrape(server)
            assert not like.done()
        finally:
            transaction.commit()  # releases the lock
            locker.close()
        assert like.result(timeout=30).status_code == 201
    watcher.dispose()
    recommendation, live, metrics = answered
    assert recommendation.status_code == 200, recommendation.text
    assert len(recommendation.json()["recommendations"]) == 3
    assert live.status_code == 200
    assert "feedlab_request_threads_busy 1.0" in metrics.text


def recommend_live_and_scrape(server: Server) -> tuple[httpx.Response, ...]:
    http = server.http
    return (
        http.get("/post/recommendations/", params={"id": USERS, "limit": 3}, timeout=10),
        http.get("/health/live", timeout=10),
        http.get("/metrics", timeout=10),
    )
