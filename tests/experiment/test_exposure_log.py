"""The exposure log writes everything, in batches, through database outages and restarts.

PostgreSQL is the real server behind a TCP proxy that the tests cut and restore, so the
database is unreachable for the log only.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.engine import make_url

from experiment.exposure_log import ExposureLog, WriterConfig
from feeddata.db import make_engine
from feeddata.exposures import Exposure, count_exposures, create_feedlab_tables, write_exposures
from feeddata.schema import FEEDLAB_TABLES
from tests.api.experiment_setup import wait_for
from tests.proxy import TcpProxy, proxy_to


def fast(**changes: Any) -> WriterConfig:
    """A writer that lingers and backs off briefly, so tests run in seconds."""
    return WriterConfig(
        **({"linger_s": 0.02, "max_backoff_s": 0.2, "close_timeout_s": 5.0} | changes)
    )


T0 = datetime(2021, 12, 30, 12, 0)


def exposures(n: int, start: int = 0) -> list[Exposure]:
    return [
        Exposure(
            request_id=f"r{i:07d}",
            experiment="e",
            arm="control" if i % 2 else "test",
            bucket=i % 10_000,
            forced=False,
            user_id=200 + i % 50,
            request_time=T0 + timedelta(seconds=i),
            served_at=T0 + timedelta(seconds=i, microseconds=1500),
            recommender="popular",
            model_version="popular-1",
            post_ids=(i % 7 + 1, i % 7 + 2, i % 7 + 3),
        )
        for i in range(start, start + n)
    ]


def writer(engine: Engine) -> Callable[[Sequence[Exposure]], None]:
    return lambda batch: write_exposures(bind=engine, batch=batch)


@pytest.fixture
def pg_url(throwaway_postgres_url: str) -> str:
    engine = make_engine(throwaway_postgres_url)
    create_feedlab_tables(engine)
    with engine.begin() as conn:
        for table in FEEDLAB_TABLES.values():
            conn.execute(delete(table))
    engine.dispose()
    return throwaway_postgres_url


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with proxy_to("127.0.0.1", 5432) as forwarder:
        yield forwarder


@pytest.fixture
def proxied_engine(pg_url: str, proxy: TcpProxy) -> Iterator[Engine]:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    engine = make_engine(url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


@pytest.fixture
def direct_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def test_writes_everything_in_batches_on_sqlite(sqlite_engine: Engine, tmp_path: Path) -> None:
    batches: list[int] = []

    def write(batch: Sequence[Exposure]) -> None:
        batches.append(len(batch))
        write_exposures(bind=sqlite_engine, batch=batch)

    log = ExposureLog(write, spill_dir=tmp_path, config=fast(batch_size=500))
    log.start()
    for exposure in exposures(2_000):
        log.log(exposure)
    assert log.close()
    assert count_exposures(bind=sqlite_engine) == 2_000
    assert sum(batches) == 2_000
    assert max(batches) == 500
    stats = log.stats()
    assert (stats.logged, stats.written, stats.buffered, stats.spilled, stats.dropped) == (
        2_000,
        2_000,
        0,
        0,
        0,
    )


def test_an_outage_loses_nothing(
    proxy: TcpProxy, proxied_engine: Engine, direct_engine: Engine, tmp_path: Path
) -> None:
    config = fast(memory_limit=100, batch_size=50)
    log = ExposureLog(writer(proxied_engine), spill_dir=tmp_path, config=config).start()
    for exposure in exposures(50):
        log.log(exposure)
    wait_for(lambda: log.stats().written == 50)

    proxy.cut()
    for exposure in exposures(500, start=50):
        log.log(exposure)
    # beyond the memory limit, requests spill at once; once a write fails, the writer
    # spills what waits in memory too, so a crash now would lose nothing
    wait_for(lambda: log.stats().spilled == 500)
    during = log.stats()
    assert not during.database_ok
    assert during.write_errors > 0
    assert during.buffered == 0
    assert during.spill_pending == 500
    assert count_exposures(bind=direct_engine) == 50
    log.log(exposures(1, start=550)[0])  # arrives during the backoff
    wait_for(lambda: log.stats().spilled == 501)

    proxy.restore()
    wait_for(lambda: log.stats().written == 551)
    after = log.stats()
    assert (after.buffered, after.spill_pending, after.replayed, after.dropped) == (0, 0, 501, 0)
    assert after.database_ok
    assert log.close()
    assert count_exposures(bind=direct_engine) == 551
    assert not list(tmp_path.iterdir())  # spill files replayed and removed


def test_shutdown_during_an_outage_spills_and_the_next_start_replays(
    proxy: TcpProxy, proxied_engine: Engine, direct_engine: Engine, tmp_path: Path
) -> None:
    config = fast(close_timeout_s=0.5)
    proxy.cut()
    first = ExposureLog(writer(proxied_engine), spill_dir=tmp_path, config=config).start()
    for exposure in exposures(300):
        first.log(exposure)
    assert not first.close()
    assert first.stats().spill_pending == 300
    spilled = [line for f in tmp_path.iterdir() for line in f.read_text().splitlines()]
    assert sorted(json.loads(line)["request_id"] for line in spilled) == [
        e.request_id for e in exposures(300)
    ]

    proxy.restore()
    second = ExposureLog(writer(proxied_engine), spill_dir=tmp_path, config=config).start()
    wait_for(lambda: second.stats().replayed == 300)
    assert second.close()
    assert count_exposures(bind=direct_engine) == 300
    assert not list(tmp_path.iterdir())


def test_a_replay_cut_short_writes_each_exposure_once(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    # A process that died mid-replay leaves lines already written; replaying them again
    # must not duplicate rows.
    write_exposures(bind=sqlite_engine, batch=exposures(40))
    lines = [json.dumps(e.to_json()) for e in exposures(100)]
    (tmp_path / "exposures-99999-deadbeef.replay").write_text(
        "\n".join(lines[:70]) + "\n{not json\n" + "\n".join(lines[70:]) + "\n"
    )
    log = ExposureLog(writer(sqlite_engine), spill_dir=tmp_path, config=fast(batch_size=30))
    log.start()
    wait_for(lambda: log.stats().replayed == 100)
    assert log.close()
    assert count_exposures(bind=sqlite_engine) == 100


def test_beyond_memory_and_spill_limits_exposures_are_dropped_and_counted(
    proxy: TcpProxy, proxied_engine: Engine, tmp_path: Path
) -> None:
    config = fast(memory_limit=10, spill_limit_mb=0.001)  # ~1 kB of spill
    proxy.cut()
    log = ExposureLog(writer(proxied_engine), spill_dir=tmp_path, config=config).start()
    for exposure in exposures(40):
        log.log(exposure)
    stats = log.stats()
    assert stats.buffered == 10
    assert 0 < stats.spilled < 30
    assert stats.spilled + stats.dropped == 30
    proxy.restore()
    assert log.close()


def test_spilling_while_the_writer_replays_and_removes_files_never_fails(tmp_path: Path) -> None:
    # Requests spill (memory full) while the writer rotates, replays and removes spill
    # files: an append must not trip over a file the writer just removed.
    import threading

    from experiment.spill import SpillFiles

    spill = SpillFiles(tmp_path / "spill", limit_bytes=2**30)
    stop, errors = threading.Event(), []

    def requests() -> None:
        try:
            while not stop.is_set():
                spill.append(exposures(1))
        except OSError as error:
            errors.append(error)

    appender = threading.Thread(target=requests)
    appender.start()
    try:
        for _ in range(3000):  # the writer's side
            spill.rotate()
            if spill.has_replay():
                _, lines = spill.read_batch(1_000_000)
                spill.confirm(lines)
            if errors:
                break
    finally:
        stop.set()
        appender.join()
        spill.close()
    assert errors == []
