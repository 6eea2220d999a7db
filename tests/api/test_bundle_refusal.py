"""`feedlab serve` refuses to start on a damaged, missing or foreign model bundle, with a
message naming the file: the shipped experiment (CatBoost control, neural test) over bundles
trained on a tiny synthetic network, one file damaged per test."""

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from experiment.config import load_experiments
from experiment.routing import Router
from feeddata.db import make_engine
from feedlab.cli.train import build_recommender, read_training_data
from recommenders.base import BUNDLE_SCHEMA_VERSION, TrainingData
from recommenders.baselines import PopularityRecommender
from tests.api.server import BIN, REPO, feedlab_env, free_port

pytest.importorskip("feeddata.sources.synthetic")

EXPERIMENTS = REPO / "experiments.toml"
TINY_PARAMS = {
    "catboost": {"iterations": 10, "depth": 3, "features": {"text_dims": 4}},
    "neural": {"encoder": "hashing", "dims": 8, "history": 4, "max_epochs": 1, "threads": 1},
}


def tiny_network(folder: Path, posts: int) -> tuple[str, TrainingData]:
    """A tiny synthetic network in SQLite: its URL and everything to train on."""
    from feeddata.sources.synthetic import SyntheticConfig, generate

    url = f"sqlite:///{folder / 'feed.db'}"
    engine = make_engine(url)
    config = SyntheticConfig.demo(users=150, posts=posts, days=2, seed=5)
    generate(engine, config, truth_dir=folder / "truth", progress=False)
    data = read_training_data(engine)
    engine.dispose()
    return url, data


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny network and the experiment's bundles trained on it."""
    folder = tmp_path_factory.mktemp("bundles")
    url, data = tiny_network(folder, posts=30)
    artifacts = folder / "artifacts"
    for name, params in TINY_PARAMS.items():
        build_recommender(name, params).fit(data).save(artifacts / name)
    PopularityRecommender().fit(data).save(artifacts / "popular")
    # intact, they load: each test's refusal is its damaged file's doing
    default = PopularityRecommender.load(artifacts / "popular")
    Router.load(load_experiments(EXPERIMENTS), artifacts, default)
    return url, artifacts


def serve(url: str, artifacts: Path, *args: str) -> tuple[int, str]:
    """Run `feedlab serve` until it exits (two minutes at most): exit code and output."""
    env = feedlab_env(url, artifacts) | {
        "FEEDLAB_EXPERIMENTS": str(EXPERIMENTS),
        "FEEDLAB_LOG_FORMAT": "text",
    }
    command = [str(BIN / "feedlab"), "serve", "--port", str(free_port()), *args]
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def set_schema_version(path: Path) -> None:
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(meta | {"schema_version": BUNDLE_SCHEMA_VERSION + 1}))


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # case: (file, what is done to it, what the message says about it)
    "truncated CatBoost model": ("catboost/model.cbm", truncate, "is damaged (CatBoostError"),
    "truncated neural weights": ("neural/weights.npz", truncate, "is damaged (BadZipFile"),
    "truncated feature table": ("catboost/features/user_views.npy", truncate, "is damaged"),
    "bad meta.json": ("neural/meta.json", truncate, "is not a valid bundle description"),
    "missing model file": ("neural/weights.npz", Path.unlink, "No such file or directory"),
    "another format version": (
        "catboost/meta.json",
        set_schema_version,
        f"has bundle schema version {BUNDLE_SCHEMA_VERSION + 1}; this feedlab reads version "
        f"{BUNDLE_SCHEMA_VERSION}",
    ),
    "bad popularity bundle": ("popular/meta.json", truncate, "is not a valid bundle description"),
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_bundle_stops_the_start_naming_the_file(
    case: str, workers: int, served: tuple[str, Path], tmp_path: Path
) -> None:
    url, intact = served
    name, damage, says = DAMAGE[case]
    artifacts = shutil.copytree(intact, tmp_path / "artifacts")
    damage(artifacts / name)
    started = time.monotonic()
    code, output = serve(url, artifacts, "--workers", str(workers))
    assert code == 3  # as uvicorn's: the application failed to start
    if workers > 1:  # refused before any worker starts, not after their health check
        assert time.monotonic() - started < 30
        assert "serving on" not in output
    assert "cannot start: " in output
    assert f"{artifacts / name}" in output
    assert says in output
    if case.startswith("truncated"):
        assert "retrain it with `feedlab train" in output


def test_a_missing_bundle_stops_the_start_naming_its_folder(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, intact = served
    artifacts = shutil.copytree(intact, tmp_path / "artifacts")
    shutil.rmtree(artifacts / "neural")
    code, output = serve(url, artifacts)
    assert code == 3
    assert f"arm 'test': no 'neural' bundle at {artifacts / 'neural'} (meta.json is missing)" in (
        output
    )


def test_a_bundle_of_another_network_stops_the_start(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, intact = served
    artifacts = shutil.copytree(intact, tmp_path / "artifacts")
    _, other = tiny_network(tmp_path, posts=20)
    build_recommender("neural", TINY_PARAMS["neural"]).fit(other).save(artifacts / "neural")
    code, output = serve(url, artifacts)
    assert code == 3
    assert "arm 'test': the 'neural' bundle neural-" in output
    assert "does not fit this database: the catalogue has 30 posts but the model was " in output
