"""``/metrics``: this process's counters in the Prometheus text format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(service_metrics: MetricsDep) -> Response:
    # on the event loop: a scrape still answers while every request thread is busy
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
