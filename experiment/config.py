"""The experiment file: experiments with their salt, arms, dates and forced assignments.

A TOML (or YAML) file with a list ``experiments``; see ``experiments.toml`` at the root of
the repository. Loading checks everything that can be checked without the model bundles
and raises :class:`ExperimentConfigError` with a message that says what to fix.
"""

import itertools
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from experiment.assignment import BucketRange, arm_of_bucket, bucket, bucket_ranges

ARM_NAMES = ("control", "test")


class ExperimentConfigError(ValueError):
    """The experiment file is missing, unreadable or wrong; the message says what to fix."""


def _utc(value: Any) -> Any:
    # TOML gives dates, naive or aware datetimes; strings are ISO-8601. Naive means UTC.
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date or date and time") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_utc)]


class ArmConfig(BaseModel):
    """One arm: its share of the buckets and the recommender bundle it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["control", "test"]
    weight: int = Field(ge=1, le=99, description="whole percent of the buckets")
    recommender: str = Field(min_length=1, description="a name known to recommenders.registry")
    bundle: str | None = Field(
        default=None, description="folder under FEEDLAB_ARTIFACTS; default: the recommender name"
    )

    @property
    def bundle_dir(self) -> str:
        return self.bundle or self.recommender


@dataclass(frozen=True)
class Assignment:
    """Where a user stands in an experiment."""

    experiment: str
    arm: str
    bucket: int
    forced: bool = False


class ExperimentConfig(BaseModel):
    """An A/B experiment: control first, then test; active from ``start`` until ``end``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    salt: str = Field(min_length=1)
    start: UtcDateTime
    end: UtcDateTime | None = None
    coverage: float = Field(default=100.0, gt=0, le=100, description="percent of users in it")
    arms: tuple[ArmConfig, ...]
    forced: dict[str, tuple[int, ...]] = Field(
        default_factory=dict, description="arm name -> user ids served that arm (QA)"
    )

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        names = tuple(arm.name for arm in self.arms)
        if names != ARM_NAMES:
            raise ValueError(
                f"arms must be exactly 'control' then 'test', got {list(names)}; "
                "configure two [[experiments.arms]] tables in that order"
            )
        total = sum(arm.weight for arm in self.arms)
        if total != 100:
            weights = ", ".join(f"{arm.name} {arm.weight}" for arm in self.arms)
            raise ValueError(f"arm weights must sum to 100, got {total} ({weights})")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        unknown = set(self.forced) - set(names)
        if unknown:
            raise ValueError(f"forced names unknown arm(s) {sorted(unknown)}; use control or test")
        seen: dict[int, str] = {}
        for arm, users in self.forced.items():
            for user in users:
                if user in seen and seen[user] != arm:
                    raise ValueError(
                        f"user {user} is forced into both {seen[user]!r} and {arm!r}; "
                        "keep it in one list"
                    )
                seen[user] = arm
        return self

    @property
    def ranges(self) -> tuple[BucketRange, ...]:
        return bucket_ranges({arm.name: arm.weight for arm in self.arms}, self.coverage)

    def arm(self, name: str) -> ArmConfig:
        return next(arm for arm in self.arms if arm.name == name)

    def is_active(self, at: datetime) -> bool:
        """Whether a request at ``at`` (aware) falls in [start, end)."""
        return self.start <= at and (self.end is None or at < self.end)

    def assign(self, user_id: int) -> Assignment | None:
        """The user's arm: forced, else by bucket; None when outside coverage."""
        value = bucket(self.salt, user_id)
        for arm, users in self.forced.items():
            if user_id in users:
                return Assignment(self.name, arm, value, forced=True)
        hashed = arm_of_bucket(self.ranges, value)
        return None if hashed is None else Assignment(self.name, hashed, value)


class ExperimentsFile(BaseModel):
    """The whole file: experiments with distinct names that never run at the same time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiments: tuple[ExperimentConfig, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> "ExperimentsFile":
        names = [e.name for e in self.experiments]
        if duplicated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"experiment names must be unique; repeated: {duplicated}")
        ordered = sorted(self.experiments, key=lambda e: e.start)
        for earlier, later in itertools.pairwise(ordered):
            if earlier.end is None or earlier.end > later.start:
                raise ValueError(
                    f"experiments {earlier.name!r} and {later.name!r} overlap in time; one "
                    f"feed serves one experiment at a time: end {earlier.name!r} at or before "
                    f"{later.start.isoformat()}"
                )
        return self

    def active_at(self, at: datetime) -> ExperimentConfig | None:
        """The experiment running at ``at``, if any."""
        return next((e for e in self.experiments if e.is_active(at)), None)

    def get(self, name: str) -> ExperimentConfig | None:
        return next((e for e in self.experiments if e.name == name), None)


def load_experiments(path: Path) -> ExperimentsFile:
    """Read and check the experiment file at ``path`` (``.toml``, ``.yaml`` or ``.yml``)."""
    if not path.is_file():
        raise ExperimentConfigError(
            f"FEEDLAB_EXPERIMENTS points at {path}, which is not a file; fix the path or "
            "unset it to serve without an experiment"
        )
    try:
        raw = _parse(path)
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise ExperimentConfigError(f"{path} is not valid {path.suffix[1:]}: {error}") from None
    try:
        return ExperimentsFile.model_validate(raw)
    except ValidationError as error:
        lines = [f"  {_where(raw, err['loc'])}: {_message(err)}" for err in error.errors()]
        raise ExperimentConfigError(f"{path} needs fixing:\n" + "\n".join(lines)) from None


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(str(error)) from None
    if path.suffix != ".toml":
        raise ValueError(f"unknown format {path.suffix!r}; use .toml, .yaml or .yml")
    return tomllib.loads(text)


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """A readable location such as ``experiment 'feed-ab', arms[1].weight``."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int) and parts and parts[-1] == "experiments":
            name = node[key].get("name") if isinstance(node[key], dict) else None
            parts[-1] = f"experiment {name!r}" if name else f"experiments[{key}]"
        elif isinstance(key, int):
            parts[-1] += f"[{key}]"
        else:
            parts.append(str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    if not parts:
        return "file"
    return ", ".join([parts[0], ".".join(parts[1:])]) if len(parts) > 1 else parts[0]


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
