"""``/post/recommendations/``: the posts to show a user now, from memory only."""

import math
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import StateDep
from api.schemas import DbId, Limit, Post, Recommendations, UtcTime, now_utc

router = APIRouter(tags=["recommendations"])


# Declared before /post/{post_id} (see api.main): without its slash the path would
# otherwise reach that route and fail as a non-integer id.
@router.get("/post/recommendations/", response_model=Recommendations)
@router.get("/post/recommendations", response_model=Recommendations, include_in_schema=False)
def recommend(
    state: StateDep,
    user_id: Annotated[DbId, Query(alias="id")],
    time: Annotated[UtcTime | None, Query(description="ISO-8601; default now")] = None,
    limit: Annotated[Limit, Query()] = 10,
) -> Recommendations:
    # Whole seconds, rounded up, so a like stored earlier in the same second is excluded.
    epoch = math.ceil((time or now_utc()).timestamp())
    result = state.recommend(user_id, epoch, limit)
    return Recommendations(
        exp_group=result.exp_group,
        recommendations=[Post(id=p.id, text=p.text, topic=p.topic) for p in result.posts],
    )
