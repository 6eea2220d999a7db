"""Exposures survive database outages and shutdowns: real uvicorn processes on the real
PostgreSQL server, made unreachable through a TCP proxy the test cuts and restores."""

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from feeddata.db import make_engine
from feeddata.schema import exposures
from tests.api.experiment_setup import (
    DURING,
    database_with_users,
    save_arm_bundles,
    wait_for,
    write_experiments,
)
from tests.api.server import BIN, REPO, _wait_healthy, feedlab_env, free_port
from tests.conftest import POSTGRES_URL
from tests.proxy import TcpProxy, proxy_to

USERS = 50
# uvicorn shuts down gracefully, then re-raises the signal (older versions exit with 0)
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


@pytest.fixture
def pg_url(throwaway_postgres_url: str) -> str:
    return database_with_users(throwaway_postgres_url, USERS)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = make_url(POSTGRES_URL)
    with proxy_to(server.host or "127.0.0.1", server.port or 5432) as forwarder:
        yield forwarder


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


@contextmanager
def service(
    database_url: str, tmp_path: Path, log_name: str, **exposure: str
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """One uvicorn worker serving the experiment; stopped with SIGTERM at the end unless
    the test stopped it."""
    artifacts = tmp_path / "artifacts"
    if not (artifacts / "random").is_dir():
        save_arm_bundles(artifacts)
    env = feedlab_env(database_url, artifacts)
    env["FEEDLAB_EXPERIMENTS"] = str(write_experiments(tmp_path / "experiments.toml"))
    env["FEEDLAB_EXPOSURE_SPILL_DIR"] = str(tmp_path / "spill")
    env.update({f"FEEDLAB_EXPOSURE_{k.upper()}": v for k, v in exposure.items()})
    port = free_port()
    command = [str(BIN / "python"), "-m", "uvicorn", "api.main:create_app", "--factory"]
    log = tmp_path / log_name
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=REPO, stdout=out, stderr=out
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            _wait_healthy(http, process, log, 120)
            yield process, http
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def recommend(http: httpx.Client, user: int) -> str:
    response = http.get("/post/recommendations/", params={"id": user, "time": DURING, "limit": 3})
    assert response.status_code == 200, response.text
    request_id: str = response.headers["X-Request-Id"]
    return request_id


def metrics(http: httpx.Client) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if not sample.labels:
                values[sample.name] = sample.value
    return values


def stored_ids(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(select(exposures.c.request_id)).scalars())
    engine.dispose()
    return ids


def test_an_outage_loses_no_exposure(pg_url: str, proxy: TcpProxy, tmp_path: Path) -> None:
    fast = {"memory_limit": "100", "linger_s": "0.05", "max_backoff_s": "0.3"}
    sent: list[str] = []
    with service(through(proxy, pg_url), tmp_path, "outage.log", **fast) as (_, http):
        sent += [recommend(http, 1 + i % USERS) for i in range(30)]
        wait_for(lambda: metrics(http)["feedlab_exposures_written_total"] == 30)

        proxy.cut()
        sent += [recommend(http, 1 + i % USERS) for i in range(400)]  # all succeed
        wait_for(lambda: metrics(http)["feedlab_exposure_database_up"] == 0)
        # the writer moves what waits in memory to the spill file within linger_s, so a
        # process killed now would lose nothing
        wait_for(lambda: metrics(http)["feedlab_exposures_spilled_total"] == 400)
        during = metrics(http)
        assert during["feedlab_exposures_buffered"] == 0
        assert http.get("/health").status_code == 503
        assert len(stored_ids(pg_url)) == 30

        proxy.restore()
        wait_for(lambda: metrics(http)["feedlab_exposures_written_total"] == 430)
        after = metrics(http)
    assert after["feedlab_exposures_buffered"] == 0
    assert after["feedlab_exposures_spill_pending"] == 0
    assert after["feedlab_exposures_dropped_total"] == 0
    stored = stored_ids(pg_url)
    assert len(stored) == len(sent) == 430
    assert set(stored) == set(sent)
    print(f"outage: {len(sent)} responses, {len(stored)} exposure rows, 400 spilled and replayed")


def test_sigterm_writes_every_buffered_exposure(
    pg_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    # Batches never fill and the writer lingers for a minute: only shutdown writes them.
    lazy = {"batch_size": "100000", "linger_s": "60"}
    with service(through(proxy, pg_url), tmp_path, "sigterm.log", **lazy) as (process, http):
        sent = [recommend(http, 1 + i % USERS) for i in range(250)]
        assert metrics(http)["feedlab_exposures_buffered"] == 250
        assert stored_ids(pg_url) == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in STOPPED_BY_SIGTERM
    assert sorted(stored_ids(pg_url)) == sorted(sent)
    assert "exposure log closed: 250 written" in (tmp_path / "sigterm.log").read_text()


def test_sigterm_during_an_outage_spills_and_the_next_start_replays(
    pg_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    settings = {"close_timeout_s": "1", "max_backoff_s": "0.2", "linger_s": "0.05"}
    with service(through(proxy, pg_url), tmp_path, "first.log", **settings) as (process, http):
        proxy.cut()
        sent = [recommend(http, 1 + i % USERS) for i in range(120)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in STOPPED_BY_SIGTERM
    # spilled while the database was down, so nothing was left to spill at shutdown
    assert "0 written, 120 left in spill files" in (tmp_path / "first.log").read_text()
    assert list((tmp_path / "spill").iterdir())  # a spill file (and maybe one queued)
    proxy.restore()
    assert stored_ids(pg_url) == []
    with service(through(proxy, pg_url), tmp_path, "second.log", **settings) as (_, http):
        wait_for(lambda: metrics(http)["feedlab_exposures_replayed_total"] == 120)
    assert sorted(stored_ids(pg_url)) == sorted(sent)
    assert not list((tmp_path / "spill").iterdir())


def test_two_processes_assign_identically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    database_with_users(url, 300)
    arms = []
    for seed in ("1", "2"):
        os.environ["PYTHONHASHSEED"] = seed  # read by feedlab_env's copy of the environment
        try:
            with service(url, tmp_path, f"worker{seed}.log") as (_, http):
                arms.append(
                    [
                        http.get("/post/recommendations/", params={"id": u, "time": DURING}).json()[
                            "exp_group"
                        ]
                        for u in range(1, 301)
                    ]
                )
        finally:
            del os.environ["PYTHONHASHSEED"]
    assert arms[0] == arms[1]
    assert 120 < arms[0].count("test") < 180
