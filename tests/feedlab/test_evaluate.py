import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedlab.cli import app
from feedlab.settings import get_settings


@pytest.fixture
def movielens_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, movielens_dir: Path
) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ml.db'}"
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["data", "import-movielens", str(movielens_dir)])
    assert result.exit_code == 0, result.output
    yield url
    get_settings.cache_clear()


def test_evaluate_compares_each_recommender_with_the_first(
    movielens_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    args = ["evaluate", "--split-quantile", "0.8", "--recommenders", "popular,random"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "random vs popular: -0." in result.stdout
    assert "McNemar p" in result.stdout
    report = json.loads(out.read_text())
    versus = report["comparisons"]["random"]
    hits = {name: r["hits"] for name, r in report["recommenders"].items()}
    assert versus["reference"] == "popular"
    assert versus["only_this"] - versus["only_reference"] == hits["random"] - hits["popular"]
    assert versus["ci95"][1] < 0
