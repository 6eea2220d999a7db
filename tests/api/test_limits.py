"""Request limits: oversized bodies are 413 before they are read, absurd parameters 422,
never a 500 (the in-process client re-raises any exception that reaches the server)."""

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from feeddata.db import make_engine
from tests.api import tiny_data
from tests.api.server import BIN, feedlab_env, free_port, running

RECS = "/post/recommendations/"
LIMIT = 64 * 1024
GOOD = {"user_id": 1, "post_id": 10, "action": "like", "time": "2021-10-05T00:00:00"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the limits are enforced before any database work."""
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    engine = make_engine(url)
    tiny_data.fill(engine)
    engine.dispose()
    return url


def _likes(client: TestClient) -> int:
    likes: int = client.get("/health").json()["likes"]
    return likes


def _padded(size: int) -> bytes:
    """A valid action as JSON, padded with spaces to exactly ``size`` bytes."""
    body = json.dumps(GOOD).encode()
    return body + b" " * (size - len(body))


def test_an_oversized_body_is_413_and_stores_nothing(client: TestClient) -> None:
    response = client.post(
        "/feed/actions", content=_padded(LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"request body too large ({LIMIT + 1} bytes); "
        f"at most {LIMIT} bytes (FEEDLAB_MAX_BODY_BYTES)"
    )
    assert _likes(client) == tiny_data.N_LIKES


def test_a_body_at_the_limit_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/feed/actions", content=_padded(LIMIT), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201
    assert _likes(client) == tiny_data.N_LIKES + 1


def test_a_chunked_body_without_length_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": 1, "post_id": 10, "action": "like", "pad": "'
        for _ in range(100):  # 800 KiB, never declared
            yield b"x" * 8192
        yield b'"}'

    response = client.post(
        "/feed/actions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "FEEDLAB_MAX_BODY_BYTES" in response.json()["detail"]
    assert _likes(client) == tiny_data.N_LIKES


def test_a_long_query_string_is_422(client: TestClient) -> None:
    response = client.get(RECS, params={"id": 1, "pad": "x" * 3000})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query"]
    assert "query string too long" in error["msg"]
    # just under the limit: the unknown parameter is ignored
    assert client.get(RECS, params={"id": 1, "pad": "x" * 2000}).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"id": 10**30}, "id"),
        ({"id": -(2**31) - 1}, "id"),
        ({"id": 1, "limit": 10**9}, "limit"),
        ({"id": 1, "limit": -(10**18)}, "limit"),
        ({"id": 1, "time": "9999-12-31T23:59:59"}, "time"),
        ({"id": 1, "time": "0001-01-01T00:00:00"}, "time"),
        ({"id": 1, "time": "1969-12-31T23:59:59"}, "time"),
        ({"id": 1, "time": "2100-01-01T00:00:00"}, "time"),
        ({"id": 1, "time": "2021-10-01T10:00:00+99:00"}, "time"),
        ({"id": 1, "time": "2" * 1000}, "time"),
    ],
)
def test_absurd_parameters_are_422(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get(RECS, params=params)
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]


@pytest.mark.parametrize(
    "time", ["1970-01-01T00:00:00", "2099-12-31T23:59:59", "2099-12-31T23:00:00-05:00"]
)
def test_the_years_1970_to_2099_are_served(client: TestClient, time: str) -> None:
    assert client.get(RECS, params={"id": 1, "time": time}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user_id": "1"}, "user_id"),
        ({"post_id": True}, "post_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"user_id": 1e300}, "user_id"),
        ({"time": "3000-01-01T00:00:00"}, "time"),
        ({"time": "1900-01-01T00:00:00"}, "time"),
        ({"event_id": "e" * 129}, "event_id"),
        ({"action": "like" * 10_000}, "action"),
    ],
)
def test_absurd_actions_are_422_and_store_nothing(
    client: TestClient, changes: dict[str, object], field: str
) -> None:
    response = client.post("/feed/actions", json=GOOD | changes)
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]
    assert _likes(client) == tiny_data.N_LIKES


def test_an_integral_float_is_an_integer_as_json_schema_says(client: TestClient) -> None:
    response = client.post("/feed/actions", json=GOOD | {"user_id": 1.0})
    assert response.status_code == 201
    assert response.json()["user_id"] == 1


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b"\xff\xfe\x00", b'{"user_id": 1' + b", " * 20_000],
    ids=["nested 30,000 deep", "not UTF-8", "truncated"],
)
def test_unreadable_bodies_are_400_or_422(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/feed/actions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert _likes(client) == tiny_data.N_LIKES


def _raw(port: int, request: bytes, timeout_s: float = 10) -> tuple[float, bytes]:
    """Send ``request`` as it is; the time to the first bytes of the answer, and them."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        started = time.monotonic()
        sock.sendall(request)
        answer = sock.recv(65536)
        return time.monotonic() - started, answer


def test_a_real_server_refuses_before_reading(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "python"), "-m", "uvicorn", "api.main:create_app", "--factory"]
    env = feedlab_env(database_url, tmp_path / "artifacts")
    with running([*command, "--port", str(port)], env=env, port=port, log=tmp_path / "log"):
        # 100 MB announced, none sent: answered from the headers, at once
        headers = b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n"
        seconds, answer = _raw(port, b"POST /feed/actions HTTP/1.1\r\n" + headers + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert seconds < 5
        # a 10 KB query string reaches the service and is refused there
        query = b"id=1&" + b"x=1&" * 2500
        _, answer = _raw(
            port, b"GET /post/recommendations/?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 422 ")
        # a megabyte one is refused by uvicorn's HTTP parser, before the service
        query = b"id=1&" + b"x=1&" * 250_000
        _, answer = _raw(
            port, b"GET /post/recommendations/?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 400 ")
