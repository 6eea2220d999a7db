"""``/post/{post_id}``: a post and the latest actions on it."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ConnDep
from api.schemas import NOT_FOUND, DbId, FeedEvent, Limit, Post
from feeddata import queries

router = APIRouter(prefix="/post", tags=["posts"])

PostId = Annotated[DbId, Path()]


@router.get("/{post_id}", response_model=Post, responses=NOT_FOUND)
def get_post(post_id: PostId, conn: ConnDep) -> Post:
    row = queries.get_post(bind=conn, post_id=post_id)
    return Post(id=row["post_id"], text=row["text"], topic=row["topic"])


@router.get("/{post_id}/feed", response_model=list[FeedEvent], responses=NOT_FOUND)
def get_post_feed(
    post_id: PostId, conn: ConnDep, limit: Annotated[Limit, Query()] = 10
) -> list[FeedEvent]:
    events = queries.post_feed(bind=conn, post_id=post_id, limit=limit)
    return [FeedEvent.from_event(event) for event in events]
