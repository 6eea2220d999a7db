import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from typer.testing import CliRunner

from feeddata.db import count_rows, make_engine
from feeddata.interactions import read_interactions, read_posts, read_users
from feeddata.loading import DataImportError
from feeddata.schema import feed_data
from feeddata.sources.movielens import load_movielens, read_feed
from feeddata.sources.movielens import read_posts as read_items
from feedlab.cli import app
from feedlab.settings import get_settings


def test_movielens_counts_read_back(db: Connection, movielens_dir: Path) -> None:
    report = load_movielens(db, movielens_dir)

    assert report.rows == {"user_data": 943, "post_text_df": 1682, "feed_data": 155_375}
    assert count_rows(db, "user_data") == 943
    assert count_rows(db, "post_text_df") == 1682
    by_action: dict[str, int] = dict(
        db.execute(select(feed_data.c.action, func.count()).group_by(feed_data.c.action)).all()
    )
    assert by_action == {"view": 100_000, "like": 55_375}
    liked_views = db.execute(
        select(func.count()).where(feed_data.c.action == "view", feed_data.c.target == 1)
    ).scalar_one()
    assert liked_views == 55_375


def test_movielens_mapping(db: Connection, movielens_dir: Path) -> None:
    load_movielens(db, movielens_dir)

    posts = read_posts(db)
    assert posts.loc[1, "text"] == "Toy Story (1995). Animation, Children's, Comedy"
    assert posts.loc[1, "topic"] == "Animation"
    assert posts.loc[2, "topic"] == "Action"  # GoldenEye: Action, Adventure, Thriller
    users = read_users(db)
    # 1|24|M|technician|85711 and 2|53|F|other|94043
    assert users.loc[1].to_dict() == {
        "gender": 1,
        "age": 24,
        "country": "United States",
        "city": "857",
        "exp_group": 1,
        "os": "unknown",
        "source": "technician",
    }
    assert users.loc[2, "gender"] == 0
    assert (users["exp_group"] == users.index % 5).all()
    assert set(users["country"]) == {"United States", "Canada"}
    # 196|242|3|881250949: a view without a like; every like has its view at the same time
    events = read_interactions(db, progress=False)
    likes = events.likes()
    assert len(likes) == 55_375
    assert likes.target.sum() == 0
    views = events.views()
    liked = views.select(views.target == 1)
    assert sorted(zip(liked.user_id, liked.post_id, liked.timestamp, strict=True)) == sorted(
        zip(likes.user_id, likes.post_id, likes.timestamp, strict=True)
    )


def test_latin1_titles_are_decoded(movielens_dir: Path) -> None:
    posts = read_items(movielens_dir / "u.item", movielens_dir / "u.genre")
    accented = posts[posts["text"].str.contains("é")]
    assert len(accented) > 0  # e.g. "Belle de jour (1967)"-style French titles


def test_views_keep_the_file_order_then_likes(movielens_dir: Path) -> None:
    feed = read_feed(movielens_dir / "u.data")
    # 196|242|3|881250949 is line 1: a view without a like
    assert feed.iloc[0].to_dict() == {
        "timestamp": 881250949,
        "user_id": 196,
        "post_id": 242,
        "action": "view",
        "target": 0,
    }
    assert (feed["action"].iloc[:100_000] == "view").all()
    assert (feed["action"].iloc[100_000:] == "like").all()


@pytest.fixture
def broken_dir(tmp_path: Path, movielens_dir: Path) -> Path:
    folder = tmp_path / "ml-100k"
    shutil.copytree(movielens_dir, folder)
    return folder


def test_missing_file_names_it_and_stores_nothing(db: Connection, broken_dir: Path) -> None:
    (broken_dir / "u.item").unlink()
    with pytest.raises(DataImportError, match=r"u\.item: file not found"):
        load_movielens(db, broken_dir)
    assert count_rows(db, "user_data") == 0


def test_bad_rating_line_names_row_and_column(db: Connection, broken_dir: Path) -> None:
    lines = (broken_dir / "u.data").read_text().splitlines()
    lines[2] = "22\t377\tx\t878887116"
    (broken_dir / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataImportError, match=r"u\.data, row 3, column 'rating': expected"):
        load_movielens(db, broken_dir)
    assert count_rows(db, "user_data") == 0
    assert count_rows(db, "feed_data") == 0


def test_rating_of_unknown_movie_names_its_line(db: Connection, broken_dir: Path) -> None:
    lines = (broken_dir / "u.data").read_text().splitlines()
    lines[4] = "166\t9999\t1\t886397596"
    (broken_dir / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataImportError, match=r"u\.data, row 5, column 'post_id': post_id 9999"):
        load_movielens(db, broken_dir)
    assert count_rows(db, "post_text_df") == 0


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_imports_movielens(database_url: str, movielens_dir: Path) -> None:
    result = CliRunner().invoke(app, ["data", "import-movielens", str(movielens_dir)])

    assert result.exit_code == 0, result.output
    assert "feed_data 155,375" in result.stdout
    engine = make_engine(database_url)
    try:
        assert count_rows(engine, "post_text_df") == 1682
    finally:
        engine.dispose()


def test_cli_missing_folder_exits_2(database_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "import-movielens", str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert "u.user: file not found" in result.stderr
    assert "Traceback" not in result.output
