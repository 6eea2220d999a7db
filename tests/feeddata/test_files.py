from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from feeddata.db import count_rows, make_engine
from feeddata.interactions import read_interactions, read_posts, read_users
from feeddata.loading import DataImportError
from feeddata.sources.files import load_files, read_chunks
from feedlab.cli import app
from feedlab.settings import get_settings

USERS = pd.DataFrame(
    {
        "user_id": [1, 2, 3],
        "gender": [0, 1, 1],
        "age": [20, 31, 42],
        "country": ["Russia", "Ukraine", "Russia"],
        "city": ["Moscow", "Kyiv", "NA"],  # "NA" is a city name, not a missing value
        "exp_group": [0, 3, 4],
        "os": ["iOS", "Android", "iOS"],
        "source": ["ads", "organic", "ads"],
    }
)
POSTS = pd.DataFrame(
    {"post_id": [10, 11, 12], "text": ["about covid", "2021", ""], "topic": ["covid", "", "sport"]}
)
FEED = pd.DataFrame(
    {
        "timestamp": ["2021-10-01 10:00:00", "2021-10-01 10:00:05", "2021-10-02 11:30:00"],
        "user_id": [1, 1, 2],
        "post_id": [10, 10, 11],
        "action": ["view", "like", "view"],
        "target": [1, 0, 0],
    }
)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _counts(db: Connection) -> tuple[int, int, int]:
    return tuple(count_rows(db, t) for t in ("user_data", "post_text_df", "feed_data"))  # type: ignore[return-value]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(db: Connection, tmp_path: Path, suffix: str) -> None:
    feed = FEED.copy()
    if suffix == ".parquet":
        feed["timestamp"] = pd.to_datetime(feed["timestamp"])  # a real timestamp column
    report = load_files(
        db,
        users=_write(USERS, tmp_path / f"users{suffix}"),
        posts=_write(POSTS, tmp_path / f"posts{suffix}"),
        feed=_write(feed, tmp_path / f"feed{suffix}"),
        chunk_rows=2,
    )

    assert report.rows == {"user_data": 3, "post_text_df": 3, "feed_data": 3}
    users = read_users(db)
    assert users.loc[3, "city"] == "NA"
    assert users.loc[2].to_dict() == {
        "gender": 1,
        "age": 31,
        "country": "Ukraine",
        "city": "Kyiv",
        "exp_group": 3,
        "os": "Android",
        "source": "organic",
    }
    posts = read_posts(db)
    assert posts["text"].tolist() == ["about covid", "2021", ""]
    assert posts["topic"].tolist() == ["covid", "", "sport"]
    events = read_interactions(db, progress=False)
    assert events.timestamp.tolist() == [1633082400, 1633082405, 1633174200]
    assert events.is_like.tolist() == [False, True, False]
    assert events.target.tolist() == [1, 0, 0]


def test_text_topic_and_target_may_be_missing(db: Connection, tmp_path: Path) -> None:
    load_files(
        db,
        users=_write(USERS, tmp_path / "users.csv"),
        posts=_write(POSTS[["post_id"]], tmp_path / "posts.csv"),
        feed=_write(FEED.drop(columns="target"), tmp_path / "feed.parquet"),
    )
    posts = read_posts(db)
    assert posts.index.tolist() == [10, 11, 12]
    assert (posts["text"] == "").all()
    assert (posts["topic"] == "").all()
    assert read_interactions(db, progress=False).target.tolist() == [0, 0, 0]


def test_chunks_carry_their_first_data_row(tmp_path: Path) -> None:
    path = _write(USERS, tmp_path / "users.csv")
    chunks = list(read_chunks(path, "user_data", chunk_rows=2))
    assert [(c.first_row, len(c.rows)) for c in chunks] == [(1, 2), (3, 1)]


def _bad_value(table: str, row: int, column: str, value: str | int) -> pd.DataFrame:
    frame = {"user_data": USERS, "post_text_df": POSTS, "feed_data": FEED}[table].copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row - 1, column] = value
    return frame


