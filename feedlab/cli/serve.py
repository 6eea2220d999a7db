"""``feedlab serve`` runs the HTTP service on an existing database; ``feedlab up`` is the
one-command demo: data if there are none, the missing model bundles, then the service."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from feeddata.db import make_engine, missing_tables
from feeddata.schema import TABLES
from feedlab.cli.common import fail
from feedlab.settings import Settings, UnsafeSettingsError, get_settings
from recommenders.base import META_FILE

APP = "api.main:create_app"
WORKER_HEALTHCHECK_S = 60

Host = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for all).")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]
Workers = Annotated[
    int, typer.Option(min=1, help="Worker processes; each loads its own copy of the state.")
]


def serve(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 1) -> None:
    """Serve recommendations from the configured database (FEEDLAB_DATABASE_URL).

    The database must already hold the social network's tables; serving never creates or
    alters them.
    """
    settings = get_settings()
    _check_serving(settings)
    _check_database(settings.database_url)
    _run(settings, host, port, workers)


def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    prepare_only: Annotated[
        bool, typer.Option("--prepare-only", help="Generate and train what is missing, then exit.")
    ] = False,
) -> None:
    """The demo in one command: generate data if the database is empty, train the missing
    model bundles, then serve."""
    settings = get_settings()
    if not prepare_only:
        _check_serving(settings)  # before minutes of training, not after
    typer.echo(f"database: {_display_url(settings.database_url)}")
    engine = make_engine(settings.database_url)
    try:
        _ensure_data(engine, settings)
        for step in TRAIN_STEPS:
            directory = settings.artifacts / step.bundle
            if (directory / META_FILE).is_file():
                typer.echo(f"{step.name}: bundle found at {directory}, kept")
                continue
            typer.echo(f"{step.name}: no bundle at {directory}; training")
            version = step.train(engine, directory)
            typer.echo(f"{step.name}: saved {version} to {directory}")
    finally:
        engine.dispose()
    if prepare_only:
        typer.echo("prepared; not serving (--prepare-only)")
        return
    _run(settings, host, port, workers)


@dataclass(frozen=True)
class TrainStep:
    """A model bundle ``feedlab up`` trains when ``<artifacts>/<bundle>`` has none;
    ``train`` fits on the whole database, saves to the folder and returns the version."""

    name: str
    bundle: str
    train: Callable[[Engine, Path], str]


def _train_popularity(engine: Engine, directory: Path) -> str:
    from api.state import Catalogue, fit_popularity
    from feeddata.interactions import read_interactions, read_posts
    from feeddata.queries import all_user_ids

    likes = read_interactions(engine, likes_only=True)
    catalogue = Catalogue.from_frame(read_posts(engine))
    model = fit_popularity(likes, catalogue, all_user_ids(bind=engine))
    model.save(directory)
    return model.version


TRAIN_STEPS: list[TrainStep] = [
    TrainStep("popularity", "popular", _train_popularity),
]


def _ensure_data(engine: Engine, settings: Settings) -> None:
    rows = _row_counts(engine)
    if not rows["user_data"] and not rows["post_text_df"]:
        typer.echo("no data yet; generating the synthetic demo data set")
        _generate_demo(engine, settings)
        rows = _row_counts(engine)
    elif not rows["user_data"] or not rows["post_text_df"]:
        empty = "user_data" if not rows["user_data"] else "post_text_df"
        raise fail(
            f"{empty} is empty while the other tables have rows; import it "
            "(`feedlab data import-*`) or point FEEDLAB_DATABASE_URL at an empty database"
        )
    counts = ", ".join(f"{table} {n:,}" for table, n in rows.items())
    typer.echo(f"data: {counts} rows")


def _generate_demo(engine: Engine, settings: Settings) -> None:
    try:
        from feeddata.sources.synthetic import SyntheticConfig, generate
    except ImportError as error:
        raise fail(
            f"the synthetic data generator is not available ({error}); "
            "import data with `feedlab data import-*` instead"
        ) from error
    generate(engine, SyntheticConfig.demo(), truth_dir=settings.artifacts / "synthetic_truth")


def _row_counts(engine: Engine) -> dict[str, int]:
    present = set(inspect(engine).get_table_names())
    counts = dict.fromkeys(TABLES, 0)
    with engine.connect() as conn:
        for name, table in TABLES.items():
            if name in present:
                counts[name] = int(
                    conn.execute(select(func.count()).select_from(table)).scalar_one()
                )
    return counts


def _check_serving(settings: Settings) -> None:
    try:
        settings.check_serving()
    except UnsafeSettingsError as error:
        raise fail(f"refusing to serve: {error}") from error


def _check_database(url: str) -> None:
    """Fail unless the database exists and has the tables; touches nothing."""
    how = "fill it with `feedlab data generate` or `feedlab data import-*`, or run `feedlab up`"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        if not path.is_file():
            # Connecting would create an empty file; say so instead.
            raise fail(f"no SQLite database at {path}; {how}")
    engine = make_engine(url)
    try:
        missing = missing_tables(engine)
    except SQLAlchemyError as error:
        raise fail(f"cannot reach the database {_display_url(url)}: {error}") from error
    finally:
        engine.dispose()
    if missing:
        raise fail(f"the database {_display_url(url)} has no table(s) {', '.join(missing)}; {how}")


def _run(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from api.request_log import uvicorn_log_config

    plural = "s" if workers > 1 else ""
    typer.echo(f"serving on http://{host}:{port} ({workers} worker{plural}); API docs at /docs")
    # An import string and factory=True, so every worker process builds its own app from
    # the FEEDLAB_* environment.
    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_format, settings.log_level),
        access_log=False,  # the service writes its own, with the request id
        # A spawned worker re-imports the command line before it answers the supervisor's
        # first ping; on a loaded machine that took over uvicorn's default 5 s, and the
        # supervisor killed and respawned the workers forever.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


def _display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
