"""Bad input on every endpoint is a 404 or a 422 with a reason, never a 500.

The client re-raises any exception that reaches the server, so these tests also prove bad
input never gets as far as the last-resort handler.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

RECS = "/post/recommendations/"


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("/user/12345", "user 12345 not found"),
        ("/user/12345/feed", "user 12345 not found"),
        ("/post/12345", "post 12345 not found"),
        ("/post/12345/feed", "post 12345 not found"),
        (f"{RECS}?id=12345", "user 12345 not found"),
        (f"{RECS}?id=-1", "user -1 not found"),
    ],
)
def test_unknown_ids_are_404_naming_the_id(client: TestClient, url: str, detail: str) -> None:
    response = client.get(url)
    assert (response.status_code, response.json()) == (404, {"detail": detail})


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/user/abc", "user_id"),
        ("/user/1.5", "user_id"),
        ("/user/99999999999", "user_id"),
        ("/user/abc/feed", "user_id"),
        ("/post/abc", "post_id"),
        ("/post/-99999999999/feed", "post_id"),
        *[(f"/user/1/feed?limit={bad}", "limit") for bad in ("0", "101", "abc", "-1", "")],
        *[(f"/post/10/feed?limit={bad}", "limit") for bad in ("0", "101", "abc")],
        (RECS, "id"),
        (f"{RECS}?id=", "id"),
        (f"{RECS}?id=abc", "id"),
        (f"{RECS}?id=1e3", "id"),
        (f"{RECS}?id=99999999999", "id"),
        *[(f"{RECS}?id=1&limit={bad}", "limit") for bad in ("0", "101", "abc", "2.5")],
        *[
            (f"{RECS}?id=1&time={bad}", "time")
            for bad in (
                "yesterday",
                "2021-13-01T00:00:00",
                "2021-10-01T25:00:00",
                "1633082400",
                "0001-01-01T00:00:00%2B01:00",
                "9999-12-31T23:59:59-01:00",
            )
        ],
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(
    client: TestClient, url: str, field: str
) -> None:
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


GOOD = {"user_id": 1, "post_id": 10, "action": "like", "time": "2021-10-05T00:00:00"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "action": "click"}, "action"),
        ({**GOOD, "action": None}, "action"),
        ({**GOOD, "time": "soon"}, "time"),
        ({**GOOD, "time": 1633082400}, "time"),
        ({**GOOD, "user_id": "x"}, "user_id"),
        ({**GOOD, "post_id": 2**40}, "post_id"),
        ({**GOOD, "extra": 1}, "extra"),
        *[
            ({k: v for k, v in GOOD.items() if k != key}, key)
            for key in ("user_id", "post_id", "action")
        ],
        ([GOOD], "body"),
        ("not json", "body"),
    ],
)
def test_bad_actions_are_422(client: TestClient, body: Any, field: str) -> None:
    if isinstance(body, str):
        response = client.post(
            "/feed/actions", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = client.post("/feed/actions", json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"])
    assert client.get("/health").json()["likes"] == 7


def test_an_empty_body_is_422(client: TestClient) -> None:
    assert client.post("/feed/actions").status_code == 422


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert client.get("/nowhere").status_code == 404
    assert client.delete("/user/1").status_code == 405
    assert client.get("/feed/actions").status_code == 405
