"""/health, the model bundle the service loads, and the last-resort error handler."""

import gc
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import DatabaseNotReadyError, create_app
from feeddata.db import make_engine
from feeddata.interactions import read_interactions
from feedlab.settings import Settings
from recommenders.base import TrainingData
from recommenders.baselines import PopularityRecommender
from tests.api import tiny_data


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("started_at")
    [recommender] = body.pop("recommenders")
    assert body == {"status": "ok", "database": True, "posts": 5, "users": 4, "likes": 7}
    assert recommender["arm"] == "control"
    assert recommender["name"] == "popular"
    assert recommender["version"].startswith("popular-")


def test_the_loaded_state_is_frozen_out_of_the_garbage_collector(settings: Settings) -> None:
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the state, the bundles, the app: full collections skip them
        gc.collect()
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0  # given back when the app stops


def test_health_says_when_the_database_is_unreachable(client: TestClient) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]
    working = state.engine
    state.engine = make_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    try:
        response = client.get("/health")
    finally:
        state.engine.dispose()
        state.engine = working
    assert response.status_code == 503
    assert (response.json()["status"], response.json()["database"]) == ("degraded", False)
    # recommendations still come from memory
    assert client.get("/post/recommendations/", params={"id": 1}).status_code == 200


def test_loads_the_popularity_bundle(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    likes = read_interactions(engine, likes_only=True, progress=False)
    engine.dispose()
    model = PopularityRecommender().fit(
        TrainingData(likes, tiny_data.POSTS.set_index("post_id"), tiny_data.USERS, 1_700_000_000)
    )
    model.save(settings.artifacts / "popular")
    with TestClient(create_app(settings)) as client:
        [recommender] = client.get("/health").json()["recommenders"]
    assert recommender["version"] == model.version


def test_refuses_a_database_without_tables(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", artifacts=tmp_path)
    with pytest.raises(DatabaseNotReadyError, match="feedlab up"), TestClient(create_app(settings)):
        pass


def test_unexpected_errors_give_a_clean_500_and_a_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        engine = make_engine(settings.database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE feed_data"))
        engine.dispose()
        with caplog.at_level(logging.ERROR, logger="feedlab.api"):
            response = client.get("/user/1/feed")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error; the service log has the details"}
    assert "unhandled error on GET /user/1/feed" in caplog.text


def test_request_threads_come_from_the_settings_and_show_in_metrics(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"request_threads": 3}))) as client:
        text = client.get("/metrics").text
    assert "feedlab_request_threads 3.0" in text
    # /metrics is answered on the event loop, outside those threads
    # (test_request_threads.py sees one busy)
    assert "feedlab_request_threads_busy 0.0" in text


def test_request_threads_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="request_threads"):
        Settings(request_threads=0)
