"""`feedlab simulate` against a real server: every request is an exposure, every simulated
view and like lands in feed_data once, and the summary counts them per arm."""

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from feeddata.db import make_engine
from feeddata.exposures import count_exposures
from feeddata.schema import feed_data
from tests.api.experiment_setup import save_arm_bundles, wait_for, write_experiments
from tests.api.server import BIN, REPO, feedlab_env, free_port, running

START = "2021-12-30"


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[str, Path]:
    from feeddata.sources.synthetic import SyntheticConfig, generate

    url = f"sqlite:///{tmp_path / 'synthetic.db'}"
    artifacts = tmp_path / "artifacts"
    engine = make_engine(url)
    config = SyntheticConfig.demo(users=150, posts=60, days=3, seed=1)
    generate(engine, config, truth_dir=artifacts / "synthetic_truth", progress=False)
    engine.dispose()
    save_arm_bundles(artifacts)
    return url, artifacts


def action_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(feed_data.c.action, func.count())
            .where(feed_data.c.timestamp >= START)
            .group_by(feed_data.c.action)
        ).all()
    engine.dispose()
    return {action: int(n) for action, n in rows}


def test_a_small_simulation(synthetic: tuple[str, Path], tmp_path: Path) -> None:
    url, artifacts = synthetic
    env = feedlab_env(url, artifacts)
    env["FEEDLAB_EXPERIMENTS"] = str(write_experiments(tmp_path / "experiments.toml"))
    port = free_port()
    command = [str(BIN / "feedlab"), "serve", "--port", str(port)]
    summary_path = tmp_path / "summary.json"
    with running(command, env=env, port=port, log=tmp_path / "server.log"):
        simulate = [
            str(BIN / "feedlab"), "simulate", "--base-url", f"http://127.0.0.1:{port}",
            "--users", "40", "--days", "2", "--start", START, "--requests-per-user-day", "1.5",
            "--effect", "test=3", "--seed", "7", "--concurrency", "4", "--no-progress",
            "--json", str(summary_path),
        ]  # fmt: skip
        result = subprocess.run(
            simulate, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(summary_path.read_text())
        engine = make_engine(url)
        wait_for(lambda: count_exposures(bind=engine) == summary["requests"])
        engine.dispose()
    assert summary["errors"] == 0
    assert summary["requests"] > 60
    arms = summary["arms"]
    assert set(arms) == {"control", "test"}
    assert sum(a["requests"] for a in arms.values()) == summary["requests"]
    assert sum(a["users"] for a in arms.values()) <= 40
    assert action_counts(url) == {
        "view": sum(a["views"] for a in arms.values()),
        "like": sum(a["likes"] for a in arms.values()),
    }
    assert "requests, 0 errors" in result.stdout
    assert f"simulating 2 day(s) from {START}" in result.stdout


def test_simulate_says_when_there_is_no_service(tmp_path: Path) -> None:
    env = feedlab_env(f"sqlite:///{tmp_path / 'none.db'}", tmp_path)
    result = subprocess.run(
        [str(BIN / "feedlab"), "simulate", "--base-url", f"http://127.0.0.1:{free_port()}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--base-url: no service at" in result.stderr
