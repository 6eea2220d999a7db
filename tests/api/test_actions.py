"""POST /feed/actions: views and likes land in feed_data and in the live like history."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from api.main import create_app
from feedlab.settings import Settings

URL = "/feed/actions"


def post(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post(URL, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def recommended_ids(client: TestClient, user: int, **params: str) -> list[int]:
    body = client.get("/post/recommendations/", params={"id": user, **params}).json()
    return [post["id"] for post in body["recommendations"]]


def test_view_then_like(client: TestClient) -> None:
    assert recommended_ids(client, 4) == [13, 11, 12, 10, 14]
    view = post(client, user_id=4, post_id=14, action="view", time="2021-10-02T08:00:00")
    assert view == {
        "time": "2021-10-02T08:00:00Z",
        "user_id": 4,
        "post_id": 14,
        "action": "view",
        "target": 0,
        "views_marked": 0,
    }
    like = post(client, user_id=4, post_id=14, action="like", time="2021-10-02T11:01:00+03:00")
    assert (like["time"], like["action"], like["target"], like["views_marked"]) == (
        "2021-10-02T08:01:00Z",
        "like",
        0,
        1,
    )
    assert client.get("/user/4/feed").json() == [
        {
            "time": "2021-10-02T08:01:00Z",
            "user_id": 4,
            "post_id": 14,
            "action": "like",
            "target": 0,
        },
        {
            "time": "2021-10-02T08:00:00Z",
            "user_id": 4,
            "post_id": 14,
            "action": "view",
            "target": 1,
        },
    ]
    # excluded for the liker from then on, and counted for everybody else
    assert recommended_ids(client, 4) == [13, 11, 12, 10]
    assert recommended_ids(client, 4, time="2021-10-02T08:01:00") == [13, 11, 12, 10, 14]
    assert recommended_ids(client, 1, time="2021-10-03T00:00:00") == [12, 14, 10]
    assert client.get("/health").json()["likes"] == 8


def test_a_like_marks_only_earlier_views_of_that_post(client: TestClient) -> None:
    post(client, user_id=2, post_id=14, action="like", time="2021-10-01T12:29:00")
    post(client, user_id=2, post_id=14, action="like", time="2021-10-01T12:31:00")
    targets = {
        (e["post_id"], e["time"][11:16]): e["target"] for e in client.get("/user/2/feed").json()
    }
    assert targets[(14, "12:30")] == 1
    assert targets[(12, "09:19")] == 1  # untouched


def test_a_view_reported_after_a_later_like_is_marked(client: TestClient) -> None:
    # user 1 liked post 11 at 09:00
    assert (
        post(client, user_id=1, post_id=11, action="view", time="2021-10-01T08:30:00")["target"]
        == 1
    )
    assert (
        post(client, user_id=1, post_id=11, action="view", time="2021-10-01T09:30:00")["target"]
        == 0
    )


def test_time_defaults_to_now(client: TestClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    like = post(client, user_id=3, post_id=14, action="like")
    stored = datetime.fromisoformat(str(like["time"]))
    assert before <= stored <= datetime.now(UTC)
    assert 14 not in recommended_ids(client, 3)


def test_a_like_survives_a_restart(client: TestClient, settings: Settings) -> None:
    post(client, user_id=4, post_id=10, action="like", time="2021-10-02T00:00:00")
    with TestClient(create_app(settings)) as restarted:
        assert recommended_ids(restarted, 4) == [13, 11, 12, 14]
        assert restarted.get("/health").json()["likes"] == 8


def test_unknown_user_or_post_is_404_and_stores_nothing(client: TestClient) -> None:
    response = client.post(URL, json={"user_id": 777, "post_id": 10, "action": "like"})
    assert (response.status_code, response.json()) == (404, {"detail": "user 777 not found"})
    response = client.post(URL, json={"user_id": 1, "post_id": 888, "action": "view"})
    assert (response.status_code, response.json()) == (404, {"detail": "post 888 not found"})
    assert len(client.get("/user/1/feed", params={"limit": 100}).json()) == 5
    assert client.get("/health").json()["likes"] == 7


def test_a_retried_event_is_stored_once(client: TestClient) -> None:
    like = {"user_id": 4, "post_id": 14, "action": "like", "time": "2021-10-02T08:00:00"}
    first = client.post(URL, json={**like, "event_id": "3f2a-like-1"})
    retry = client.post(URL, json={**like, "event_id": "3f2a-like-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    feed = client.get("/user/4/feed").json()
    assert [e["action"] for e in feed] == ["like"]
    assert client.get("/health").json()["likes"] == 8  # counted once in memory too
    other = client.post(URL, json={**like, "event_id": "3f2a-like-2"})
    assert other.status_code == 201
    assert len(client.get("/user/4/feed").json()) == 2


def test_an_event_id_reused_for_another_action_is_a_conflict(client: TestClient) -> None:
    view = {"user_id": 4, "post_id": 14, "action": "view", "event_id": "ev-9"}
    assert client.post(URL, json=view).status_code == 201
    reused = client.post(URL, json={**view, "post_id": 13})
    assert reused.status_code == 409
    assert "'ev-9' was already used for a view of post 14 by user 4" in reused.json()["detail"]


def test_a_bad_event_id_is_a_bad_parameter(client: TestClient) -> None:
    view = {"user_id": 4, "post_id": 14, "action": "view"}
    for bad in ("", "has space", "x" * 129):
        assert client.post(URL, json={**view, "event_id": bad}).status_code == 422


def test_concurrent_retries_store_one_event(client: TestClient) -> None:
    like = {"user_id": 3, "post_id": 14, "action": "like", "event_id": "race-1"}
    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(lambda _: client.post(URL, json=like).status_code, range(8)))
    assert codes == [200] * 7 + [201]
    likes = [e for e in client.get("/user/3/feed").json() if e["post_id"] == 14]
    assert len(likes) == 1
