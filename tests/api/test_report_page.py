"""The experiment report served by the API: its formats, bad parameters and the cache,
in-process on SQLite and PostgreSQL; then the page of a real server in headless Chromium."""

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine

from analysis.synthetic_logs import synthetic_logs
from api.main import create_app
from feeddata.db import make_engine
from feeddata.exposures import Exposure, write_exposures
from feeddata.schema import feed_data
from feedlab.settings import Settings
from tests.api import tiny_data
from tests.api.experiment_setup import NAME, save_arm_bundles, write_experiments
from tests.api.server import BIN, feedlab_env, free_port, running

# Far above the tiny data set's ids; the service reads likes only at start, so these
# users and posts never reach its memory.
USER_OFFSET = 100_000
TOKEN = "5be0c2f4a91d4e7f8c3b6a2d0e9f1c47"  # random, for these tests only
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PLOT_BLUE, PLOT_ORANGE = (0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)  # analysis.plots.COLORS
VERDICT_BACKGROUND = (0xF3, 0xF6, 0xFB)  # analysis.render.STYLE, .verdict


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC).replace(tzinfo=None)


def experiment_logs(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weeks of an experiment: 2,400 users (enough for a verdict), 6,000 exposures."""
    views, likes = synthetic_logs(users=2400, exposures=6000, likes=7000, lift=0.2, seed=seed)
    views["user_id"] += USER_OFFSET
    likes["user_id"] += USER_OFFSET
    return views, likes


def store_logs(engine: Engine, views: pd.DataFrame, likes: pd.DataFrame, tag: str = "") -> None:
    """The logs as the service stores them: exposures of the experiment, likes in feed_data."""
    batch = [
        Exposure(
            request_id=f"report-{tag}{i}",
            experiment=NAME,
            arm=str(row["exp_group"]),
            bucket=0,
            forced=False,
            user_id=int(row["user_id"]),
            request_time=_time(row["timestamp"]),
            served_at=_time(row["timestamp"]),
            recommender="popular",
            model_version="1",
            post_ids=tuple(int(p) for p in str(row["recommendations"]).strip("[]").split()),
        )
        for i, row in enumerate(views.to_dict("records"))
    ]
    write_exposures(bind=engine, batch=batch)
    rows = [
        {
            "timestamp": _time(row["timestamp"]),
            "user_id": int(row["user_id"]),
            "post_id": int(row["post_id"]),
            "action": "like",
            "target": 0,
        }
        for row in likes.to_dict("records")
    ]
    with engine.begin() as conn:
        conn.execute(feed_data.insert(), rows)


@pytest.fixture
def report_settings(database_url: str, tmp_path: Path) -> Settings:
    artifacts = tmp_path / "artifacts"
    save_arm_bundles(artifacts)
    return Settings(
        database_url=database_url,
        artifacts=artifacts,
        experiments=write_experiments(tmp_path / "experiments.toml"),
        admin_token=SecretStr(TOKEN),
    )


@pytest.fixture
def report_client(report_settings: Settings) -> Iterator[TestClient]:
    """An admin's client of the service whose database holds the experiment's logs."""
    with TestClient(create_app(report_settings), headers=ADMIN) as client:
        engine = make_engine(report_settings.database_url)
        store_logs(engine, *experiment_logs())
        engine.dispose()
        yield client


def report(client: TestClient, **params: str | int | float) -> dict:
    response = client.get(f"/experiments/{NAME}/report", params={"format": "json", **params})
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_the_report_in_every_format(report_client: TestClient) -> None:
    body = report(report_client)
    assert body["inputs"]["experiment"] == NAME
    assert body["inputs"]["exposures"] == 6000
    assert (body["inputs"]["k"], body["inputs"]["window_s"], body["inputs"]["alpha"]) == (
        5,
        3600,
        0.05,
    )
    assert body["inputs"]["weights"] == [50.0, 50.0]  # the experiment file's
    assert body["health"]["passed"]
    verdict = body["verdict"]["text"]
    assert verdict.startswith("test raised hitrate@5") or verdict.startswith("test lowered")

    page = report_client.get(f"/experiments/{NAME}/report")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f'id="verdict"><strong>{verdict}.</strong>' in page.text
    assert page.text.count("<svg") >= 3

    markdown = report_client.get(f"/experiments/{NAME}/report", params={"format": "md"})
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert markdown.text.startswith(f"# A/B report {NAME}: ")
    assert f"**{verdict}.**" in markdown.text


def test_parameters_reach_the_analysis(report_client: TestClient) -> None:
    body = report(report_client, window=600, k=2, alpha=0.01)
    assert (body["inputs"]["k"], body["inputs"]["window_s"], body["inputs"]["alpha"]) == (
        2,
        600,
        0.01,
    )
    assert body["metrics"][0]["label"] == "hitrate@2"
    default = report(report_client)
    assert body["metrics"][0]["arms"] != default["metrics"][0]["arms"]


def test_a_report_is_kept_for_a_minute_per_parameters(
    report_client: TestClient, report_settings: Settings
) -> None:
    first = report(report_client)
    views, likes = experiment_logs(seed=4)
    engine = make_engine(report_settings.database_url)
    store_logs(engine, views.assign(user_id=views["user_id"] + 10_000), likes, tag="more-")
    engine.dispose()
    assert report(report_client) == first  # the kept report
    assert report(report_client, k=4)["inputs"]["exposures"] == 12_000  # computed now


@pytest.fixture
def bare_client(report_settings: Settings) -> Iterator[TestClient]:
    """An admin's client of the service before any exposure."""
    with TestClient(create_app(report_settings), headers=ADMIN) as client:
        yield client


def test_an_unknown_experiment_is_404_naming_it(bare_client: TestClient) -> None:
    response = bare_client.get("/experiments/nope/report")
    assert response.status_code == 404
    assert response.json() == {"detail": f"experiment 'nope' not found; configured: {NAME}"}


BAD_PARAMETERS: list[dict[str, str | int | float]] = [
    {"format": "pdf"},
    {"window": -1},
    {"window": 10**12},
    {"k": 0},
    {"k": "five"},
    {"alpha": 0.9},
    {"alpha": "nan"},
]


def test_bad_parameters_are_422_naming_them(bare_client: TestClient) -> None:
    for params in BAD_PARAMETERS:
        response = bare_client.get(f"/experiments/{NAME}/report", params=params)
        assert response.status_code == 422, (params, response.text)
        assert [issue["loc"] for issue in response.json()["detail"]] == [["query", *params]]


def test_an_experiment_without_exposures_says_why(bare_client: TestClient) -> None:
    body = report(bare_client)
    assert body["verdict"]["decision"] == "no verdict"
    assert body["inputs"]["exposures"] == 0


# --- the page in a browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    command = [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


@contextmanager
def admin_gateway(service: str) -> Iterator[str]:
    """A gateway in front of ``service`` that adds the admin token to every GET, as a
    reverse proxy would for signed-in staff: a browser started from the command line
    cannot send an Authorization header of its own. Yields the gateway's URL."""

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            upstream = httpx.get(service + self.path, headers=ADMIN, timeout=120)
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def log_message(self, format: str, *args: object) -> None:
            pass  # pytest shows the server's own log on failure

    gateway = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{gateway.server_address[1]}"
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join()


@pytest.fixture
def served_report(tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """A real server (``feedlab serve``) over SQLite with the experiment's logs, behind
    an admin gateway; the page's URL and the report's JSON."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(url)
    tiny_data.fill(engine)
    artifacts = tmp_path / "artifacts"
    save_arm_bundles(artifacts)
    env = feedlab_env(url, artifacts)
    env["FEEDLAB_EXPERIMENTS"] = str(write_experiments(tmp_path / "experiments.toml"))
    env["FEEDLAB_ADMIN_TOKEN"] = TOKEN
    port = free_port()
    command = [str(BIN / "feedlab"), "serve", "--port", str(port)]
    with running(command, env=env, port=port, log=tmp_path / "server.log") as server:
        store_logs(engine, *experiment_logs())
        engine.dispose()
        path = f"/experiments/{NAME}/report"
        assert server.http.get(path).status_code == 401  # the page is admin only
        body = server.http.get(path, params={"format": "json"}, headers=ADMIN).json()
        with admin_gateway(f"http://127.0.0.1:{port}") as gateway:
            yield gateway + path, body


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)",
)
def test_the_page_shows_the_verdict_and_the_plots_in_chromium(
    served_report: tuple[str, dict], tmp_path: Path
) -> None:
    url, body = served_report
    dom = chromium(tmp_path, "--dump-dom", url).stdout
    verdict = re.search(r'<p class="verdict [^"]*" id="verdict"><strong>(.*?)</strong>', dom)
    assert verdict is not None, dom[:2000]
    assert verdict.group(1) == f"{body['verdict']['text']}."
    plots = re.search(r'<div id="plots">(.*?)</div>', dom, re.DOTALL)
    assert plots is not None
    svgs = re.findall(r"<svg .*?</svg>", plots.group(1), re.DOTALL)
    assert len(svgs) >= 3  # per-arm values, effect by day, likes per user
    assert all("<rect" in svg or "<circle" in svg or "<line" in svg for svg in svgs)
    assert (
        json.loads(re.findall(r'id="report-data">(.*?)</script>', dom)[0])["verdict"]
        == (body["verdict"])
    )

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", url)
    assert shot.stat().st_size > 50_000  # a blank page of this size compresses to a few kB
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(int(c) for c in p) for p in np.unique(pixels, axis=0)}
    assert len(colours) > 50  # text, tables and plots, not one colour
    # painted, not only in the DOM: the verdict's box and both arms' plot colours
    for colour in (VERDICT_BACKGROUND, PLOT_BLUE, PLOT_ORANGE):
        assert colour in colours, f"no pixel of colour {colour}"
