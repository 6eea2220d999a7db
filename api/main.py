"""The FastAPI application: ``create_app`` builds it, its lifespan loads the service state.

Run with ``feedlab serve``, or ``uvicorn api.main:create_app --factory`` (settings from the
``FEEDLAB_*`` environment variables); each worker process loads its own state.
"""

import ctypes
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep
from api.limits import RequestLimitMiddleware
from api.metrics import ServiceMetrics
from api.request_log import REQUEST_ID_HEADER, RequestIdFilter, RequestIdMiddleware, log_formatter
from api.routes import (
    actions,
    experiments,
    health,
    metrics,
    posts,
    recommendations,
    reports,
    users,
)
from api.schemas import ValidationErrors, error_responses
from api.state import ServiceState
from experiment.bundles import BundleError
from experiment.config import ExperimentConfigError, ExperimentsFile, load_experiments
from experiment.exposure_log import ExposureLog, WriterConfig
from feeddata.db import is_postgres, make_engine, missing_tables
from feeddata.exposures import Exposure, create_feedlab_tables, write_exposures
from feeddata.queries import NotFoundError
from feedlab import __version__
from feedlab.settings import Settings, get_settings
from recommenders.base import one_blas_thread

log = logging.getLogger("feedlab.api")


class DatabaseNotReadyError(RuntimeError):
    """The database lacks the social network's tables; serving never creates them."""


def create_app(settings: Settings | None = None, writer: WriterConfig | None = None) -> FastAPI:
    """The service for ``settings`` (default: :func:`get_settings`, from the environment);
    ``writer`` tunes the exposure writer (default: ``FEEDLAB_EXPOSURE_*`` variables).

    Raises :class:`~feedlab.settings.UnsafeSettingsError` for production settings that
    must not serve (a missing or placeholder admin token)."""
    settings = settings or get_settings()
    settings.check_serving()
    one_blas_thread()
    _limit_malloc_arenas()
    writer = writer or settings.writer_config()
    _configure_logging(settings.log_level, settings.log_format)
    service_metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Few threads: requests beyond them wait in order instead of taking turns at the GIL
        # (docs/scaling.md measures the difference)
        threads = to_thread.current_default_thread_limiter()
        threads.total_tokens = settings.request_threads
        service_metrics.watch_threads(threads)
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
            except (ExperimentConfigError, BundleError) as error:
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
            _freeze_startup_objects()
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
            gc.unfreeze()

    app = FastAPI(
        title="feedlab",
        version=__version__,
        summary="Post recommendations for a students' social network, served for A/B tests.",
        lifespan=lifespan,
        # Any route: a body over the limit is 413, a bad or too long query string 422.
        responses={**error_responses(413), 422: {"model": ValidationErrors}},
    )
    app.state.settings = settings
    # recommendations first: /post/recommendations must not reach /post/{post_id}
    for module in (recommendations, users, posts, actions, health, metrics):
        app.include_router(module.router)
    app.include_router(experiments.router, responses=error_responses(404))
    # A report costs seconds of database work: admin only (FEEDLAB_ADMIN_TOKEN).
    app.include_router(
        reports.router,
        dependencies=[AdminDep],
        responses=error_responses(401, 403, 404),
    )
    app.state.reports = reports.ReportCache()
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(Exception, _internal_error)
    _add_middleware(app, settings)
    _document_errors_as_json(app)
    return app


def _document_errors_as_json(app: FastAPI) -> None:
    """Errors are JSON on every route (HTTPException, validation, the limits), also where
    the route's own answer is HTML or Markdown; FastAPI would document them in the route's
    media type, so the schema is rewritten once, when first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code[0] in "45" and content and "application/json" not in content:
                        [documented] = content.values()
                        response["content"] = {"application/json": documented}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # The last added runs first: ids and the access log, then CORS, then the limits.
    app.add_middleware(
        RequestLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_query_bytes=settings.max_query_bytes,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        )
    app.add_middleware(RequestIdMiddleware)


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
    # Last resort: bad input is answered with 404/422 before it gets here. It runs outside
    # RequestIdMiddleware, so the request id is passed on by hand.
    request_id = getattr(request.state, "request_id", None)
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=error,
        extra={"request_id": request_id},
    )
    return JSONResponse(
        {"detail": "internal server error; the service log has the details"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        headers={REQUEST_ID_HEADER: request_id} if request_id else None,
    )


class _ServiceLogHandler(logging.StreamHandler):
    """The handler the service adds to the ``feedlab`` logger (once per process)."""


def _configure_logging(level: str, log_format: str) -> None:
    logger = logging.getLogger("feedlab")
    logger.setLevel(level.upper())
    handler = next((h for h in logger.handlers if isinstance(h, _ServiceLogHandler)), None)
    if handler is None:
        handler = _ServiceLogHandler()
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
    handler.setFormatter(log_formatter(log_format))


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def _limit_malloc_arenas() -> bool:
    """At most ``MALLOC_ARENAS`` glibc malloc arenas in this worker (as MALLOC_ARENA_MAX=2).

    glibc gives each thread of the request threadpool its own arena and keeps its freed
    memory: under 64 clients at course scale a worker's heap grew from 622 to 926 MB over
    150 s, and stayed at 540-566 MB with two arenas at the same throughput. No-op (False)
    where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):
        return False


def _freeze_startup_objects() -> None:
    """Move everything loaded at start (catalogue, bundles, experiment plan: about 220,000
    tracked objects at course scale) out of the garbage collector's reach.

    They live as long as the worker, yet every full collection walked them: 150-200 ms
    with the worker's requests waiting, whenever the objects requests leave behind set one
    off. Frozen, a full collection walks only what was made since (under 1 ms). In the
    load benchmark's open loop at course scale, p99 went from 79 to 63 ms at 100 requests
    a second and from 354 to 227 ms at 200 (one run each, same machine and bundles).
    """
    gc.collect()
    gc.freeze()
