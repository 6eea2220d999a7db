"""``/experiments/{name}/report``: the experiment's report (the page of ``feedlab report``)
from the service's own database.

A report aggregates every exposure of the experiment, seconds of database work at scale,
so it runs in the threadpool, one at a time per worker process, and is kept for
``REPORT_TTL_S`` per parameters: a product manager reloading the page, or several people
opening it, costs the database one report a minute. Waiting requests hold no thread.

The route has a router of its own, so access control is one dependency where
``api.main`` includes it (the admin token).
"""

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from analysis.database import read_experiment
from analysis.render import to_html, to_markdown
from analysis.report import AnalysisConfig, Report, analyse
from api.deps import StateDep
from api.routes.experiments import configured_experiment
from api.state import ServiceState
from experiment.config import ExperimentConfig

REPORT_TTL_S = 60.0
MAX_CACHED_REPORTS = 32
MAX_WINDOW_S = 30 * 86_400

router = APIRouter(prefix="/experiments", tags=["reports"])


class ReportFormat(StrEnum):
    html = "html"
    json = "json"
    md = "md"


@dataclass(frozen=True)
class ReportKey:
    experiment: str
    window_s: int
    k: int
    alpha: float


class ReportCache:
    """Reports by parameters for ``ttl_s`` seconds; one computation at a time, so requests
    that arrive while a report is computed wait for it instead of starting another."""

    def __init__(self, ttl_s: float = REPORT_TTL_S, max_entries: int = MAX_CACHED_REPORTS):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._reports: dict[ReportKey, tuple[float, Report]] = {}
        self._lock = asyncio.Lock()

    async def get(
        self, key: ReportKey, state: ServiceState, experiment: ExperimentConfig
    ) -> Report:
        async with self._lock:
            now = time.monotonic()
            self._reports = {
                k: entry for k, entry in self._reports.items() if now - entry[0] < self.ttl_s
            }
            if key in self._reports:
                return self._reports[key][1]
            report = await run_in_threadpool(experiment_report, state, experiment, key)
            if len(self._reports) >= self.max_entries:
                del self._reports[min(self._reports, key=lambda k: self._reports[k][0])]
            self._reports[key] = (time.monotonic(), report)
            return report


def experiment_report(state: ServiceState, experiment: ExperimentConfig, key: ReportKey) -> Report:
    """The report of ``experiment`` from the service's database, checked against the
    configured arm weights."""
    data = read_experiment(
        bind=state.engine, experiment=experiment.name, window=key.window_s, k=key.k
    )
    config = AnalysisConfig(
        k=key.k,
        window_s=key.window_s,
        alpha=key.alpha,
        weights={arm.name: float(arm.weight) for arm in experiment.arms},
    )
    return analyse(data, config)


def get_report_cache(request: Request) -> ReportCache:
    cache: ReportCache = request.app.state.reports
    return cache


ReportCacheDep = Annotated[ReportCache, Depends(get_report_cache)]


@router.get(
    "/{name}/report",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The report: an HTML page (default), JSON with every number, or "
            "Markdown",
            "content": {"application/json": {}, "text/markdown": {}},
        },
    },
)
async def show_report(
    name: str,
    state: StateDep,
    cache: ReportCacheDep,
    fmt: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.html,
    window: Annotated[
        int, Query(ge=0, le=MAX_WINDOW_S, description="seconds after an exposure a like counts")
    ] = 3600,
    k: Annotated[int, Query(ge=1, le=100, description="posts per exposure (hitrate@k)")] = 5,
    alpha: Annotated[float, Query(ge=0.0001, le=0.5, description="two-sided test level")] = 0.05,
) -> Response:
    """The experiment's report: the verdict, health checks, every metric's effect, plots."""
    experiment = configured_experiment(state, name)
    report = await cache.get(ReportKey(experiment.name, window, k, alpha), state, experiment)
    return await run_in_threadpool(_render, report, fmt)


def _render(report: Report, fmt: ReportFormat) -> Response:
    if fmt is ReportFormat.json:
        return JSONResponse(report.to_dict())
    if fmt is ReportFormat.md:
        return PlainTextResponse(to_markdown(report), media_type="text/markdown; charset=utf-8")
    return HTMLResponse(to_html(report))
