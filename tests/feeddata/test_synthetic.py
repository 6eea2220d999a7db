import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sqlalchemy import Connection
from typer.testing import CliRunner

from feeddata.db import count_rows, make_engine
from feeddata.loading import Chunk, load
from feeddata.schema import FEED_COLUMNS, POST_COLUMNS, USER_COLUMNS
from feeddata.sources.synthetic import (
    DatabaseNotEmptyError,
    GroundTruth,
    SyntheticConfig,
    generate,
    ground_truth,
    iter_chunks,
    like_probability,
)
from feedlab.cli import app
from feedlab.settings import get_settings

SMALL = SyntheticConfig(users=300, posts=60, days=3, seed=7)


def tables(config: SyntheticConfig, chunk_rows: int = 250_000) -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(config, chunk_rows=chunk_rows):
        parts.setdefault(chunk.table, []).append(chunk.rows)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


@pytest.fixture(scope="module")
def medium() -> dict[str, pd.DataFrame]:
    """About 100k views: enough for rates to settle."""
    return tables(SyntheticConfig(users=3_000, posts=300, days=7, seed=11))


def test_same_seed_same_rows_however_chunked() -> None:
    whole = tables(SMALL)
    chunked = tables(SMALL, chunk_rows=97)
    assert whole.keys() == chunked.keys() == {"user_data", "post_text_df", "feed_data"}
    for name, frame in whole.items():
        pd.testing.assert_frame_equal(frame, chunked[name])


def test_other_seed_other_rows() -> None:
    first = tables(SMALL)
    other = tables(SyntheticConfig(users=300, posts=60, days=3, seed=8))
    assert not first["feed_data"].equals(other["feed_data"])
    assert not first["post_text_df"]["text"].equals(other["post_text_df"]["text"])


def test_tables_have_the_schema_and_the_sizes_asked_for() -> None:
    data = tables(SMALL)
    users, posts, feed = data["user_data"], data["post_text_df"], data["feed_data"]
    assert tuple(users.columns) == USER_COLUMNS
    assert tuple(posts.columns) == POST_COLUMNS
    assert tuple(feed.columns) == FEED_COLUMNS
    assert len(users) == 300
    assert users["user_id"].is_unique
    assert posts["post_id"].tolist() == list(range(1, 61))
    assert posts["topic"].value_counts().to_dict() == SMALL.topic_counts()
    assert set(users["gender"]) <= {0, 1}
    assert set(users["exp_group"]) <= set(range(5))
    assert users["age"].between(14, 90).all()
    assert set(users["os"]) <= {"iOS", "Android"}
    assert set(users["source"]) <= {"ads", "organic"}
    assert set(feed["action"]) == {"view", "like"}
    assert feed["timestamp"].dtype == "datetime64[us]"
    assert feed["timestamp"].min() >= pd.Timestamp("2021-10-01")
    # a like may come a few minutes after the last view of the last day
    assert feed["timestamp"].max() < pd.Timestamp("2021-10-04 00:30")
    assert feed["user_id"].isin(users["user_id"]).all()
    assert feed["post_id"].isin(posts["post_id"]).all()


def test_every_like_follows_its_view_with_target_1(medium: dict[str, pd.DataFrame]) -> None:
    feed = medium["feed_data"]
    likes = feed[feed["action"] == "like"]
    targets = feed[(feed["action"] == "view") & (feed["target"] == 1)]
    assert len(likes) == len(targets)
    assert not likes.duplicated(["user_id", "post_id"]).any()  # a post is liked once
    pairs = likes.merge(targets, on=["user_id", "post_id"], suffixes=("_like", "_view"))
    assert len(pairs) == len(likes)
    delay = (pairs["timestamp_like"] - pairs["timestamp_view"]).dt.total_seconds()
    assert delay.between(1, 900).all()
    assert (feed.loc[feed["action"] == "like", "target"] == 0).all()


def test_about_a_tenth_of_views_are_liked(medium: dict[str, pd.DataFrame]) -> None:
    feed = medium["feed_data"]
    views = int((feed["action"] == "view").sum())
    assert views > 80_000
    assert 0.09 <= (len(feed) - views) / views <= 0.12


