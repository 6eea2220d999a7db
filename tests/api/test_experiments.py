"""The service with an experiment: routing by arm, exposures for every response, the
experiment endpoints and /metrics, on SQLite and PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from api.main import create_app
from experiment.assignment import bucket
from experiment.config import ExperimentConfigError
from experiment.exposure_log import WriterConfig
from feeddata.db import make_engine
from feeddata.exposures import count_exposures, shown_posts
from feeddata.schema import FEEDLAB_TABLES, TABLES, exposures
from feedlab.settings import Settings
from tests.api.experiment_setup import (
    DURING,
    NAME,
    SALT,
    fill_with_users,
    save_arm_bundles,
    wait_for,
    write_experiments,
)

USERS = 60


def expected_arm(user: int) -> str:
    return "control" if bucket(SALT, user) < 5000 else "test"


@pytest.fixture
def exp_settings(database_url: str, tmp_path: Path) -> Settings:
    engine = make_engine(database_url)
    fill_with_users(engine, USERS)
    engine.dispose()
    artifacts = tmp_path / "artifacts"
    save_arm_bundles(artifacts)
    return Settings(
        database_url=database_url,
        artifacts=artifacts,
        experiments=write_experiments(tmp_path / "experiments.toml", forced_test=(2,)),
    )


WRITER = WriterConfig(linger_s=0.02)


@pytest.fixture
def exp_client(exp_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(exp_settings, WRITER)) as client:
        yield client


def recommend(client: TestClient, user: int, time: str = DURING) -> tuple[str, list[int], str]:
    response = client.get("/post/recommendations/", params={"id": user, "time": time, "limit": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    return (
        body["exp_group"],
        [p["id"] for p in body["recommendations"]],
        response.headers["X-Request-Id"],
    )


def stored_exposures(settings: Settings) -> dict[str, dict[str, object]]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = {r.request_id: dict(r._mapping) for r in conn.execute(select(exposures))}
    for request_id, row in rows.items():
        row["shown"] = shown_posts(bind=engine, request_id=request_id)
    engine.dispose()
    return rows


def test_every_response_is_served_by_its_arm_and_logged(exp_settings: Settings) -> None:
    responses = {}
    with TestClient(create_app(exp_settings, WRITER)) as client:
        for user in range(1, USERS + 1):
            responses[user] = recommend(client, user)
        outside = recommend(client, 5, time="2021-12-29T23:59:59")
    stored = stored_exposures(exp_settings)
    assert len(stored) == USERS + 1
    for user, (arm, shown, request_id) in responses.items():
        row = stored[request_id]
        assert arm == ("test" if user == 2 else expected_arm(user))
        assert (row["experiment"], row["arm"], row["user_id"], row["shown"]) == (
            NAME,
            arm,
            user,
            shown,
        )
        assert row["bucket"] == bucket(SALT, user)
        assert row["forced"] == (user == 2)
        assert row["recommender"] == {"control": "popular", "test": "random"}[arm]
        assert str(row["model_version"]).startswith(f"{row['recommender']}-")
        assert str(row["request_time"]) == "2021-12-31 12:00:00"
    arm, shown, request_id = outside
    assert arm == "control"
    assert (stored[request_id]["experiment"], stored[request_id]["bucket"]) == (None, None)
    assert {r["arm"] for r in stored.values()} == {"control", "test"}


def test_the_experiment_endpoints(exp_client: TestClient, exp_settings: Settings) -> None:
    [listed] = exp_client.get("/experiments").json()
    assert listed["name"] == NAME
    assert listed["running"] is True
    assert [(a["name"], a["buckets"], a["recommender"]) for a in listed["arms"]] == [
        ("control", [0, 4999], "popular"),
        ("test", [5000, 9999], "random"),
    ]
    for user in range(1, 11):
        recommend(exp_client, user)
    engine = make_engine(exp_settings.database_url)
    wait_for(lambda: count_exposures(bind=engine) == 10)
    engine.dispose()
    detail = exp_client.get(f"/experiments/{NAME}").json()
    arms = {u: ("test" if u == 2 else expected_arm(u)) for u in range(1, 11)}
    assert detail["counts"] == {
        arm: {"exposures": n, "users": n}
        for arm in ("control", "test")
        for n in [sum(a == arm for a in arms.values())]
    }
    missing = exp_client.get("/experiments/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"experiment 'nope' not found; configured: {NAME}"


def test_metrics(exp_client: TestClient) -> None:
    arms = [recommend(exp_client, user)[0] for user in range(1, 21)]
    text = exp_client.get("/metrics").text
    for arm in ("control", "test"):
        line = f'feedlab_recommendation_requests_total{{arm="{arm}",experiment="{NAME}"}}'
        assert f"{line} {float(arms.count(arm))}" in text
        assert f'feedlab_recommendation_latency_seconds_count{{arm="{arm}"}}' in text
    assert "feedlab_exposures_logged_total 20.0" in text
    for name in ("written_total", "spilled_total", "dropped_total", "buffered", "spill_pending"):
        assert f"feedlab_exposures_{name} " in text
    assert "feedlab_exposure_database_up 1.0" in text


def test_health_lists_every_recommender(exp_client: TestClient) -> None:
    served = exp_client.get("/health").json()["recommenders"]
    assert [(r["experiment"], r["arm"], r["name"]) for r in served] == [
        (None, "control", "popular"),
        (NAME, "control", "popular"),
        (NAME, "test", "random"),
    ]


def test_without_an_experiment_file_everyone_is_control_and_still_logged(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings, WRITER)) as client:
        for user in range(1, 5):
            assert recommend(client, user)[0] == "control"
        assert client.get("/experiments").json() == []
    rows = stored_exposures(settings).values()
    assert len(rows) == 4
    assert {(r["experiment"], r["arm"], r["bucket"]) for r in rows} == {(None, "control", None)}


def test_a_bad_experiment_file_stops_the_service(exp_settings: Settings, tmp_path: Path) -> None:
    assert exp_settings.experiments is not None
    text = exp_settings.experiments.read_text().replace('"random"', '"neural-x"')
    exp_settings.experiments.write_text(text)
    with (
        pytest.raises(ExperimentConfigError, match="arm 'test': unknown recommender 'neural-x'"),
        TestClient(create_app(exp_settings, WRITER)),
    ):
        pass


def test_serving_a_course_database_adds_only_feedlabs_tables(exp_settings: Settings) -> None:
    engine = make_engine(exp_settings.database_url)
    with engine.begin() as conn:
        for table in FEEDLAB_TABLES.values():
            table.drop(conn)
    assert set(inspect(engine).get_table_names()) == set(TABLES)
    with TestClient(create_app(exp_settings, WRITER)) as client:
        recommend(client, 1)
    assert set(inspect(engine).get_table_names()) == set(TABLES) | set(FEEDLAB_TABLES)
    assert count_exposures(bind=engine) == 1
    engine.dispose()
