import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from feeddata.db import make_engine
from feeddata.loading import Chunk, load
from feeddata.stats import DataStats, data_stats
from feedlab.cli import app
from feedlab.settings import get_settings


def _tiny() -> list[Chunk]:
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "gender": [0, 1, 0],
            "age": [20, 30, 40],
            "country": "Russia",
            "city": "Moscow",
            "exp_group": [0, 1, 2],
            "os": "iOS",
            "source": "ads",
        }
    )
    posts = pd.DataFrame(
        {
            "post_id": [10, 11, 12, 13],
            "text": ["a", "b", "c", "d"],
            "topic": ["covid", "sport", "covid", None],
        }
    )
    feed = pd.DataFrame(
        {
            "timestamp": [
                "2021-10-01 09:00:00",
                "2021-10-01 09:00:10",
                "2021-10-02 12:00:00",
                "2021-10-03 08:00:00",
                "2021-10-03 08:00:30",
            ],
            "user_id": [1, 1, 2, 2, 2],
            "post_id": [10, 10, 11, 12, 12],
            "action": ["view", "like", "view", "view", "like"],
            "target": [1, 0, 0, 1, 0],
        }
    )
    return [
        Chunk("user_data", users, "users"),
        Chunk("post_text_df", posts, "posts"),
        Chunk("feed_data", feed, "feed"),
    ]


EXPECTED = DataStats(
    users=3,
    posts=4,
    feed_rows=5,
    views=3,
    likes=2,
    first_event=datetime(2021, 10, 1, 9, 0, 0),
    last_event=datetime(2021, 10, 3, 8, 0, 30),
    active_users=2,
    like_rate=2 / 3,
    target_rate=2 / 3,
    topics=(("covid", 2), ("", 1), ("sport", 1)),
)


def test_stats_of_a_known_dataset(db: Connection) -> None:
    load(db, _tiny())
    assert data_stats(bind=db) == EXPECTED


def test_stats_of_an_empty_database(db: Connection) -> None:
    stats = data_stats(bind=db)
    assert stats.feed_rows == stats.views == stats.likes == stats.active_users == 0
    assert stats.first_event is None
    assert stats.like_rate is None
    assert stats.target_rate is None


def test_like_rate_and_target_rate_differ_when_likes_lack_views(db: Connection) -> None:
    chunks = _tiny()
    feed = chunks[2].rows
    feed.loc[2, "target"] = 1  # a view marked liked whose like is not in the log
    load(db, chunks)
    stats = data_stats(bind=db)
    assert stats.like_rate == pytest.approx(2 / 3)
    assert stats.target_rate == pytest.approx(1.0)


def test_to_json() -> None:
    out = EXPECTED.to_json()
    assert out["first_event"] == "2021-10-01T09:00:00"
    assert out["topics"] == {"covid": 2, "": 1, "sport": 1}
    json.dumps(out)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    load(engine, _tiny())
    engine.dispose()
    yield url
    get_settings.cache_clear()


def test_cli_stats_table(database_url: str) -> None:
    result = CliRunner().invoke(app, ["data", "stats"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    table = dict(line.rsplit("  ", 1) for line in lines)
    table = {label.strip(): value.strip() for label, value in table.items()}
    assert table["likes per view"] == "66.67%"
    assert table["first event"] == "2021-10-01 09:00:00"
    assert table["users with an action"] == "2"
    assert table["topic (none)"] == "1"


def test_cli_stats_json(database_url: str) -> None:
    result = CliRunner().invoke(app, ["data", "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == EXPECTED.to_json()


def test_cli_stats_on_an_empty_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["data", "stats"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "the database has no user_data, post_text_df, feed_data table" in result.stderr
