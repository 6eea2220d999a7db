"""The course's browsing endpoints: users, posts and their latest actions."""

from fastapi.testclient import TestClient


def test_user(client: TestClient) -> None:
    assert client.get("/user/1").json() == {
        "id": 1,
        "gender": 1,
        "age": 25,
        "country": "Russia",
        "city": "Moscow",
        "exp_group": 3,
        "os": "iOS",
        "source": "ads",
    }


def test_post(client: TestClient) -> None:
    assert client.get("/post/13").json() == {"id": 13, "text": "Cup final", "topic": "sport"}


def test_user_feed_latest_first(client: TestClient) -> None:
    assert client.get("/user/1/feed", params={"limit": 3}).json() == [
        {
            "time": "2021-10-01T12:10:00Z",
            "user_id": 1,
            "post_id": 13,
            "action": "like",
            "target": 0,
        },
        {
            "time": "2021-10-01T12:09:00Z",
            "user_id": 1,
            "post_id": 13,
            "action": "view",
            "target": 1,
        },
        {
            "time": "2021-10-01T09:00:00Z",
            "user_id": 1,
            "post_id": 11,
            "action": "like",
            "target": 0,
        },
    ]


def test_user_feed_limit_defaults_to_10(client: TestClient) -> None:
    times = [event["time"] for event in client.get("/user/2/feed").json()]
    assert len(times) == 7  # all of user 2's actions
    assert times == sorted(times, reverse=True)


def test_user_without_actions_has_an_empty_feed(client: TestClient) -> None:
    response = client.get("/user/4/feed")
    assert (response.status_code, response.json()) == (200, [])


def test_post_feed_latest_first(client: TestClient) -> None:
    feed = client.get("/post/12/feed").json()
    assert [(e["time"][11:16], e["user_id"], e["action"]) for e in feed] == [
        ("09:30", 3, "like"),
        ("09:29", 3, "view"),
        ("09:20", 2, "like"),
        ("09:19", 2, "view"),
    ]
    assert [e["post_id"] for e in client.get("/post/13/feed", params={"limit": 1}).json()] == [13]


def test_routes_do_not_collide(client: TestClient) -> None:
    assert client.get("/post/11").json()["topic"] == "covid"
    assert "recommendations" in client.get("/post/recommendations/", params={"id": 1}).json()
