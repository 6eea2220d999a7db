"""Request and response models of the HTTP API."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from feeddata import queries

MAX_LIMIT = 100

DbId = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
"""An id as the tables store it (a 32-bit integer); anything else is a bad parameter."""


def _json_integer(value: object) -> object:
    # JSON Schema's integer includes 7.0 but not "7" or true, which pydantic would take.
    if isinstance(value, bool | str):
        raise ValueError("expected a JSON integer")
    return value


BodyId = Annotated[DbId, BeforeValidator(_json_integer)]
"""A :data:`DbId` in a JSON body: a JSON number without a fraction, not ``"7"`` or ``true``."""

# Years the service accepts, as written: anything else is a typo or an attack, and
# far-away times overflow date arithmetic in the databases and in numpy.
FIRST_YEAR, LAST_YEAR = 1970, 2099

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]


def _iso_text(value: object) -> object:
    # pydantic would read a bare number as epoch seconds or milliseconds depending on its
    # size; the API speaks ISO-8601 only, so refuse numbers rather than guess.
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("expected an ISO-8601 date and time such as 2021-12-01T10:00:00")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date and time out of range once converted to UTC") from None


def _year_in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"expected a year from {FIRST_YEAR} to {LAST_YEAR}, got {value.year}")
    return value


UtcTime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_year_in_range),  # as written, before the offset is applied
    AfterValidator(_as_utc),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": r"^(19[7-9][0-9]|20[0-9][0-9])-",
            "description": f"ISO-8601, year {FIRST_YEAR} to {LAST_YEAR}",
        }
    ),
]
"""An ISO-8601 date and time of the years 1970 to 2099; naive means UTC, an offset is
converted to UTC."""


class ErrorDetail(BaseModel):
    """An error with a message that says what was wrong."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer these error codes with an ErrorDetail."""
    return {code: {"model": ErrorDetail} for code in codes}


NOT_FOUND = error_responses(404)


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="where: query, path or body, then the name")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrors(BaseModel):
    """A 422: what was wrong with each bad parameter (FastAPI's validation errors)."""

    detail: list[ValidationIssue]


def now_utc() -> datetime:
    return datetime.now(UTC)


class User(BaseModel):
    id: int
    gender: int | None
    age: int | None
    country: str | None
    city: str | None
    exp_group: int | None = Field(description="legacy cohort 0-4 of the data, not the A/B arm")
    os: str | None
    source: str | None


class Post(BaseModel):
    id: int
    text: str
    topic: str


class FeedEvent(BaseModel):
    time: datetime
    user_id: int
    post_id: int
    action: Literal["view", "like"]
    target: int = Field(description="1 on a view followed by a like, else 0")

    @classmethod
    def from_event(cls, event: queries.FeedEvent) -> Self:
        return cls(
            time=event.time.replace(tzinfo=UTC),
            user_id=event.user_id,
            post_id=event.post_id,
            action=event.action,  # type: ignore[arg-type]  # the table holds view or like
            target=event.target,
        )


class Recommendations(BaseModel):
    exp_group: Literal["control", "test"]
    recommendations: list[Post]


class ActionIn(BaseModel):
    """A view or a like reported by a feed client."""

    model_config = ConfigDict(extra="forbid")

    user_id: BodyId
    post_id: BodyId
    action: Literal["view", "like"]
    time: UtcTime | None = Field(default=None, description="ISO-8601; default now")
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the client's id of this event (e.g. a UUID); a retry with the same id "
        "returns the stored event (200) instead of storing it twice",
    )


class ActionOut(FeedEvent):
    views_marked: int = Field(description="earlier views of the post this like set target=1 on")

    @classmethod
    def from_recorded(cls, recorded: queries.RecordedAction) -> "ActionOut":
        event = FeedEvent.from_event(recorded.event)
        return cls(**event.model_dump(), views_marked=recorded.views_marked)


class RecommenderInfo(BaseModel):
    experiment: str | None = Field(description="None: the default, outside experiments")
    arm: str
    name: str
    version: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    posts: int
    users: int
    likes: int
    recommenders: list[RecommenderInfo]
    started_at: datetime


class Liveness(BaseModel):
    status: Literal["live"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    state_loaded: bool = Field(description="catalogue, users, likes and models in memory")
    database: bool = Field(description="the database answers")


class ArmInfo(BaseModel):
    name: str
    weight: int = Field(description="percent of the buckets")
    buckets: tuple[int, int] = Field(description="[first, last] bucket (0-9999) of the arm")
    covered_buckets: int = Field(description="buckets from the first that are in the experiment")
    recommender: str
    bundle: str = Field(description="folder under FEEDLAB_ARTIFACTS")
    model_version: str


class ExperimentInfo(BaseModel):
    name: str
    description: str
    salt: str
    start: datetime
    end: datetime | None
    coverage: float = Field(description="percent of users in the experiment")
    running: bool = Field(description="whether a request now belongs to it")
    arms: list[ArmInfo]
    forced: dict[str, list[int]]


class ArmCounts(BaseModel):
    exposures: int
    users: int


class ExperimentDetail(ExperimentInfo):
    counts: dict[str, ArmCounts] = Field(
        description="exposures and distinct users per arm, as stored in the database now "
        "(exposures still buffered by the service are not counted yet)"
    )
