"""The service as a real process: uvicorn with the app factory, `feedlab serve`, `feedlab up`."""

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from feeddata.db import make_engine
from tests.api import tiny_data
from tests.api.server import BIN, REPO, feedlab_env, free_port, running


@pytest.fixture
def tiny_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(url)
    tiny_data.fill(engine)
    engine.dispose()
    return url


def test_uvicorn_app_factory(tiny_sqlite: str, tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "python"), "-m", "uvicorn", "api.main:create_app", "--factory"]
    command += ["--port", str(port)]
    env = feedlab_env(tiny_sqlite, tmp_path / "artifacts")
    with running(command, env=env, port=port, log=tmp_path / "server.log") as server:
        http = server.http
        params: dict[str, str | int] = {"id": 4, "time": "2021-10-01T13:00:00", "limit": 3}
        body = http.get("/post/recommendations/", params=params).json()
        assert body["exp_group"] == "control"
        assert [p["id"] for p in body["recommendations"]] == [13, 11, 12]
        like = {"user_id": 4, "post_id": 13, "action": "like", "time": "2021-10-01T12:59:00"}
        assert http.post("/feed/actions", json=like).status_code == 201
        body = http.get("/post/recommendations/", params=params).json()
        assert [p["id"] for p in body["recommendations"]] == [11, 12, 10]
        assert http.get("/user/12345").json() == {"detail": "user 12345 not found"}
        assert http.get("/post/recommendations/", params={"id": 1, "limit": 0}).status_code == 422


def test_feedlab_serve_with_two_workers(tiny_sqlite: str, tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "feedlab"), "serve", "--port", str(port), "--workers", "2"]
    env = feedlab_env(tiny_sqlite, tmp_path / "artifacts")
    log = tmp_path / "server.log"
    with running(command, env=env, port=port, log=log) as server:
        http = server.http
        for _ in range(20):
            response = http.get(
                "/post/recommendations/", params={"id": 1, "time": "2021-10-01T13:00"}
            )
            assert [p["id"] for p in response.json()["recommendations"]] == [12, 10, 14]
        assert http.get("/post/11").json()["topic"] == "covid"
    assert f"serving on http://127.0.0.1:{port} (2 workers)" in log.read_text()


def feedlab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "feedlab"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_feedlab_serve_refuses_a_database_without_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something_else (x INTEGER)")
    result = feedlab("serve", env=feedlab_env(f"sqlite:///{path}", tmp_path))
    assert result.returncode == 2
    assert "no table(s) user_data, post_text_df, feed_data" in result.stderr
    assert "feedlab up" in result.stderr
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["something_else"]  # nothing created


def test_feedlab_serve_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = feedlab("serve", env=feedlab_env(f"sqlite:///{path}", tmp_path))
    assert result.returncode == 2
    assert f"no SQLite database at {path}" in result.stderr
    assert not path.exists()


def test_feedlab_up_trains_the_missing_bundle_then_serves(tiny_sqlite: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    port = free_port()
    log = tmp_path / "up.log"
    command = [str(BIN / "feedlab"), "up", "--no-experiment", "--port", str(port)]
    # --no-experiment wins over the variable, for the service too
    env = feedlab_env(tiny_sqlite, artifacts) | {
        "FEEDLAB_EXPERIMENTS": str(REPO / "experiments.toml")
    }
    with running(command, env=env, port=port, log=log) as server:
        http = server.http
        [served] = http.get("/health").json()["recommenders"]
    meta = json.loads((artifacts / "popular" / "meta.json").read_text())
    assert served["version"] == meta["version"]
    output = log.read_text()
    assert "data: user_data 4, post_text_df 5, feed_data 16 rows" in output
    assert "experiment: none; every user gets the popularity ranking" in output
    assert "popular: no bundle at" in output
    assert f"popular: saved {meta['version']}" in output

    port = free_port()
    command = [str(BIN / "feedlab"), "up", "--no-experiment", "--port", str(port)]
    with running(command, env=feedlab_env(tiny_sqlite, artifacts), port=port, log=log) as server:
        http = server.http
        assert http.get("/health").json()["recommenders"] == [served]
    assert "popular: bundle found at" in log.read_text()


@pytest.mark.slow
def test_feedlab_up_generates_demo_data_into_an_empty_database(tmp_path: Path) -> None:
    pytest.importorskip("feeddata.sources.synthetic")
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()
    log = tmp_path / "up.log"
    command = [str(BIN / "feedlab"), "up", "--no-experiment", "--port", str(port)]
    with running(
        command, env=feedlab_env(url, artifacts), port=port, log=log, timeout_s=540
    ) as server:
        http = server.http
        health = http.get("/health").json()
        assert health["posts"] == 1000
        assert health["users"] == 5000
        with sqlite3.connect(tmp_path / "demo.db") as conn:
            [(user_id,)] = conn.execute("SELECT min(user_id) FROM user_data")
            [(first, last)] = conn.execute("SELECT min(timestamp), max(timestamp) FROM feed_data")
        # the 30 days up to the course's last day; the shipped experiment starts after them
        assert first.startswith("2021-11-30")
        assert last.startswith("2021-12-29") or last < "2021-12-30 00:30"
        body = http.get("/post/recommendations/", params={"id": user_id, "limit": 5}).json()
        assert len({p["id"] for p in body["recommendations"]}) == 5
    assert "generating the synthetic demo data set" in log.read_text()
    assert (artifacts / "synthetic_truth").is_dir()
    assert (artifacts / "popular" / "meta.json").is_file()
