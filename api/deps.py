"""Dependencies of the routes, as ``Annotated`` aliases."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from api.metrics import ServiceMetrics
from api.state import ServiceState
from feedlab.settings import Settings, get_settings


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_conn(state: Annotated[ServiceState, Depends(get_state)]) -> Iterator[Connection]:
    with state.engine.connect() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
StateDep = Annotated[ServiceState, Depends(get_state)]
ConnDep = Annotated[Connection, Depends(get_conn)]


def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
