"""GET /post/recommendations/: popularity before the request time, liked posts excluded.

Expected rankings are worked out by hand from the tiny data set (tests/api/tiny_data.py).
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

URL = "/post/recommendations/"


def recommended(client: TestClient, **params: Any) -> list[int]:
    response = client.get(URL, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["exp_group"] == "control"
    ids = [post["id"] for post in body["recommendations"]]
    assert len(ids) == len(set(ids))
    return ids


def test_response_shape(client: TestClient) -> None:
    response = client.get(URL, params={"id": 4, "time": "2021-10-01T10:00:00", "limit": 2})
    assert response.json() == {
        "exp_group": "control",
        "recommendations": [
            {"id": 11, "text": "Covid news", "topic": "covid"},
            {"id": 12, "text": "Markets fall", "topic": "business"},
        ],
    }


@pytest.mark.parametrize(
    ("user", "time", "limit", "expected"),
    [
        # 10:00: 11 and 12 have two likes each (tie -> lower id); 13's likes come later
        (4, "2021-10-01T10:00:00", 5, [11, 12, 10, 13, 14]),
        # 13:00: 13 has three likes
        (4, "2021-10-01T13:00:00", 3, [13, 11, 12]),
        # user 1 liked 11 at 09:00 and 13 at 12:10
        (1, "2021-10-01T10:00:00", 3, [12, 10, 13]),
        (1, "2021-10-01T13:00:00", 2, [12, 10]),
        # a like exactly at the request time is not "before" it: u3 liked 13 at 12:00
        (3, "2021-10-01T12:00:00", 10, [11, 10, 13, 14]),
        (3, "2021-10-01T12:00:01", 10, [11, 10, 14]),
        # before any like, ties everywhere: catalogue order
        (2, "2021-09-30T00:00:00", 3, [10, 11, 12]),
    ],
)
def test_popularity_before_time_without_liked_posts(
    client: TestClient, user: int, time: str, limit: int, expected: list[int]
) -> None:
    assert recommended(client, id=user, time=time, limit=limit) == expected


def test_exactly_limit_posts_unless_the_catalogue_is_smaller(client: TestClient) -> None:
    for limit in range(1, 6):
        assert len(recommended(client, id=4, time="2021-10-01T13:00:00", limit=limit)) == limit
    # 5 posts, user 3 liked two of them
    assert len(recommended(client, id=3, time="2021-10-02T00:00:00", limit=100)) == 3


def test_limit_defaults_to_10_and_time_to_now(client: TestClient) -> None:
    assert recommended(client, id=4) == [13, 11, 12, 10, 14]
    assert recommended(client, id=1) == [12, 10, 14]


@pytest.mark.parametrize(
    "time",
    [
        "2021-10-01T13:00:00+03:00",
        "2021-10-01T10:00:00Z",
        "2021-10-01 10:00:00",
        "2021-10-01T10:00",
    ],
)
def test_time_offsets_are_converted_to_utc(client: TestClient, time: str) -> None:
    assert recommended(client, id=4, time=time, limit=3) == [11, 12, 10]


def test_a_fraction_of_a_second_rounds_up(client: TestClient) -> None:
    # u3's 12:00:00 like is before 12:00:00.5 and must be excluded
    assert recommended(client, id=3, time="2021-10-01T12:00:00.500") == [11, 10, 14]


def test_without_the_trailing_slash_too(client: TestClient) -> None:
    response = client.get("/post/recommendations", params={"id": 1, "time": "2021-10-01T13:00"})
    assert [post["id"] for post in response.json()["recommendations"]] == [12, 10, 14]


def test_does_not_query_the_database(client: TestClient) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        recommended(client, id=1, limit=3)
        client.get(URL, params={"id": 999})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []


def test_unknown_user_is_404_naming_the_id(client: TestClient) -> None:
    response = client.get(URL, params={"id": 12345})
    assert response.status_code == 404
    assert response.json() == {"detail": "user 12345 not found"}
