"""``/post/recommendations/``: the posts to show a user now, from memory only, from the
user's experiment arm; every response is logged as an exposure.

The route is ``async``: a recommendation is a few milliseconds of CPU that never waits
(it reads memory and hands its exposure to a queue), so it is computed on the event loop.
In the request thread pool it cost hand-overs between threads, each waiting for the GIL,
and queued behind requests that wait on the database (docs/scaling.md measures both)."""

import math
from time import perf_counter
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import request_id_of
from api.metrics import ServiceMetrics
from api.request_log import REQUEST_ID_HEADER
from api.schemas import NOT_FOUND, DbId, Limit, Post, Recommendations, UtcTime, now_utc
from api.state import ServiceState

router = APIRouter(tags=["recommendations"])


# Declared before /post/{post_id} (see api.main): without its slash the path would
# otherwise reach that route and fail as a non-integer id.
@router.get("/post/recommendations/", response_model=Recommendations, responses=NOT_FOUND)
@router.get("/post/recommendations", response_model=Recommendations, include_in_schema=False)
async def recommend(
    request: Request,
    user_id: Annotated[DbId, Query(alias="id")],
    time: Annotated[UtcTime | None, Query(description="ISO-8601; default now")] = None,
    limit: Annotated[Limit, Query()] = 10,
) -> Response:
    # The hottest route reads the app's state from the request rather than through
    # dependencies, and returns its JSON ready-made: FastAPI's dependency solving and its
    # re-validation of the returned model were about a third of the route's framework time
    # (docs/scaling.md). ``response_model`` still documents the body.
    started = perf_counter()
    state: ServiceState = request.app.state.service
    metrics: ServiceMetrics = request.app.state.metrics
    # Whole seconds, rounded up, so a like stored earlier in the same second is excluded.
    epoch = math.ceil((time or now_utc()).timestamp())
    # The request's id is the exposure's, so log lines and the exposure share one id.
    result = state.recommend(user_id, epoch, limit, request_id=request_id_of(request))
    body = Recommendations(
        exp_group=result.exp_group,  # type: ignore[arg-type]  # arms are control or test
        recommendations=[Post(id=p.id, text=p.text, topic=p.topic) for p in result.posts],
    )
    assignment = result.route.assignment
    metrics.observe(
        assignment.experiment if assignment else None, result.exp_group, perf_counter() - started
    )
    return Response(
        body.model_dump_json(),
        media_type="application/json",
        headers={REQUEST_ID_HEADER: result.request_id},
    )
