"""``feedlab serve`` runs the HTTP service on an existing database; ``feedlab up`` is the
one-command demo: data if there are none, the model bundles the experiment needs, then the
service with the experiment."""

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.state import POPULARITY_BUNDLE
from experiment.config import ExperimentConfigError, ExperimentsFile, load_experiments
from feeddata.db import make_engine, missing_tables
from feeddata.schema import TABLES
from feedlab.cli.common import fail
from feedlab.cli.train import build_recommender, read_training_data, train_bundle
from feedlab.settings import Settings, UnsafeSettingsError, get_settings
from recommenders.base import META_FILE, BundleMeta
from recommenders.baselines import PopularityRecommender
from recommenders.registry import FACTORIES

APP = "api.main:create_app"
WORKER_HEALTHCHECK_S = 60
SHIPPED_EXPERIMENTS = Path("experiments.toml")
"""The project's experiment; ``feedlab up`` serves it from the working directory by default."""
EXPERIMENTS_VARIABLE = "FEEDLAB_EXPERIMENTS"

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
    experiments: Annotated[
        Path | None,
        typer.Option(
            "--experiments",
            help="Experiment file to serve [FEEDLAB_EXPERIMENTS, else ./experiments.toml].",
        ),
    ] = None,
    no_experiment: Annotated[
        bool,
        typer.Option("--no-experiment", help="Serve no experiment: popularity for everyone."),
    ] = False,
    params_file: Annotated[
        Path | None,
        typer.Option(
            "--params-file",
            help="JSON object: bundle folder -> hyper-parameters for the bundles trained here, "
            'e.g. {"catboost": {"iterations": 200}}.',
        ),
    ] = None,
) -> None:
    """The demo in one command: generate data if the database is empty, train the missing
    model bundles (popularity and every experiment arm's), then serve the experiment."""
    settings = get_settings()
    if not prepare_only:
        _check_serving(settings)  # before minutes of training, not after
    # A bad experiment or parameter file stops here, before any data or training.
    path = _experiment_file(experiments, no_experiment=no_experiment, settings=settings)
    plan = _load_experiments(path)
    bundles = _bundles_to_serve(plan, _read_params(params_file))
    _serve_experiment_file(path)
    typer.echo(f"database: {_display_url(settings.database_url)}")
    if path is None:
        typer.echo("experiment: none; every user gets the popularity ranking")
    else:
        names = ", ".join(e.name for e in plan.experiments) or "none configured"
        typer.echo(f"experiment file: {path} ({names})")
    engine = make_engine(settings.database_url)
    try:
        _ensure_data(engine, settings)
        _train_missing(engine, settings.artifacts, bundles)
    finally:
        engine.dispose()
    if prepare_only:
        typer.echo("prepared; not serving (--prepare-only)")
        return
    _run(get_settings(), host, port, workers)


@dataclass(frozen=True)
class Bundle:
    """A model bundle ``feedlab up`` trains when ``<artifacts>/<folder>`` has none."""

    folder: str
    recommender: str
    params: dict[str, Any]
    serves: str
    """Who needs it, for messages: the default recommender or an experiment arm."""


def _experiment_file(
    option: Path | None, *, no_experiment: bool, settings: Settings
) -> Path | None:
    if no_experiment:
        if option is not None:
            raise fail("--experiments and --no-experiment exclude each other; choose one")
        return None
    if option is not None:
        if not option.is_file():
            raise fail(f"--experiments: no file at {option}")
        return option
    if settings.experiments is not None:
        return settings.experiments  # load_experiments says when it is not a file
    return SHIPPED_EXPERIMENTS if SHIPPED_EXPERIMENTS.is_file() else None


def _load_experiments(path: Path | None) -> ExperimentsFile:
    if path is None:
        return ExperimentsFile()
    how = "(or serve no experiment: feedlab up --no-experiment)"
    try:
        plan = load_experiments(path)
    except ExperimentConfigError as error:
        raise fail(f"{error}\n{how}") from None
    # The file's check leaves the names to the service's start; here they come first.
    for experiment in plan.experiments:
        for arm in experiment.arms:
            if arm.recommender not in FACTORIES:
                raise fail(
                    f"{path} needs fixing:\n  experiment {experiment.name!r}, arm {arm.name!r}: "
                    f"unknown recommender {arm.recommender!r}; known: "
                    f"{', '.join(sorted(FACTORIES))}\n{how}"
                )
    return plan


