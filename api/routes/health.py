"""Health: ``/health/live`` (the process answers), ``/health/ready`` (it can serve: state
loaded, database reachable), and ``/health`` with what the service holds."""

from fastapi import APIRouter, Request, Response, status

from api.deps import StateDep
from api.schemas import Health, Liveness, Readiness, RecommenderInfo
from api.state import ServiceState
from feeddata import queries

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    """200 while the process answers HTTP; restart it when this fails. Answered on the
    event loop: request threads all waiting on the database do not make it fail."""
    return Liveness(status="live")


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(request: Request, response: Response) -> Readiness:
    """200 when the service can serve; 503 (take it out of the load balancer) otherwise."""
    state: ServiceState | None = getattr(request.app.state, "service", None)
    database = state is not None and queries.ping(bind=state.engine)
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if database else "not ready",
        state_loaded=state is not None,
        database=database,
    )


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(state: StateDep, response: Response) -> Health:
    database = queries.ping(bind=state.engine)
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        status="ok" if database else "degraded",
        database=database,
        posts=len(state.catalogue),
        users=len(state.user_ids),
        likes=state.history.n_likes,
        recommenders=[
            RecommenderInfo(
                experiment=served.experiment,
                arm=served.arm,
                name=served.recommender.name,
                version=served.recommender.version,
            )
            for served in state.served()
        ],
        started_at=state.started_at,
    )
