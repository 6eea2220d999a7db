"""The FastAPI application: ``create_app`` builds it, its lifespan loads the service state.

Run with ``feedlab serve``, or ``uvicorn api.main:create_app --factory`` (settings from the
``FEEDLAB_*`` environment variables); each worker process loads its own state.
"""

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.metrics import ServiceMetrics
from api.routes import actions, experiments, health, metrics, posts, recommendations, users
from api.state import ServiceState
from experiment.config import ExperimentConfigError, ExperimentsFile, load_experiments
from experiment.exposure_log import ExposureLog, WriterConfig
from feeddata.db import is_postgres, make_engine, missing_tables
from feeddata.exposures import Exposure, create_feedlab_tables, write_exposures
from feeddata.queries import NotFoundError
from feedlab import __version__
from feedlab.settings import Settings, get_settings

log = logging.getLogger("feedlab.api")


class DatabaseNotReadyError(RuntimeError):
    """The database lacks the social network's tables; serving never creates them."""


def create_app(settings: Settings | None = None, writer: WriterConfig | None = None) -> FastAPI:
    """The service for ``settings`` (default: :func:`get_settings`, from the environment);
    ``writer`` tunes the exposure writer (default: ``FEEDLAB_EXPOSURE_*`` variables)."""
    settings = settings or get_settings()
    writer = writer or settings.writer_config()
    _configure_logging(settings.log_level)
    service_metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plan = _experiments(settings)  # a bad file stops the service before anything else
        engine = make_engine(settings.database_url)
        # The writer's own engine: a slow or unreachable database never holds up requests.
        writer_engine = make_engine(settings.database_url, **_writer_engine_options(engine))
        exposure_log: ExposureLog | None = None
        try:
            missing = await run_in_threadpool(missing_tables, engine)
            if missing:
                raise DatabaseNotReadyError(
                    f"the database has no table(s) {', '.join(missing)}; fill it with "
                    "`feedlab data generate` or `feedlab data import-*`, or run `feedlab up`"
                )
            await run_in_threadpool(create_feedlab_tables, engine)
            try:
                state = await run_in_threadpool(ServiceState.load, engine, settings.artifacts, plan)
            except ExperimentConfigError as error:
                log.error("cannot start: %s", error)
                raise
            exposure_log = ExposureLog(
                partial(_write, writer_engine),
                spill_dir=writer.spill_dir or settings.artifacts / "exposure_spill",
                config=writer,
            ).start()
            state.exposure_log = exposure_log
            service_metrics.watch(exposure_log)
            app.state.service = state
            app.state.metrics = service_metrics
            yield
        finally:
            if exposure_log is not None:
                complete = await run_in_threadpool(exposure_log.close)
                stats = exposure_log.stats()
                log.info(
                    "exposure log closed: %d written, %d left in spill files, %d dropped%s",
                    stats.written,
                    stats.spill_pending,
                    stats.dropped,
                    "" if complete else " (replayed at the next start)",
                )
            writer_engine.dispose()
            engine.dispose()

    app = FastAPI(
        title="feedlab",
        version=__version__,
        summary="Post recommendations for a students' social network, served for A/B tests.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    # recommendations first: /post/recommendations must not reach /post/{post_id}
    for module in (recommendations, users, posts, actions, experiments, health, metrics):
        app.include_router(module.router)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(Exception, _internal_error)
    return app


def _experiments(settings: Settings) -> ExperimentsFile:
    if settings.experiments is None:
        log.info("no experiment file (FEEDLAB_EXPERIMENTS): every user gets the default")
        return ExperimentsFile()
    try:
        plan = load_experiments(settings.experiments)
    except ExperimentConfigError as error:
        log.error("cannot start: %s", error)
        raise
    log.info("experiments from %s: %s", settings.experiments, [e.name for e in plan.experiments])
    return plan


def _writer_engine_options(engine: Engine) -> dict[str, Any]:
    if is_postgres(engine):
        # fail fast rather than hang on a database that stopped answering
        return {"pool_size": 1, "connect_args": {"connect_timeout": 5}}
    return {}


def _write(engine: Engine, batch: Sequence[Exposure]) -> None:
    write_exposures(bind=engine, batch=batch)


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    # Last resort: bad input is answered with 404/422 before it gets here.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        {"detail": "internal server error; the service log has the details"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("feedlab")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
