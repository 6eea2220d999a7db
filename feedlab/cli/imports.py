"""``feedlab data import-movielens``, ``import-csv`` and ``stats``."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from feeddata.db import missing_tables
from feeddata.loading import DataImportError, LoadReport
from feeddata.sources.files import load_files
from feeddata.sources.movielens import load_movielens
from feeddata.stats import DataStats, data_stats
from feedlab.cli.common import engine_from_settings, fail


def import_movielens(
    directory: Annotated[
        Path, typer.Argument(help="The MovieLens 100K folder (u.user, u.item, u.genre, u.data).")
    ],
) -> None:
    """Import MovieLens 100K: users, movies as posts, ratings as views, 4-5 stars as likes."""
    _run_import(lambda engine: load_movielens(engine, directory))


def import_csv(
    users: Annotated[Path | None, typer.Option(help="user_data rows (.csv or .parquet).")] = None,
    posts: Annotated[
        Path | None, typer.Option(help="post_text_df rows; text and topic may be missing.")
    ] = None,
    feed: Annotated[
        Path | None, typer.Option(help="feed_data rows; target may be missing (0).")
    ] = None,
) -> None:
    """Import CSV or Parquet files named as the tables' columns, all in one transaction."""
    if users is None and posts is None and feed is None:
        raise fail("give at least one of --users, --posts, --feed")
    _run_import(lambda engine: load_files(engine, users=users, posts=posts, feed=feed))


def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Counts, time range, views, likes and like rates of the data in the database."""
    with _database() as engine:
        if missing := missing_tables(engine):
            raise fail(
                f"the database has no {', '.join(missing)} table; "
                "run feedlab data generate, import-movielens or import-csv first"
            )
        result = data_stats(bind=engine)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(format_stats(result))


def format_stats(result: DataStats) -> str:
    """The stats as a small aligned two-column table."""

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.2%}"

    def when(value: object) -> str:
        return "-" if value is None else str(value)

    rows = [
        ("users", f"{result.users:,}"),
        ("posts", f"{result.posts:,}"),
        ("feed rows", f"{result.feed_rows:,}"),
        ("first event", when(result.first_event)),
        ("last event", when(result.last_event)),
        ("views", f"{result.views:,}"),
        ("likes", f"{result.likes:,}"),
        ("likes per view", rate(result.like_rate)),
        ("views with target=1", rate(result.target_rate)),
        ("users with an action", f"{result.active_users:,}"),
    ]
    rows += [(f"  topic {name or '(none)'}", f"{count:,}") for name, count in result.topics]
    label = max(len(name) for name, _ in rows)
    value = max(len(text) for _, text in rows)
    return "\n".join(f"{name:<{label}}  {text:>{value}}" for name, text in rows)


def _run_import(run: Callable[[Engine], LoadReport]) -> None:
    started = time.perf_counter()
    with _database() as engine:
        try:
            report = run(engine)
        except DataImportError as error:
            raise fail(f"{error}\nnothing was imported") from None
    seconds = time.perf_counter() - started
    counts = ", ".join(f"{table} {rows:,}" for table, rows in report.rows.items())
    where = engine.url.render_as_string(hide_password=True)
    typer.echo(f"imported {counts} rows into {where} in {seconds:.1f} s")


@contextmanager
def _database() -> Iterator[Engine]:
    engine = engine_from_settings()
    try:
        yield engine
    except OperationalError as error:
        where = engine.url.render_as_string(hide_password=True)
        detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise fail(f"cannot use the database {where} (FEEDLAB_DATABASE_URL): {detail}") from None
    finally:
        engine.dispose()
