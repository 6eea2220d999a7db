"""``/feed/actions``: feed clients report views and likes, at most once per event id."""

from fastapi import APIRouter, HTTPException, Response, status

from api.deps import StateDep
from api.schemas import ActionIn, ActionOut, ErrorDetail, now_utc
from feeddata import queries
from feeddata.receipts import EventIdConflictError, record_action_once

router = APIRouter(prefix="/feed", tags=["feed"])


@router.post(
    "/actions",
    response_model=ActionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": ActionOut,
            "description": "a retry: this event_id was recorded before, nothing new stored",
        },
        400: {"model": ErrorDetail, "description": "the body cannot be read (not UTF-8)"},
        404: {"model": ErrorDetail, "description": "unknown user or post"},
        409: {
            "model": ErrorDetail,
            "description": "this event_id was recorded before for another action",
        },
    },
)
def record_action(action: ActionIn, state: StateDep, response: Response) -> ActionOut:
    time = (action.time or now_utc()).replace(tzinfo=None)
    if action.event_id is None:
        recorded = queries.record_action(
            bind=state.engine,
            user_id=action.user_id,
            post_id=action.post_id,
            action=action.action,
            time=time,
        )
    else:
        try:
            receipt = record_action_once(
                bind=state.engine,
                event_id=action.event_id,
                user_id=action.user_id,
                post_id=action.post_id,
                action=action.action,
                time=time,
            )
        except EventIdConflictError as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        recorded = receipt.recorded
        if receipt.replayed:
            response.status_code = status.HTTP_200_OK
            return ActionOut.from_recorded(recorded)
    if action.action == "like":
        state.record_like(action.user_id, action.post_id, time)
    return ActionOut.from_recorded(recorded)
