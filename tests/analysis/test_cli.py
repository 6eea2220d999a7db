"""``feedlab report`` and ``feedlab aa`` from the command line, on files and a database."""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.synthetic_logs import synthetic_logs
from feeddata.db import create_schema, make_engine
from feeddata.schema import feed_data
from feedlab.cli import app
from feedlab.settings import get_settings
from tests.analysis.test_database import EXPERIMENT, store


@pytest.fixture(scope="module")
def log_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("logs")
    views, likes = synthetic_logs(users=1500, exposures=4500, likes=5000, lift=0.2, seed=2)
    views.to_csv(folder / "views.csv", index=False)
    likes.to_csv(folder / "likes.csv", index=False)
    return folder / "views.csv", folder / "likes.csv"


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_report_from_files_in_every_format(log_files, tmp_path: Path):
    views, likes = log_files
    markdown = run("report", "--views", views, "--likes", likes, "--min-users", 100)
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.startswith("# A/B report files ")
    out = tmp_path / "r" / "report.json"
    result = run(
        "report", "--views", views, "--likes", likes, "--format", "json", "--out", out,
        "--window", 1800, "--k", 3, "--alpha", 0.1, "--bootstrap", 100,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    data = json.loads(out.read_text())
    assert (data["inputs"]["window_s"], data["inputs"]["k"], data["inputs"]["alpha"]) == (
        1800,
        3,
        0.1,
    )
    assert data["metrics"][0]["label"] == "hitrate@3"
    assert result.output.splitlines()[0] == data["verdict"]["text"]
    page = tmp_path / "report.html"
    result = run("report", "--views", views, "--likes", likes, "--format", "html", "--out", page)
    assert result.exit_code == 0, result.output
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --experiment NAME, or both --views FILE and --likes FILE"),
        (("--experiment", "x", "--views", "v.csv"), "not both"),
        (("--views", "nope.csv", "--likes", "nope.csv"), "nope.csv: no such file"),
        (("--format", "pdf"), "--format must be one of json, md, html"),
        (("--views", "v.csv", "--likes", "l.csv", "--weights", "control:50"), "arm=weight pairs"),
    ],
)
def test_report_bad_input_exits_2_naming_the_problem(args, message):
    result = run("report", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_report_weights_must_cover_the_arms(log_files):
    views, likes = log_files
    result = run("report", "--views", views, "--likes", likes, "--weights", "a=1,b=1")
    assert result.exit_code == 2
    assert "no weight for arm(s) control, test" in result.output


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'feedlab.db'}"
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(
        f"""
[[experiments]]
name = "{EXPERIMENT}"
salt = "s"
start = 2021-12-30T00:00:00Z

[[experiments.arms]]
name = "control"
weight = 40
recommender = "popular"

[[experiments.arms]]
name = "test"
weight = 60
recommender = "popular"
"""
    )
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    monkeypatch.setenv("FEEDLAB_EXPERIMENTS", str(experiments))
    get_settings.cache_clear()
    engine = make_engine(url)
    create_schema(engine)
    views, likes = synthetic_logs(users=400, exposures=1000, likes=1200, control_share=0.4)
    with engine.begin() as conn:
        store(conn, views, likes)
    engine.dispose()
    yield url
    get_settings.cache_clear()


def test_report_from_the_database_uses_the_configured_weights(database, tmp_path: Path):
    out = tmp_path / "report.json"
    result = run("report", "--experiment", EXPERIMENT, "--format", "json", "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["inputs"]["experiment"] == EXPERIMENT
    assert data["inputs"]["weights"] == [40.0, 60.0]
    assert data["inputs"]["source"].startswith("database sqlite:///")
    assert data["health"]["srm"]["passed"] is True
    unknown = run("report", "--experiment", "nope")
    assert unknown.exit_code == 2
    assert "no experiment named 'nope'" in unknown.output


def test_aa_from_files(log_files, tmp_path: Path):
    views, likes = log_files
    out = tmp_path / "aa.json"
    result = run("aa", "--views", views, "--likes", likes, "--iterations", 20, "--json", out)
    assert result.exit_code == 0, result.output
    assert "false-positive rate should lie in 0.03-0.07" in result.output
    assert "hitrate" in result.output
    data = json.loads(out.read_text())
    assert data["iterations"] == 20
    assert len(data["metrics"]) == 4


def test_aa_on_feed_history(database):
    engine = make_engine(database)
    with engine.begin() as conn:
        conn.execute(
            feed_data.insert(),
            [
                {"user_id": u, "post_id": 1, "action": "view", "target": u % 3 == 0,
                 "timestamp": datetime(2021, 12, 1, u % 24)}
                for u in range(1, 41)
            ],
        )  # fmt: skip
    engine.dispose()
    result = run("aa", "--iterations", 10)
    assert result.exit_code == 0, result.output
    assert "users of feed_data" in result.output
