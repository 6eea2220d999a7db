"""The FastAPI application: ``create_app`` builds it, its lifespan loads the service state.

Run with ``feedlab serve``, or ``uvicorn api.main:create_app --factory`` (settings from the
``FEEDLAB_*`` environment variables); each worker process loads its own state.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.routes import actions, health, posts, recommendations, users
from api.state import ServiceState
from feeddata.db import make_engine, missing_tables
from feeddata.queries import NotFoundError
from feedlab import __version__
from feedlab.settings import Settings, get_settings

log = logging.getLogger("feedlab.api")


class DatabaseNotReadyError(RuntimeError):
    """The database lacks the social network's tables; serving never creates them."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: :func:`get_settings`, from the environment)."""
    settings = settings or get_settings()
    _configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        try:
            missing = await run_in_threadpool(missing_tables, engine)
            if missing:
                raise DatabaseNotReadyError(
                    f"the database has no table(s) {', '.join(missing)}; fill it with "
                    "`feedlab data generate` or `feedlab data import-*`, or run `feedlab up`"
                )
            app.state.service = await run_in_threadpool(
                ServiceState.load, engine, settings.artifacts
            )
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="feedlab",
        version=__version__,
        summary="Post recommendations for a students' social network, served for A/B tests.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    # recommendations first: /post/recommendations must not reach /post/{post_id}
    for module in (recommendations, users, posts, actions, health):
        app.include_router(module.router)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(Exception, _internal_error)
    return app


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
