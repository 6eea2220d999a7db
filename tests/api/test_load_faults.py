"""Faults under concurrent load: `feedlab serve --workers 2` on the real PostgreSQL server,
reached through a TCP proxy the test cuts and restores (the server itself is shared and
never restarted here; `python -m bench.bench_load --faults` restarts it for real), driven
by the load benchmark's clients. Exposures are counted by the request ids answered."""

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.load_client import Outcome, RequestPlan, drive
from bench.load_server import Service, ServiceFiles
from experiment.config import load_experiments
from feeddata.db import make_engine
from feeddata.schema import exposures
from tests.api.experiment_setup import database_with_users, save_arm_bundles, write_experiments
from tests.api.server import feedlab_env
from tests.conftest import POSTGRES_URL
from tests.proxy import TcpProxy, proxy_to

USERS = 50
CLIENTS = 8
EXPERIMENT_DAY = 1_640_822_400  # 2021-12-30T00:00:00Z, the experiment's start


@pytest.fixture
def pg_url(throwaway_postgres_url: str) -> str:
    return database_with_users(throwaway_postgres_url, USERS)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = make_url(POSTGRES_URL)
    with proxy_to(server.host or "127.0.0.1", server.port or 5432) as forwarder:
        yield forwarder


@pytest.fixture
def files(pg_url: str, proxy: TcpProxy, tmp_path: Path) -> ServiceFiles:
    """The popularity-vs-random experiment, served through the proxy."""
    save_arm_bundles(tmp_path / "artifacts")
    through = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    return ServiceFiles(
        through.render_as_string(False),
        tmp_path / "artifacts",
        write_experiments(tmp_path / "experiments.toml"),
        tmp_path / "spill",
    )


@contextmanager
def serving(files: ServiceFiles, log: Path, **exposure: str) -> Iterator[Service]:
    """Two workers; stopped with SIGTERM at the end unless the test stopped them."""
    env = feedlab_env(files.url, files.artifacts)
    env.update({f"FEEDLAB_EXPOSURE_{k.upper()}": v for k, v in exposure.items()})
    service = Service(files, log, workers=2, env=env)
    service.start(timeout=120)
    try:
        yield service
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop()


def plan(files: ServiceFiles) -> RequestPlan:
    [experiment] = load_experiments(files.experiments).experiments
    users = np.arange(1, USERS + 1)
    # the tiny catalogue: a user who liked posts may have only two left to be shown
    return RequestPlan(users, EXPERIMENT_DAY, EXPERIMENT_DAY + 2 * 86_400, experiment, limit=2)


def load_with(
    service: Service,
    files: ServiceFiles,
    seconds: float,
    at: float,
    fault: Callable[[asyncio.Event], Awaitable[None]],
) -> list[Outcome]:
    """``CLIENTS`` clients for ``seconds``, with ``fault`` injected after ``at`` seconds."""

    async def run() -> list[Outcome]:
        stop = asyncio.Event()

        async def inject() -> None:
            await asyncio.sleep(at)
            await fault(stop)

        injected = asyncio.create_task(inject())
        run = await drive(
            service.base_url, plan(files), clients=CLIENTS, seconds=seconds, stop=stop
        )
        await injected
        return run.outcomes

    return asyncio.run(run())


def stored(url: str, outcomes: list[Outcome]) -> int:
    ids = [o.request_id for o in outcomes if o.request_id is not None]
    engine = make_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).where(exposures.c.request_id.in_(ids)))
        n = int(count.scalar_one())
    engine.dispose()
    return n


def test_an_outage_under_load_fails_no_request_and_loses_no_exposure(
    files: ServiceFiles, proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    # little memory, so the outage fills it and spills to the file as well
    fast = {"memory_limit": "50", "linger_s": "0.05", "max_backoff_s": "0.2"}
    with serving(files, tmp_path / "outage.log", **fast) as service:

        async def outage(stop: asyncio.Event) -> None:
            await asyncio.to_thread(proxy.cut)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(proxy.restore)

        outcomes = load_with(service, files, seconds=4, at=1, fault=outage)
        assert service.stop() == 0
    assert [o.error for o in outcomes if not o.ok] == []
    assert stored(pg_url, outcomes) == len(outcomes) > 100
    closed = service.closed_logs()
    assert [dropped for _, _, dropped in closed] == [0, 0]
    assert service.log_count("exposure writes failing") >= 1
    assert not list(files.spill_dir.glob("*"))


def test_sigterm_under_load_answers_every_request_in_flight_and_writes_every_exposure(
    files: ServiceFiles, pg_url: str, tmp_path: Path
) -> None:
    # batches never fill and the writers linger a minute: only the shutdown writes them
    lazy = {"batch_size": "100000", "linger_s": "60"}
    with serving(files, tmp_path / "sigterm.log", **lazy) as service:
        signalled: list[float] = []

        async def sigterm(stop: asyncio.Event) -> None:
            signalled.append(time.perf_counter())
            service.send(signal.SIGTERM)
            stop.set()  # no new requests; the ones in flight must be answered

        outcomes = load_with(service, files, seconds=10, at=1.5, fault=sigterm)
        assert service.stop() == 0
    in_flight = [o for o in outcomes if o.started < signalled[0] < o.started + o.seconds]
    assert in_flight
    assert all(o.ok for o in in_flight)
    assert all(o.ok for o in outcomes)
    assert stored(pg_url, outcomes) == len(outcomes)
    assert sum(written for written, _, _ in service.closed_logs()) == len(outcomes)


def test_sigkill_during_an_outage_loses_only_the_last_linger_of_exposures(
    files: ServiceFiles, proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    # memory could hold every exposure of the run; the writer spills them every linger_s
    settings = {"memory_limit": "50000", "linger_s": "0.05", "max_backoff_s": "0.2"}
    with serving(files, tmp_path / "killed.log", **settings) as service:

        async def kill(stop: asyncio.Event) -> None:
            stop.set()
            await asyncio.to_thread(service.kill)

        proxy.cut()
        outcomes = load_with(service, files, seconds=10, at=2, fault=kill)
    answered = [o for o in outcomes if o.ok]
    assert len(answered) > 200
    spilled = [p for p in files.spill_dir.iterdir() if p.suffix in (".jsonl", ".replay")]
    assert spilled  # the rest waits on disk for the next start
    proxy.restore()
    assert stored(pg_url, answered) == 0
    with serving(files, tmp_path / "restarted.log") as restarted:
        assert restarted.log_count("replaying") >= 1
    lost = len(answered) - stored(pg_url, answered)
    print(f"SIGKILL during an outage: {lost} of {len(answered)} answered exposures lost")
    # about linger_s (0.05 s) of traffic; before, everything since the outage began
    assert 0 <= lost <= 0.05 * len(answered)
    assert not list(files.spill_dir.glob("*"))
    print(f"SIGKILL during an outage: {len(answered)} answered, {lost} lost")