# (file that gets the bad frame, the frame, the expected message as a regex)
MALFORMED = {
    "bad integer": (
        "users",
        _bad_value("user_data", 3, "age", "forty"),
        r"users\.\w+, row 3, column 'age': expected an integer, got 'forty'",
    ),
    "bad timestamp": (
        "feed",
        _bad_value("feed_data", 2, "timestamp", "yesterday"),
        r"feed\.\w+, row 2, column 'timestamp': expected a date and time",
    ),
    "bad action": (
        "feed",
        _bad_value("feed_data", 3, "action", "share"),
        r"feed\.\w+, row 3, column 'action': action must be one of view, like",
    ),
    "duplicate id": (
        "users",
        _bad_value("user_data", 3, "user_id", 1),
        r"users\.\w+, row 3, column 'user_id': duplicate user_id 1",
    ),
    "unknown user": (
        "feed",
        _bad_value("feed_data", 3, "user_id", 99),
        r"feed\.\w+, row 3, column 'user_id': user_id 99 is not in user_data",
    ),
    "unknown post": (
        "feed",
        _bad_value("feed_data", 2, "post_id", 77),
        r"feed\.\w+, row 2, column 'post_id': post_id 77 is not in post_text_df",
    ),
    "missing column": (
        "posts",
        POSTS.drop(columns="post_id"),
        r"posts\.\w+: missing column\(s\) post_id; post_text_df expects post_id, text, topic",
    ),
    "unknown column": (
        "posts",
        POSTS.rename(columns={"text": "txt"}),
        r"posts\.\w+: unknown column\(s\) txt",
    ),
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_input_names_the_place_and_stores_nothing(
    db: Connection, tmp_path: Path, case: str, suffix: str
) -> None:
    target, bad, message = MALFORMED[case]
    if suffix == ".parquet":  # a Parquet column has one type: write the mixed ones as text
        bad = bad.astype({c: str for c in bad.columns if bad[c].dtype == object})
    files = {"users": USERS, "posts": POSTS, "feed": FEED, target: bad}
    paths = {name: _write(frame, tmp_path / f"{name}{suffix}") for name, frame in files.items()}
    before = _counts(db)

    with pytest.raises(DataImportError, match=message):
        # 2-row chunks: the row numbers must count across chunks
        load_files(db, **paths, chunk_rows=2)
    assert _counts(db) == before


def test_duplicate_of_a_stored_id(db: Connection, tmp_path: Path) -> None:
    load_files(db, users=_write(USERS, tmp_path / "users.csv"))
    again = _write(USERS.iloc[[1]], tmp_path / "again.csv")
    with pytest.raises(DataImportError, match=r"again\.csv, row 1, column 'user_id': duplicate"):
        load_files(db, users=again)
    assert count_rows(db, "user_data") == 3


def test_missing_file(db: Connection, tmp_path: Path) -> None:
    users = _write(USERS, tmp_path / "users.csv")
    with pytest.raises(DataImportError, match=r"nope\.csv: file not found"):
        load_files(db, users=users, feed=tmp_path / "nope.csv")
    assert count_rows(db, "user_data") == 0


def test_unknown_extension(db: Connection, tmp_path: Path) -> None:
    path = _write(USERS, tmp_path / "users.xlsx")
    with pytest.raises(DataImportError, match=r"users\.xlsx: unknown file type; expected one of"):
        load_files(db, users=path)


def test_not_utf8_says_to_convert(db: Connection, tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    rows = ["post_id,text,topic"] + [f"{i},post {i},tech" for i in range(1, 6)]
    rows.append("6,Les Misérables,movie")
    path.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(DataImportError, match=r"posts\.csv: not valid UTF-8 on line 7.*UTF-8"):
        load_files(db, posts=path, chunk_rows=2)
    assert count_rows(db, "post_text_df") == 0


def test_empty_and_corrupt_files(db: Connection, tmp_path: Path) -> None:
    empty = tmp_path / "users.csv"
    empty.write_text("")
    with pytest.raises(DataImportError, match=r"users\.csv: the file is empty"):
        load_files(db, users=empty)
    corrupt = tmp_path / "users.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(DataImportError, match=r"users\.parquet: not a readable Parquet file"):
        load_files(db, users=corrupt)


def test_no_file_given(db: Connection) -> None:
    with pytest.raises(DataImportError, match="at least one"):
        load_files(db)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _stored(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    try:
        return tuple(count_rows(engine, t) for t in ("user_data", "post_text_df", "feed_data"))  # type: ignore[return-value]
    finally:
        engine.dispose()


def test_cli_import_csv(database_url: str, tmp_path: Path) -> None:
    args = ["data", "import-csv", "--users", str(_write(USERS, tmp_path / "users.csv"))]
    args += ["--posts", str(_write(POSTS, tmp_path / "posts.parquet"))]
    args += ["--feed", str(_write(FEED, tmp_path / "feed.csv"))]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "user_data 3, post_text_df 3, feed_data 3 rows" in result.stdout
    assert _stored(database_url) == (3, 3, 3)


def test_cli_bad_input_exits_2_and_stores_nothing(database_url: str, tmp_path: Path) -> None:
    feed = _write(_bad_value("feed_data", 2, "post_id", 77), tmp_path / "feed.csv")
    args = ["data", "import-csv", "--users", str(_write(USERS, tmp_path / "users.csv"))]
    args += ["--posts", str(_write(POSTS, tmp_path / "posts.csv")), "--feed", str(feed)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert "feed.csv, row 2, column 'post_id': post_id 77 is not in post_text_df" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.output
    assert _stored(database_url) == (0, 0, 0)


def test_cli_needs_a_file(database_url: str) -> None:
    result = CliRunner().invoke(app, ["data", "import-csv"])
    assert result.exit_code == 2
    assert "--users, --posts, --feed" in result.stderr
