"""Operations: request ids, structured JSON logs, and the live and ready probes."""

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from api.main import create_app
from api.request_log import JsonFormatter, RequestIdFilter, uvicorn_log_config
from feeddata.db import make_engine
from feeddata.schema import exposures
from feedlab.settings import Settings
from tests.api import tiny_data
from tests.api.server import BIN, feedlab_env, free_port, running

RECS = "/post/recommendations/"
TRACE = "lb-7f3c2a9e-4b1d-4e8a-9c0f-1a2b3c4d5e6f"
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (PostgreSQL is the same code here)."""
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    engine = make_engine(url)
    tiny_data.fill(engine)
    engine.dispose()
    return url


Logged = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged() -> Iterator[Logged]:
    """The lines the ``feedlab`` loggers wrote so far in the test, parsed as JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("feedlab")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def _probe_app(settings: Settings) -> FastAPI:
    app = create_app(settings)

    def probe() -> dict[str, bool]:  # sync: runs in the threadpool, like the routes
        logging.getLogger("feedlab.probe").info("inside the route", extra={"answer": 42})
        return {"ok": True}

    app.add_api_route("/probe", probe)
    return app


def test_an_incoming_request_id_is_kept_everywhere(settings: Settings, logged: Logged) -> None:
    with TestClient(_probe_app(settings)) as client:
        response = client.get("/probe", headers={"X-Request-Id": TRACE})
    assert response.headers["X-Request-Id"] == TRACE
    mine = [line for line in logged() if line.get("request_id") == TRACE]
    assert [(line["logger"], line["message"]) for line in mine] == [
        ("feedlab.probe", "inside the route"),
        ("feedlab.access", "GET /probe 200"),
    ]
    probe, access = mine
    assert probe["answer"] == 42
    assert (access["method"], access["path"], access["status"]) == ("GET", "/probe", 200)
    assert access["duration_ms"] >= 0
    for line in logged():  # every line is a JSON object with the same first fields
        assert list(line)[:4] == ["time", "level", "logger", "message"]


def test_otherwise_each_request_gets_a_new_id(client: TestClient) -> None:
    ids = {client.get("/post/10").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(HEX_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize(
    "incoming", ["short", "has spaces in it, too many", "x" * 129, "ünïcödé-request-id-1234"]
)
def test_a_malformed_incoming_id_is_replaced(
    settings: Settings, logged: Logged, incoming: str
) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/post/10", headers=[(b"X-Request-Id", incoming.encode())])
    request_id = response.headers["X-Request-Id"]
    assert HEX_ID.fullmatch(request_id)
    [access] = [line for line in logged() if line["logger"] == "feedlab.access"]
    assert access["request_id"] == request_id
    assert access["ignored_request_id"]


def test_the_recommendation_id_is_the_request_id_and_the_exposure_id(
    settings: Settings, logged: Logged
) -> None:
    with TestClient(create_app(settings)) as client:
        traced = client.get(RECS, params={"id": 1}, headers={"X-Request-Id": TRACE})
        fresh = client.get(RECS, params={"id": 2})
    assert traced.headers["X-Request-Id"] == TRACE
    fresh_id = fresh.headers["X-Request-Id"]
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:  # the log was flushed when the app closed
        stored = set(conn.execute(select(exposures.c.request_id)).scalars())
    engine.dispose()
    assert stored == {TRACE, fresh_id}
    access = {line["request_id"] for line in logged() if line["logger"] == "feedlab.access"}
    assert {TRACE, fresh_id} <= access


def test_an_unexpected_error_carries_the_request_id(settings: Settings, logged: Logged) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        engine = make_engine(settings.database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE feed_data"))
        engine.dispose()
        response = client.get("/user/1/feed", headers={"X-Request-Id": TRACE})
    assert response.status_code == 500
    assert response.headers["X-Request-Id"] == TRACE
    [error] = [line for line in logged() if line["level"] == "error"]
    assert error["request_id"] == TRACE
    assert error["message"] == "unhandled error on GET /user/1/feed"
    assert "Traceback" in error["error"]


def test_uvicorn_logs_in_the_same_format() -> None:
    config = uvicorn_log_config("json", "info")
    assert config["formatters"]["service"]["()"] == "api.request_log.JsonFormatter"
    assert config["loggers"]["uvicorn"]["handlers"] == ["service"]
    plain = uvicorn_log_config("text", "warning")
    assert "format" in plain["formatters"]["service"]
    assert plain["loggers"]["uvicorn"]["level"] == "WARNING"


# --- probes ------------------------------------------------------------------------------


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "state_loaded": True, "database": True}


def test_not_ready_without_the_database_yet_live(client: TestClient) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]
    working = state.engine
    state.engine = make_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    try:
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        health = client.get("/health")
    finally:
        state.engine.dispose()
        state.engine = working
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "state_loaded": True, "database": False}
    assert live.status_code == 200
    assert health.status_code == 503  # /health keeps its meaning
    assert client.get("/health/ready").status_code == 200


def test_not_ready_before_the_state_is_loaded(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no `with`: the lifespan does not run
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "state_loaded": False, "database": False}
    assert client.get("/health/live").status_code == 200


def test_feedlab_serve_writes_json_lines(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    command = [str(BIN / "feedlab"), "serve", "--port", str(port)]
    env = feedlab_env(database_url, tmp_path / "artifacts")
    with running(command, env=env, port=port, log=log) as server:
        response = server.http.get(RECS, params={"id": 1}, headers={"X-Request-Id": TRACE})
        assert response.headers["X-Request-Id"] == TRACE
    banner, *lines = log.read_text().splitlines()
    assert banner.startswith("serving on http://")  # the command's own output, not a log
    records = [json.loads(line) for line in lines]  # every log line is JSON
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "feedlab.api", "feedlab.access"} <= loggers
    [access] = [r for r in records if r.get("request_id") == TRACE]
    assert (access["path"], access["status"]) == (RECS, 200)
