"""MovieLens 100K as the social network: users keep their demographics, movies become posts,
every rating is a view and ratings of 4 and 5 are also likes.

How the columns map (MovieLens has no exact counterpart for some of them):

- ``gender``: 1 for ``M``, 0 for ``F``.
- ``country``: ``"Canada"`` when the postal code is a Canadian one (letter first, e.g.
  ``T8H1N``), else ``"United States"``.
- ``city``: the first three characters of the postal code (a US ZIP's sectional centre or a
  Canadian forward sortation area, roughly a city or metro area). There is no offline
  ZIP-to-city table, and full ZIP codes are nearly unique per user, which makes a useless
  feature; the prefix groups neighbours the way a city does.
- ``exp_group``: ``user_id % 5``, a deterministic legacy cohort 0-4 (not the A/B arm).
- ``os``: ``"unknown"``: MovieLens does not record a device.
- ``source``: the occupation (``student``, ``engineer``...), so that the last demographic
  column survives as a categorical feature; MovieLens has no acquisition channel.
- posts: ``text`` is the title followed by the genres (``"Toy Story (1995). Animation,
  Children's, Comedy"``), ``topic`` the first genre in ``u.genre`` order.
- feed: each rating is a ``view`` at the rating's time with ``target`` 1 when the rating is
  4 or 5; those ratings are also a ``like`` at the same time (``target`` 0, as on every like).
"""

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from feeddata.db import Bind
from feeddata.loading import Chunk, DataImportError, LoadReport, load

LIKE_RATING = 4
"""Ratings at or above this are likes (and their views have target 1)."""
COHORTS = 5
# u.item and u.genre hold a few accented titles in ISO-8859-1, not UTF-8.
ENCODING = "latin-1"
FEED_CHUNK_ROWS = 200_000


def load_movielens(bind: Bind, directory: Path) -> LoadReport:
    """Import MovieLens 100K from ``directory`` (``u.user``, ``u.item``, ``u.genre``,
    ``u.data``) in one transaction; nothing is stored if any file is missing or malformed."""
    users = read_users(directory / "u.user")
    posts = read_posts(directory / "u.item", directory / "u.genre")
    feed = read_feed(directory / "u.data")
    total = len(users) + len(posts) + len(feed)
    return load(
        bind,
        _chunks(directory, users, posts, feed),
        total_rows=total,
        description="import MovieLens",
    )


def _chunks(
    directory: Path, users: pd.DataFrame, posts: pd.DataFrame, feed: pd.DataFrame
) -> Iterator[Chunk]:
    yield Chunk("user_data", users, str(directory / "u.user"))
    yield Chunk("post_text_df", posts, str(directory / "u.item"))
    # Views are u.data's lines in order, so an error (a movie missing from u.item) names the
    # line; the likes repeat the views' users and posts, and come after them.
    ratings = str(directory / "u.data")
    is_view = feed["action"] == "view"
    for rows, source in ((feed[is_view], ratings), (feed[~is_view], f"{ratings} (likes)")):
        for start in range(0, len(rows), FEED_CHUNK_ROWS):
            part = rows.iloc[start : start + FEED_CHUNK_ROWS]
            yield Chunk("feed_data", part, source, first_row=start + 1)


def read_users(path: Path) -> pd.DataFrame:
    """``u.user`` (id|age|gender|occupation|zip) as ``user_data`` rows."""
    raw = _read(
        path,
        ["user_id", "age", "gender", "occupation", "zip"],
        sep="|",
        integers=["user_id", "age"],
    )
    zip_code = raw["zip"].astype(str).str.strip().str.upper()
    unknown_gender = ~raw["gender"].isin(["M", "F"])
    if unknown_gender.any():
        row = int(np.flatnonzero(unknown_gender.to_numpy())[0]) + 1
        raise DataImportError(str(path), "gender must be M or F", row, "gender")
    return pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "gender": (raw["gender"] == "M").astype("int64"),
            "age": raw["age"],
            "country": np.where(zip_code.str.match(r"^[A-Z]"), "Canada", "United States"),
            "city": zip_code.str[:3],
            "exp_group": raw["user_id"] % COHORTS,
            "os": "unknown",
            "source": raw["occupation"],
        }
    )


def read_genres(path: Path) -> list[str]:
    """Genre names from ``u.genre`` (name|index), in index order."""
    raw = _read(path, ["name", "index"], sep="|", integers=["index"])
    return raw.sort_values("index")["name"].astype(str).tolist()


def read_posts(path: Path, genre_path: Path) -> pd.DataFrame:
    """``u.item`` as ``post_text_df`` rows: title and genres as text, first genre as topic."""
    genres = read_genres(genre_path)
    head = ["post_id", "title", "release_date", "video_release_date", "url"]
    raw = _read(path, head + genres, sep="|", integers=["post_id", *genres])
    flags = raw[genres].to_numpy(dtype=bool)
    names = np.array(genres, dtype=object)
    titles = raw["title"].fillna("").astype(str).tolist()
    texts, topics = [], []
    for title, row in zip(titles, flags, strict=True):
        movie_genres = names[row].tolist()
        texts.append(f"{title}. {', '.join(movie_genres)}" if movie_genres else title)
        topics.append(movie_genres[0] if movie_genres else "")
    return pd.DataFrame({"post_id": raw["post_id"], "text": texts, "topic": topics})


def read_feed(path: Path) -> pd.DataFrame:
    """``u.data`` (user, item, rating, unix time) as ``feed_data`` rows: first a view per
    rating, in the file's order (row i is line i), then a like at the same time for each
    rating of 4 or 5, in the same order."""
    columns = ["user_id", "post_id", "rating", "timestamp"]
    raw = _read(path, columns, sep="\t", integers=columns)
    liked = raw["rating"].to_numpy() >= LIKE_RATING
    views = pd.DataFrame(
        {
            "timestamp": raw["timestamp"],
            "user_id": raw["user_id"],
            "post_id": raw["post_id"],
            "action": "view",
            "target": liked.astype("int64"),
        }
    )
    likes = views[liked].assign(action="like", target=0)
    return pd.concat([views, likes], ignore_index=True)


def _read(path: Path, names: list[str], *, sep: str, integers: list[str]) -> pd.DataFrame:
    """A headerless MovieLens file, with ``integers`` checked to be whole numbers."""
    if not path.is_file():
        raise DataImportError(str(path), "file not found; expected the MovieLens 100K folder")
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None, names=names, encoding=ENCODING, quoting=csv.QUOTE_NONE
        )
    except (ValueError, pd.errors.ParserError) as error:
        raise DataImportError(str(path), f"not a MovieLens 100K file: {error}") from error
    for column in integers:
        if not pd.api.types.is_integer_dtype(frame[column]):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = (numbers.isna() | (numbers.fillna(0) % 1 != 0)).to_numpy()
            row = int(np.flatnonzero(bad)[0]) + 1 if bad.any() else None
            raise DataImportError(str(path), "expected an integer", row, column)
    return frame
