"""``/user/{user_id}``: a profile and its latest actions."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ConnDep
from api.schemas import NOT_FOUND, DbId, FeedEvent, Limit, User
from feeddata import queries

router = APIRouter(prefix="/user", tags=["users"])

UserId = Annotated[DbId, Path()]


@router.get("/{user_id}", response_model=User, responses=NOT_FOUND)
def get_user(user_id: UserId, conn: ConnDep) -> User:
    row = queries.get_user(bind=conn, user_id=user_id)
    return User(id=row.pop("user_id"), **row)


@router.get("/{user_id}/feed", response_model=list[FeedEvent], responses=NOT_FOUND)
def get_user_feed(
    user_id: UserId, conn: ConnDep, limit: Annotated[Limit, Query()] = 10
) -> list[FeedEvent]:
    events = queries.user_feed(bind=conn, user_id=user_id, limit=limit)
    return [FeedEvent.from_event(event) for event in events]