def test_users_come_and_go_by_the_hour(medium: dict[str, pd.DataFrame]) -> None:
    views = medium["feed_data"].query("action == 'view'")
    per_user = views.groupby("user_id").size()
    assert per_user.max() > 10 * per_user.median()  # heavy users exist
    by_hour = views["timestamp"].dt.hour.value_counts()
    assert by_hour.max() > 5 * by_hour.min()  # nights are quiet


def test_the_old_feed_comes_in_sessions_and_favours_popular_posts(
    medium: dict[str, pd.DataFrame],
) -> None:
    feed = medium["feed_data"]
    views = feed[feed["action"] == "view"].sort_values(["user_id", "timestamp"], kind="stable")
    gap = views.groupby("user_id")["timestamp"].diff().dt.total_seconds().dropna()
    assert gap.median() < 60  # views of a session are seconds apart
    assert (gap <= 600).mean() > 0.8
    per_post = views["post_id"].value_counts()
    assert per_post.head(len(per_post) // 20).sum() > 0.15 * len(views)  # 5 % of posts
    day = views["timestamp"].dt.day
    first, last = (set(views.loc[day == d, "post_id"].value_counts().index[:10]) for d in (1, 7))
    assert 0 < len(first & last) < 10  # the popular set drifts
    likes = feed.loc[feed["action"] == "like", ["user_id", "post_id", "timestamp"]]
    seen = views.merge(likes, on=["user_id", "post_id"], suffixes=("", "_liked"))
    assert (seen["timestamp"] > seen["timestamp_liked"]).sum() < 0.02 * len(views)


def test_topic_can_be_read_from_the_text() -> None:
    posts = tables(SyntheticConfig(users=10, posts=700, days=1, seed=3))["post_text_df"]
    train, test = train_test_split(posts, test_size=0.3, random_state=0, stratify=posts["topic"])
    vectorizer = TfidfVectorizer(min_df=2)
    model = LogisticRegression(max_iter=2_000)
    model.fit(vectorizer.fit_transform(train["text"]), train["topic"])
    accuracy = (model.predict(vectorizer.transform(test["text"])) == test["topic"]).mean()
    majority = test["topic"].value_counts(normalize=True).max()
    assert majority < 0.5 < 0.9 < accuracy
    lengths = (posts["text"].str.count(" ") + 1).groupby(posts["topic"]).median()
    assert lengths["covid"] < 60 < lengths["movie"] < lengths["politics"]


def test_ground_truth_round_trip_and_like_probability(tmp_path: Path) -> None:
    truth = ground_truth(SMALL)
    loaded = GroundTruth.load(truth.save(tmp_path / "truth"))
    assert loaded.topics == truth.topics
    assert loaded.intercept == truth.intercept
    assert loaded.config == SMALL.to_dict()
    rng = np.random.default_rng(0)
    users = rng.choice(truth.user_ids, 1_000)
    posts = rng.choice(truth.post_ids, 1_000)
    times = np.datetime64("2021-10-01") + rng.integers(0, 86_400, 1_000).astype("timedelta64[s]")
    p = like_probability(truth, users, posts, times)
    assert p.shape == (1_000,)
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_array_equal(p, like_probability(loaded, users, posts, times))
    seconds = times.astype("datetime64[s]").astype(np.int64)
    np.testing.assert_allclose(p, like_probability(truth, users, posts, seconds))
    np.testing.assert_allclose(p, like_probability(truth, users, posts, pd.Series(times)))
    one = like_probability(truth, users[0], truth.post_ids, dt.datetime(2021, 10, 1, 20))
    assert one.shape == (len(truth.post_ids),)
    with pytest.raises(ValueError, match="user_ids: 1 is not in the ground truth"):
        like_probability(truth, [1], posts[:1], times[:1])


def test_ground_truth_decides_the_likes(medium: dict[str, pd.DataFrame]) -> None:
    truth = ground_truth(SyntheticConfig(users=3_000, posts=300, days=7, seed=11))
    views = medium["feed_data"].query("action == 'view'")
    p = like_probability(truth, views["user_id"], views["post_id"], views["timestamp"])
    liked = views["target"].to_numpy() == 1
    assert abs(p.mean() - liked.mean()) < 0.01
    assert p[liked].mean() > 1.5 * p[~liked].mean()


def test_tastes_are_personal() -> None:
    """Each user's own best posts beat the posts that are best on average."""
    truth = ground_truth(SyntheticConfig(users=500, posts=300, days=1, seed=5))
    p = np.stack([like_probability(truth, u, truth.post_ids, 0) for u in truth.user_ids])
    best_on_average = np.argsort(-p.mean(axis=0))[:5]
    own_best = -np.sort(-p, axis=1)[:, :5]
    assert own_best.mean() > 1.5 * p[:, best_on_average].mean()
    # profiles carry signal: older users care more for politics than younger ones
    politics = truth.user_topic_affinity[:, truth.topics.index("politics")]
    users = tables(SyntheticConfig(users=500, posts=300, days=1, seed=5))["user_data"]
    assert np.corrcoef(users["age"], politics)[0, 1] > 0.1


def test_config_sizes_and_errors() -> None:
    course = SyntheticConfig.course()
    assert (course.users, course.posts, course.days) == (163_205, 7_023, 89)
    assert course.topic_counts()["movie"] == 3_000
    assert course.topic_counts()["tech"] == 401
    assert course.end == dt.date(2021, 12, 29)
    demo = SyntheticConfig.demo(seed=1)
    assert sum(demo.topic_counts().values()) == demo.posts == 1_000
    assert demo.seed == 1
    assert SyntheticConfig.from_dict(demo.to_dict()) == demo
    with pytest.raises(ValueError, match="users must be a positive integer"):
        SyntheticConfig.demo(users=0)
    with pytest.raises(ValueError, match="unknown SyntheticConfig field"):
        SyntheticConfig.from_dict({**demo.to_dict(), "colour": "red"})


def test_generate_writes_tables_and_truth(db: Connection, tmp_path: Path) -> None:
    report = generate(db, SMALL, truth_dir=tmp_path / "truth", progress=False)
    assert report.rows["user_data"] == count_rows(db, "user_data") == 300
    assert report.rows["post_text_df"] == count_rows(db, "post_text_df") == 60
    assert report.rows["feed_data"] == count_rows(db, "feed_data") == report.views + report.likes
    assert report.rows["feed_data"] == len(tables(SMALL)["feed_data"])
    assert GroundTruth.load(report.truth_dir).config == SMALL.to_dict()


def test_generate_refuses_a_database_with_rows(db: Connection, tmp_path: Path) -> None:
    users = tables(SMALL)["user_data"].head(1)
    load(db, [Chunk("user_data", users, "one user")])
    with pytest.raises(DatabaseNotEmptyError, match=r"user_data has 1 rows.*fresh database"):
        generate(db, SMALL, truth_dir=tmp_path / "truth", progress=False)
    assert count_rows(db, "user_data") == 1
    assert count_rows(db, "feed_data") == 0
    assert not (tmp_path / "truth").exists()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    monkeypatch.setenv("FEEDLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_generates_then_refuses_to_overwrite(cli_env: str, tmp_path: Path) -> None:
    args = ["data", "generate", "--users", "200", "--posts", "30", "--days", "2", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "user_data 200" in result.stdout
    assert "ground truth saved" in result.stdout
    assert (tmp_path / "artifacts" / "synthetic_truth" / "ground_truth.npz").is_file()
    engine = make_engine(cli_env)
    try:
        assert count_rows(engine, "post_text_df") == 30
    finally:
        engine.dispose()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert "not empty" in again.stderr
    assert "fresh database" in again.stderr
    assert "Traceback" not in again.output


def test_cli_names_a_bad_option(cli_env: str) -> None:
    result = CliRunner().invoke(app, ["data", "generate", "--scale", "huge"])
    assert result.exit_code == 2
    assert "--scale" in result.output
