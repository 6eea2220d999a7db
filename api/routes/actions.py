"""``/feed/actions``: feed clients report views and likes."""

from fastapi import APIRouter, status

from api.deps import ConnDep, StateDep
from api.schemas import ActionIn, ActionOut, now_utc
from feeddata import queries

router = APIRouter(prefix="/feed", tags=["feed"])


@router.post("/actions", response_model=ActionOut, status_code=status.HTTP_201_CREATED)
def record_action(action: ActionIn, conn: ConnDep, state: StateDep) -> ActionOut:
    time = (action.time or now_utc()).replace(tzinfo=None)
    recorded = queries.record_action(
        bind=conn, user_id=action.user_id, post_id=action.post_id, action=action.action, time=time
    )
    if action.action == "like":
        state.record_like(action.user_id, action.post_id, time)
    return ActionOut.from_recorded(recorded)