def _serve_experiment_file(path: Path | None) -> None:
    """Hand the choice to the service: uvicorn's workers build the app from the FEEDLAB_*
    environment, and a single worker runs in this process, whose settings are cached."""
    if path is None:
        os.environ.pop(EXPERIMENTS_VARIABLE, None)
    else:
        os.environ[EXPERIMENTS_VARIABLE] = str(path.resolve())
    get_settings.cache_clear()


def _read_params(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise fail(f"--params-file: cannot read {path} as JSON: {error}") from None
    if not isinstance(params, dict) or not all(isinstance(p, dict) for p in params.values()):
        raise fail(
            f"--params-file: {path} must hold a JSON object of objects, bundle folder -> "
            'hyper-parameters, e.g. {"catboost": {"iterations": 200}}'
        )
    return params


def _bundles_to_serve(plan: ExperimentsFile, params: dict[str, dict[str, Any]]) -> list[Bundle]:
    """The popularity bundle and every arm's, once per folder, each recommender built with
    its parameters so that a mistake stops ``up`` before any training; the arms'
    recommenders are known names (see :func:`_load_experiments`)."""
    default = Bundle(POPULARITY_BUNDLE, PopularityRecommender.name, {}, "the default recommender")
    bundles = {default.folder: default}
    for experiment in plan.experiments:
        for arm in experiment.arms:
            where = f"experiment {experiment.name!r}, arm {arm.name!r}"
            bundle = bundles.setdefault(
                arm.bundle_dir, Bundle(arm.bundle_dir, arm.recommender, {}, where)
            )
            if bundle.recommender != arm.recommender:
                raise fail(
                    f"{where} serves {arm.recommender!r} from the folder {arm.bundle_dir!r}, "
                    f"where {bundle.serves} serves {bundle.recommender!r}; give the arm its "
                    "own `bundle` folder"
                )
    if unknown := sorted(set(params) - set(bundles)):
        raise fail(
            f"--params-file names {unknown}, which this run does not serve; the bundle "
            f"folders are {sorted(bundles)}"
        )
    needed = [replace(b, params=params.get(b.folder, {})) for b in bundles.values()]
    for bundle in needed:
        try:
            build_recommender(bundle.recommender, bundle.params)
        except ValueError as error:
            raise fail(f"--params-file, {bundle.folder!r}: {error}") from None
    return needed


def _train_missing(engine: Engine, artifacts: Path, bundles: list[Bundle]) -> None:
    """Train the bundles that have no ``meta.json``, on every event (read once)."""
    missing: list[Bundle] = []
    for bundle in bundles:
        directory = artifacts / bundle.folder
        if not (directory / META_FILE).is_file():
            typer.echo(f"{bundle.folder}: no bundle at {directory}; training")
            missing.append(bundle)
            continue
        _check_kept(bundle, directory)
        typer.echo(f"{bundle.folder}: bundle found at {directory}, kept")
    if not missing:
        return
    try:
        data = read_training_data(engine)
        for bundle in missing:
            directory = artifacts / bundle.folder
            meta = train_bundle(bundle.recommender, bundle.params, data, directory)
            typer.echo(f"{bundle.folder}: saved {meta.version} to {directory}")
    except ValueError as error:
        raise fail(str(error)) from None


def _check_kept(bundle: Bundle, directory: Path) -> None:
    meta_path = directory / META_FILE
    try:
        meta = BundleMeta.model_validate_json(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {meta_path}: {error}; remove {directory} to retrain") from None
    if meta.name != bundle.recommender:
        raise fail(
            f"{directory} holds a {meta.name!r} bundle where {bundle.serves} needs "
            f"{bundle.recommender!r}; remove it to have it trained, or give the arm its own "
            "`bundle` folder"
        )


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

    if workers > 1:
        _check_bundles(settings)
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


def _check_bundles(settings: Settings) -> None:
    """Refuse a damaged, missing or foreign bundle before any worker starts (exit code 3,
    as a single worker's failed start). uvicorn's supervisor does not pass a worker's failed
    start on: it waits for the worker's health check and then exits with 0."""
    from experiment.bundles import BundleError, check_bundle
    from experiment.routing import check_arm_bundles

    try:
        popular = settings.artifacts / POPULARITY_BUNDLE
        if (popular / META_FILE).is_file():
            check_bundle(PopularityRecommender, popular)
        plan = load_experiments(settings.experiments) if settings.experiments else None
        if plan is not None:
            check_arm_bundles(plan, settings.artifacts)
    except (ExperimentConfigError, BundleError) as error:
        typer.secho(f"cannot start: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=3) from None


def _display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
