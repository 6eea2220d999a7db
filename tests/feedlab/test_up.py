"""`feedlab up` as the command a fresh machine runs: it trains the bundles the experiment's
arms need (once), refuses a bad experiment file before any work, and serves the experiment.

Small and fast models through --params-file; `make run` trains with the defaults."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from experiment.config import ExperimentConfig, load_experiments
from feeddata.db import make_engine
from feeddata.queries import all_user_ids
from tests.api.server import BIN, REPO, feedlab_env, free_port, running

FAST = {
    "catboost": {"iterations": 20, "thread_count": 1},
    "neural": {"encoder": "hashing", "dims": 16, "history": 8, "max_epochs": 1, "threads": 1},
}
SHIPPED = REPO / "experiments.toml"
BUNDLES = {"popular": "popular", "catboost": "catboost", "neural": "neural"}  # folder: model
ARMS = {"control": "catboost", "test": "neural"}  # arm: bundle folder, as shipped


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic social network in an SQLite file (the demo's calendar)."""
    from feeddata.sources.synthetic import SyntheticConfig, generate

    path = tmp_path_factory.mktemp("network") / "network.db"
    engine = make_engine(f"sqlite:///{path}")
    config = SyntheticConfig.demo(users=150, posts=60, days=3, seed=1)
    generate(engine, config, truth_dir=path.parent / "truth", progress=False)
    engine.dispose()
    return path


@pytest.fixture
def database(network: Path, tmp_path: Path) -> str:
    path = tmp_path / "feedlab.db"
    shutil.copy(network, path)
    return f"sqlite:///{path}"


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(FAST))
    return path


def up(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "feedlab"), "up", "--prepare-only", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def arm_of(experiment: ExperimentConfig, user_id: int) -> str | None:
    assignment = experiment.assign(user_id)
    return assignment.arm if assignment else None


def meta(artifacts: Path, folder: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((artifacts / folder / "meta.json").read_text())
    return loaded


def test_prepare_only_trains_the_missing_bundles_of_the_experiment_once(
    database: str, params_file: Path, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    env = feedlab_env(database, artifacts) | {"FEEDLAB_EXPERIMENTS": str(SHIPPED)}
    first = up("--params-file", str(params_file), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"experiment file: {SHIPPED} (catboost-vs-neural)" in first.stdout
    for folder, model in BUNDLES.items():
        assert meta(artifacts, folder)["name"] == model
        assert f"{folder}: no bundle at {artifacts / folder}; training" in first.stdout
        assert f"{folder}: saved {meta(artifacts, folder)['version']}" in first.stdout
    assert meta(artifacts, "catboost")["params"]["iterations"] == 20
    assert meta(artifacts, "neural")["params"]["encoder"] == "hashing"
    assert "training neural on " in first.stdout
    assert "[neural] text embeddings of 60 posts (hashing)" in first.stderr  # its progress
    assert "prepared; not serving (--prepare-only)" in first.stdout

    made = {folder: meta(artifacts, folder) for folder in BUNDLES}
    second = up(env=env, cwd=tmp_path)  # default parameters: they would retrain for minutes
    assert second.returncode == 0, second.stdout + second.stderr
    for folder in BUNDLES:
        assert f"{folder}: bundle found at {artifacts / folder}, kept" in second.stdout
        assert meta(artifacts, folder) == made[folder]
    assert "training" not in second.stdout


BAD_WEIGHTS = SHIPPED.read_text().replace("weight = 50", "weight = 60", 1)
UNKNOWN_MODEL = SHIPPED.read_text().replace('recommender = "neural"', 'recommender = "xgb"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BAD_WEIGHTS, "experiment 'catboost-vs-neural': arm weights must sum to 100, got 110"),
        (UNKNOWN_MODEL, "arm 'test': unknown recommender 'xgb'; known: catboost, ease"),
    ],
)
def test_a_bad_experiment_file_stops_up_before_any_work(
    text: str, message: str, tmp_path: Path
) -> None:
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(text)
    database = tmp_path / "empty.db"
    artifacts = tmp_path / "artifacts"
    env = feedlab_env(f"sqlite:///{database}", artifacts)
    result = up("--experiments", str(experiments), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{experiments} needs fixing" in result.stderr
    assert message in result.stderr
    assert not database.exists()  # no demo data generated
    assert not artifacts.exists()  # nothing trained


def test_bad_parameters_stop_up_before_any_work(database: str, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"catboost": {"iterations": 20, "depht": 3}}))
    artifacts = tmp_path / "artifacts"
    env = feedlab_env(database, artifacts)
    result = up("--experiments", str(SHIPPED), "--params-file", str(params), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "--params-file, 'catboost'" in result.stderr
    assert "depht" in result.stderr
    params.write_text(json.dumps({"catbost": {"iterations": 20}}))
    result = up("--experiments", str(SHIPPED), "--params-file", str(params), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "--params-file names ['catbost']" in result.stderr
    assert not artifacts.exists()


def test_up_serves_the_shipped_experiment(database: str, params_file: Path, tmp_path: Path) -> None:
    """What `make run` does, on small data and fast models: from the repository, with no
    FEEDLAB_EXPERIMENTS, `feedlab up` serves experiments.toml."""
    [experiment] = load_experiments(SHIPPED).experiments
    engine = make_engine(database)
    users = [int(u) for u in all_user_ids(bind=engine)]
    engine.dispose()
    first_of = {arm: next(u for u in users if arm_of(experiment, u) == arm) for arm in ARMS}
    artifacts = tmp_path / "artifacts"
    port = free_port()
    log = tmp_path / "up.log"
    command = [str(BIN / "feedlab"), "up", "--port", str(port), "--params-file", str(params_file)]
    env = feedlab_env(database, artifacts)
    with running(command, env=env, port=port, log=log, timeout_s=240) as server:
        http = server.http
        recommenders = http.get("/health").json()["recommenders"]
        served = {(m["experiment"], m["arm"]): m["version"] for m in recommenders}
        for arm, folder in ARMS.items():
            assert served[(experiment.name, arm)] == meta(artifacts, folder)["version"]
        for arm, user in first_of.items():
            params: dict[str, str | int] = {"id": user, "time": "2021-12-31T12:00:00", "limit": 5}
            body = http.get("/post/recommendations/", params=params).json()
            assert body["exp_group"] == arm
            assert len({p["id"] for p in body["recommendations"]}) == 5
    assert "experiment file: experiments.toml (catboost-vs-neural)" in log.read_text()
