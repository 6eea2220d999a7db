"""Concurrent transactions on one SQLite file, in real threads: a read-then-write transaction
waits for another writer instead of failing, and readers never wait."""

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from feeddata.db import make_engine, transaction
from feeddata.exposures import Exposure, create_feedlab_tables, write_exposures
from feeddata.queries import get_user, record_action
from tests.api import tiny_data

T0 = datetime(2021, 10, 2, 8)
HOLD_S = 1.0  # at most this long; then the writer commits whether or not it was waited for


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    tiny_data.fill(engine)
    create_feedlab_tables(engine)
    yield engine
    engine.dispose()


def while_another_writer_holds_the_lock(engine: Engine, work: Callable[[], object]) -> bool:
    """Run ``work`` while the exposure writer's transaction, in another thread and
    connection, holds SQLite's write lock; True when ``work`` finished before that commit.

    The writer commits when ``work`` is done or after HOLD_S, so ``work`` makes its first
    read while the lock is held unless the machine stalls it for all of HOLD_S.
    """
    held, done = threading.Event(), threading.Event()
    done_while_held: list[bool] = []
    errors: list[BaseException] = []

    def exposure_writer() -> None:
        shown = Exposure("r1", None, "control", None, False, 1, T0, T0, "popular", "v1", (10,))
        try:
            with transaction(engine) as conn:
                write_exposures(bind=conn, batch=[shown])
                held.set()
                done_while_held.append(done.wait(HOLD_S))
        except BaseException as error:  # reported in the test's thread
            errors.append(error)
            held.set()

    thread = threading.Thread(target=exposure_writer)
    thread.start()
    try:
        assert held.wait(30)
        work()
    finally:
        done.set()
        thread.join()
    assert not errors
    return done_while_held == [True]


def test_a_read_then_write_transaction_waits_for_the_other_writer(engine: Engine) -> None:
    # record_action reads (the user and post exist) before it writes: begun as a plain
    # deferred BEGIN, its write would fail at once with "database is locked"
    recorded: list[object] = []

    def like() -> None:
        recorded.append(record_action(bind=engine, user_id=4, post_id=13, action="like", time=T0))

    finished_while_held = while_another_writer_holds_the_lock(engine, like)
    assert recorded
    assert not finished_while_held  # it waited for the commit


def test_readers_do_not_wait_for_a_writer(engine: Engine) -> None:
    users: list[dict[str, object]] = []
    assert while_another_writer_holds_the_lock(
        engine, lambda: users.append(get_user(bind=engine, user_id=4))
    )
    assert users[0]["city"] == "Minsk"
