import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from feeddata.interactions import Interactions
from feeddata.sources import movielens
from feedlab.cli import app
from feedlab.settings import get_settings
from recommenders.base import TrainingData
from recommenders.baselines import PopularityRecommender
from recommenders.catboost_model import CatBoostParams, CatBoostRecommender, training_rows
from recommenders.evaluation import evaluate, split_time_at_quantile
from recommenders.history import LikeHistory
from recommenders.snapshots import build_tables
from tests.recommenders.test_features import DAY, START, small_feed

FAST = {"iterations": 40, "depth": 4, "features": {"text_dims": 4}}


def _fitted(**params: object) -> tuple[CatBoostRecommender, LikeHistory]:
    events, posts, users = small_feed()
    model = CatBoostRecommender(**{**FAST, **params})
    model.fit(TrainingData.cut(events, posts, users, START + 10 * DAY))
    return model, LikeHistory(posts.index.to_numpy(), events.likes())


def test_bundle_round_trip_with_every_table(tmp_path: Path) -> None:
    model, history = _fitted()
    loaded = CatBoostRecommender.load(model.save(tmp_path / "catboost"))
    assert loaded.meta == model.meta
    assert loaded.config == model.config
    for user in (100, 150, 219, 5000):
        t = START + 10 * DAY + user
        assert np.array_equal(model._scores(user, t, history), loaded._scores(user, t, history))
    assert {"model.cbm", "meta.json"} <= {p.name for p in (tmp_path / "catboost").iterdir()}


def test_metadata_records_rows_range_and_validation_metrics() -> None:
    model, _ = _fitted()
    assert model.meta is not None
    rows, metrics = model.meta.rows, model.meta.metrics
    assert rows["first_time"] >= START
    assert rows["train_rows"] > rows["valid_rows"] > 0
    assert 0.5 < metrics["valid_auc"] <= 1.0
    assert model.meta.trained_until == START + 10 * DAY


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="depht"):
        CatBoostRecommender(depht=3)


def test_training_rows_follow_the_sampling_rules() -> None:
    events, posts, users = small_feed()
    params = CatBoostParams(view_negatives=1.0, random_negatives=2.0, seed=3)
    data = TrainingData.cut(events, posts, users, START + 10 * DAY)
    tables = build_tables(data.interactions, posts, users, params.features, until=data.until)
    rows, counts = training_rows(data, tables, params)
    assert counts["negative_views"] == counts["positive_views"]
    assert np.all(np.diff(rows.time) >= 0)
    assert rows.time.max() < data.until
    liked = data.interactions.likes()
    # a label is 1 exactly when the user liked the post within the hour after the row's time
    for i in np.random.default_rng(0).choice(len(rows), 200, replace=False):
        user = tables.user_ids[rows.user[i]]
        post = tables.post_ids[rows.post[i]]
        times = liked.timestamp[(liked.user_id == user) & (liked.post_id == post)]
        assert not np.any(times < rows.time[i])  # never a post liked before
        assert rows.label[i] == np.any(times <= rows.time[i] + 3600)


def test_candidate_stage_scores_only_the_most_liked_posts() -> None:
    model, history = _fitted(candidates=10)
    t = START + 11 * DAY
    scores = model._scores(150, t, history)
    top = np.argsort(-history.like_counts_before(t), kind="stable")[:10]
    rest = np.setdiff1d(np.arange(len(scores)), top)
    assert scores[top].min() > scores[rest].max()  # every candidate above every other post
    model.config = model.config.model_copy(update={"candidates": 0})
    np.testing.assert_allclose(model._scores(150, t, history)[top], scores[top], rtol=1e-6)
    assert len(model.recommend(150, t, 5, history)) == 5


def test_another_catalogue_is_refused() -> None:
    model, _ = _fitted()
    other = LikeHistory(np.arange(1, 30), Interactions.from_arrays([], [], [], []))
    with pytest.raises(ValueError, match="retrain"):
        model.recommend(100, START + 11 * DAY, 5, other)


@pytest.mark.slow
def test_catboost_beats_popularity_on_movielens(movielens_dir: Path) -> None:
    posts = movielens.read_posts(movielens_dir / "u.item", movielens_dir / "u.genre")
    users = movielens.read_users(movielens_dir / "u.user").set_index("user_id")
    feed = movielens.read_feed(movielens_dir / "u.data")
    events = Interactions.from_arrays(
        feed.user_id, feed.post_id, feed.timestamp, (feed.action == "like").to_numpy()
    )
    split = split_time_at_quantile(events, 0.8)
    catboost = CatBoostRecommender(
        iterations=60,
        depth=5,
        learning_rate=0.3,
        random_negatives=4,
        max_rows=80_000,
        features={"text_dims": 4},
    )
    report = evaluate(
        events,
        posts.set_index("post_id"),
        users,
        {"popular": PopularityRecommender(), "catboost": catboost},
        split_time=split,
        k=5,
        max_requests=400,
        progress=False,
    )
    popular = report.recommenders["popular"].hitrate
    assert popular == pytest.approx(0.30, abs=0.02)
    assert report.recommenders["catboost"].hitrate >= 1.25 * popular


def test_profiles_may_lack_columns() -> None:
    events, posts, _ = small_feed()
    model = CatBoostRecommender(**FAST).fit(
        TrainingData.cut(events, posts, pd.DataFrame(index=[100, 101]), START + 10 * DAY)
    )
    history = LikeHistory(posts.index.to_numpy(), events.likes())
    assert len(model.recommend(100, START + 11 * DAY, 5, history)) == 5


@pytest.fixture
def movielens_db(
    tmp_path: Path, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'feedlab.db'}")
    monkeypatch.setenv("FEEDLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["data", "import-movielens", str(movielens_dir)])
    assert result.exit_code == 0, result.output
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def test_train_command_writes_a_bundle_the_service_can_load(movielens_db: Path) -> None:
    params = {"iterations": 20, "depth": 4, "max_rows": 20_000, "features": {"text_dims": 4}}
    result = CliRunner().invoke(
        app, ["train", "catboost", "--until", "1997-12-01", "--params", json.dumps(params)]
    )
    assert result.exit_code == 0, result.output
    model = CatBoostRecommender.load(movielens_db / "catboost")
    assert model.meta is not None
    assert model.meta.trained_until == 880_934_400  # 1997-12-01 UTC
    assert model.meta.params["iterations"] == 20
    assert model.meta.rows["views"] > 10_000
    assert "valid_auc" in model.meta.metrics


def test_train_command_names_bad_parameters(movielens_db: Path) -> None:
    result = CliRunner().invoke(app, ["train", "catboost", "--params", '{"depht": 3}'])
    assert result.exit_code == 2
    assert "--params" in result.output
    assert "depht" in result.output
