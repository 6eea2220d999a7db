"""``/metrics``: this process's counters in the Prometheus text format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(service_metrics: MetricsDep) -> Response:
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
