"""``/health``: is the service up, can it reach its database, what does it serve."""

from fastapi import APIRouter, Response, status

from api.deps import StateDep
from api.schemas import Health, RecommenderInfo
from feeddata import queries

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
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
