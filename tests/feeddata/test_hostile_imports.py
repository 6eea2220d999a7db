"""Hostile and broken files: each import fails with a short message that says what is
wrong, and the database is left exactly as it was (the good files of the same import
included). tests/feeddata/test_files.py has the ordinary mistakes (bad values, missing
columns, duplicate ids, Latin-1)."""

import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from feeddata.db import count_rows
from feeddata.loading import DataImportError
from feeddata.sources.files import load_files
from feedlab.cli import app
from feedlab.settings import get_settings

USERS_HEADER = "user_id,gender,age,country,city,exp_group,os,source"
USERS = f"{USERS_HEADER}\n1,0,20,Russia,Moscow,0,iOS,ads\n2,1,31,Ukraine,Kyiv,3,Android,organic\n"
POSTS = "post_id,text,topic\n10,about covid,covid\n11,a match,sport\n"
FEED = "timestamp,user_id,post_id,action,target\n2021-10-01 10:00:00,1,10,view,0\n"
MB = 1_000_000


def _gzip_cut(text: str) -> bytes:
    return gzip.compress(text.encode())[:-20]  # the end of the stream is missing


# name: (file it replaces, file name, its bytes, the message as a regex)
HOSTILE: dict[str, tuple[str, str, Callable[[], bytes], str]] = {
    "UTF-16": (
        "users",
        "users.csv",
        lambda: USERS.encode("utf-16"),
        r"users\.csv: the file is UTF-16, not UTF-8; convert it \(e\.g\. iconv -f utf-16",
    ),
    "semicolons": (
        "users",
        "users.csv",
        lambda: USERS.replace(",", ";").encode(),
        r"missing column\(s\) user_id, .*is the separator ';'\?",
    ),
    "duplicate column": (
        "users",
        "users.csv",
        lambda: USERS.replace("source", "user_id").encode(),
        r"users\.csv: missing column\(s\) source; duplicate column\(s\) user_id; user_data",
    ),
    "a million columns": (
        "users",
        "users.csv",
        lambda: (",".join(f"c{i}" for i in range(MB)) + "\n").encode(),
        r"users\.csv: the first line is longer than 65,536 bytes; expected a header row",
    ),
    "5,000 columns": (
        "users",
        "users.csv",
        lambda: (",".join(f"c{i}" for i in range(5000)) + "\n1\n").encode(),
        r"users\.csv: 5,000 columns in the header; user_data expects user_id, gender",
    ),
    "a 10 MB column name": (
        "posts",
        "posts.csv",
        lambda: ("post_id,text," + "t" * 10 * MB + "\n").encode(),
        r"posts\.csv: the first line is longer than 65,536 bytes",
    ),
    "a 10 MB text cell": (
        "posts",
        "posts.csv",
        lambda: (POSTS + '12,"' + "x" * 10 * MB + '",tech\n').encode(),
        r"posts\.csv, row 3, column 'text': text longer than 100,000 characters, "
        r"got 'xxxx.*\.\.\. \(10,000,000 characters\)$",
    ),
    "a 10 MB number": (
        "users",
        "users.csv",
        lambda: (USERS + "3,0," + "9" * 10 * MB + ",Russia,Moscow,0,iOS,ads\n").encode(),
        r"users\.csv, row 3, column 'age': expected an integer, got '9999.*characters\)$",
    ),
    "a line of two million fields": (
        "users",
        "users.csv",
        lambda: (USERS + "," * 2 * MB + "\n").encode(),
        r"users\.csv: cannot read the rows from data row 3 on: .*Expected 8 fields in "
        r"line 4, saw 2000001",
    ),
    "a NUL in a text": (
        "posts",
        "posts.csv",
        lambda: (POSTS + "12,nul\x00here,tech\n").encode(),
        r"posts\.csv, row 3, column 'text': text contains a NUL character",
    ),
    "truncated gzip": (
        "users",
        "users.csv.gz",
        lambda: _gzip_cut(USERS * 200),
        r"users\.csv\.gz: not a complete gzip file: Compressed file ended",
    ),
    "not gzip at all": (
        "users",
        "users.csv.gz",
        lambda: USERS.encode(),
        r"users\.csv\.gz: not a complete gzip file: Not a gzipped file",
    ),
    "binary junk": (
        "feed",
        "feed.csv",
        lambda: bytes([*range(128, 256), *range(1, 128)]) * 1000,
        r"feed\.csv: not valid UTF-8 on line 1",
    ),
}


def _counts(db: Connection) -> tuple[int, ...]:
    return tuple(count_rows(db, t) for t in ("user_data", "post_text_df", "feed_data"))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_csv_fails_clearly_and_stores_nothing(
    db: Connection, tmp_path: Path, case: str
) -> None:
    target, name, make, message = HOSTILE[case]
    files = {"users": ("users.csv", USERS.encode()), "posts": ("posts.csv", POSTS.encode())}
    files["feed"] = ("feed.csv", FEED.encode())
    files[target] = (name, make())
    paths = {}
    for kind, (file_name, content) in files.items():
        paths[kind] = tmp_path / file_name
        paths[kind].write_bytes(content)
    before = _counts(db)

    with pytest.raises(DataImportError, match=message) as raised:
        load_files(db, **paths, chunk_rows=2)
    # the message stays readable whatever the size of the cell
    assert len(str(raised.value).replace(str(tmp_path), "")) < 400
    assert _counts(db) == before


def test_a_byte_order_mark_is_fine(db: Connection, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(USERS.encode("utf-8-sig"))  # as Excel writes it
    assert load_files(db, users=path).rows["user_data"] == 2


def test_hostile_parquet_fails_clearly_and_stores_nothing(db: Connection, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text(USERS)
    posts = tmp_path / "posts.parquet"
    pd.DataFrame(
        {"post_id": [10, 11], "text": ["ok", "x" * 10 * MB], "topic": ["a", "b"]}
    ).to_parquet(posts)
    with pytest.raises(DataImportError, match=r"row 2, column 'text': text longer than 100,000"):
        load_files(db, users=users, posts=posts)
    nested = tmp_path / "nested.parquet"
    pd.DataFrame({"post_id": [[10, 11]], "text": ["a"], "topic": ["b"]}).to_parquet(nested)
    with pytest.raises(DataImportError, match=r"row 1, column 'post_id': expected an integer"):
        load_files(db, users=users, posts=nested)
    assert _counts(db) == (0, 0, 0)


def test_the_command_line_says_it_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    users = tmp_path / "users.csv.gz"
    users.write_bytes(_gzip_cut(USERS * 200))
    try:
        result = CliRunner().invoke(app, ["data", "import-csv", "--users", str(users)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "users.csv.gz: not a complete gzip file" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.output
