"""An experiment between the popularity and random baselines over real bundles, and a data
set with more users than the tiny one, for tests of assignment through the service."""

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from feeddata.db import make_engine
from feeddata.schema import user_data
from tests.api import tiny_data
from tests.experiment.bundles import save_bundle

NAME = "pop-vs-random"
SALT = "feed-ab-2026"
DURING = "2021-12-31T12:00:00"  # a request time inside the experiment


def write_experiments(
    path: Path,
    *,
    start: str = "2021-12-30T00:00:00Z",
    coverage: float = 100,
    forced_test: tuple[int, ...] = (),
) -> Path:
    """An experiments file: control serves popularity, test serves random, 50/50."""
    path.write_text(
        f"""
[[experiments]]
name = "{NAME}"
salt = "{SALT}"
start = {start}
coverage = {coverage}

[[experiments.arms]]
name = "control"
weight = 50
recommender = "popular"

[[experiments.arms]]
name = "test"
weight = 50
recommender = "random"

[experiments.forced]
test = {list(forced_test)}
"""
    )
    return path


def save_arm_bundles(artifacts: Path) -> None:
    save_bundle(artifacts, "popular")
    save_bundle(artifacts, "random")


def fill_with_users(engine: Engine, users: int) -> None:
    """The tiny data set plus users 5..``users`` without any actions."""
    tiny_data.fill(engine)
    profile = {"gender": 0, "age": 20, "country": "x", "city": "x", "exp_group": 0}
    extra = [{"user_id": u, **profile, "os": "x", "source": "x"} for u in range(5, users + 1)]
    with engine.begin() as conn:
        conn.execute(user_data.insert(), extra)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def database_with_users(url: str, users: int) -> str:
    """``url`` after :func:`fill_with_users` on it (for a fixture of an empty database)."""
    engine = make_engine(url)
    fill_with_users(engine, users)
    engine.dispose()
    return url
