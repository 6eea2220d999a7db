"""Dependencies of the routes, as ``Annotated`` aliases.

Those that only read what the app holds are ``async``: FastAPI runs a plain ``def``
dependency in the request thread pool, a hand-over between threads that waits for the GIL
and for a free pool thread (docs/scaling.md). Only :func:`get_conn`, which waits on the
database, runs there."""

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from api.metrics import ServiceMetrics
from api.request_log import new_request_id
from api.state import ServiceState
from feedlab.settings import Settings


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_conn(state: Annotated[ServiceState, Depends(get_state)]) -> Iterator[Connection]:
    with state.engine.connect() as conn:
        yield conn


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (:func:`api.main.create_app`). Read from the
    app rather than set with ``dependency_overrides``: while any override is set, FastAPI
    rebuilds every dependency's signature on every request (about 9% of a worker's busy
    time in a profile, docs/scaling.md)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StateDep = Annotated[ServiceState, Depends(get_state)]
ConnDep = Annotated[Connection, Depends(get_conn)]


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def request_id_of(request: Request) -> str:
    """The id :class:`~api.request_log.RequestIdMiddleware` gave this request."""
    request_id = getattr(request.state, "request_id", None)
    return request_id if isinstance(request_id, str) else new_request_id()


_bearer = HTTPBearer(
    auto_error=False,
    description="FEEDLAB_ADMIN_TOKEN, for the endpoints that cost time or change state",
)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admit the request only with ``Authorization: Bearer <FEEDLAB_ADMIN_TOKEN>``: 401
    without it or with another token, 403 while no token is configured.

    Attach it to a route with ``dependencies=[AdminDep]`` (or ``Depends(require_admin)``).
    """
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin endpoints are disabled: the service has no FEEDLAB_ADMIN_TOKEN",
        )
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    # Constant time: how long the comparison takes says nothing about the token.
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin token; send Authorization: Bearer <FEEDLAB_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
"""``dependencies=[AdminDep]`` on a route or router makes it admin-only."""
