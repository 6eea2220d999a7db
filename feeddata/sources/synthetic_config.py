"""The synthetic social network's size, seed and calendar."""

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

# The original course database: its post topics, in order of size.
COURSE_TOPIC_COUNTS = {
    "movie": 3000,
    "covid": 1799,
    "business": 510,
    "sport": 510,
    "politics": 417,
    "tech": 401,
    "entertainment": 386,
}
COURSE_USERS = 163_205
COURSE_POSTS = sum(COURSE_TOPIC_COUNTS.values())  # 7,023
COURSE_DAYS = 89  # 2021-10-01 up to 2021-12-29
COURSE_START = dt.date(2021, 10, 1)
DEMO_END = dt.date(2021, 12, 30)
"""The day after the demo network: it ends on the course data's last day, 2021-12-29, so
the shipped experiment (experiments.toml, from 2021-12-30) starts right after it."""
# 68.7 million views over 163,205 users and 89 days
COURSE_VIEWS_PER_USER_DAY = 68.7e6 / (COURSE_USERS * COURSE_DAYS)


@dataclass(frozen=True)
class SyntheticConfig:
    """How big a synthetic network to generate, and from which seed.

    ``SyntheticConfig.course()`` has the original course database's size;
    ``SyntheticConfig.demo()`` is small enough to generate, train and serve in minutes.
    """

    users: int
    posts: int
    days: int
    seed: int = 42
    start: dt.date = COURSE_START
    views_per_user_day: float = COURSE_VIEWS_PER_USER_DAY
    like_rate: float = 0.11
    """Target share of views that are liked; the ground truth's intercept is calibrated to it."""
    feed_popular_share: float = 0.50
    """Share of views the old feed drew from its (drifting, Zipf) popularity ranking."""
    feed_topical_share: float = 0.40
    """Share of views the old feed drew for the user: favourite topics, then latent taste.
    The rest of the views show a post at random."""

    def __post_init__(self) -> None:
        for name in ("users", "posts", "days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.posts < len(COURSE_TOPIC_COUNTS):
            raise ValueError(
                f"posts must be at least {len(COURSE_TOPIC_COUNTS)} (one per topic), "
                f"got {self.posts}"
            )
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        if self.views_per_user_day <= 0:
            raise ValueError(f"views_per_user_day must be positive, got {self.views_per_user_day}")
        shares = (self.feed_popular_share, self.feed_topical_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(
                "feed_popular_share and feed_topical_share must be non-negative and sum to "
                f"at most 1, got {shares[0]} and {shares[1]}"
            )
        if not 0.01 <= self.like_rate <= 0.5:
            raise ValueError(f"like_rate must be between 0.01 and 0.5, got {self.like_rate}")

    @classmethod
    def course(cls, **overrides: Any) -> "SyntheticConfig":
        """The original's scale: 163,205 users, 7,023 posts, 89 days (about 77M feed rows)."""
        base = cls(users=COURSE_USERS, posts=COURSE_POSTS, days=COURSE_DAYS)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def demo(cls, **overrides: Any) -> "SyntheticConfig":
        """A small network: 5,000 users, 1,000 posts, the 30 days (under a million feed rows)
        up to the course's last day, 2021-12-29; other ``days`` end on that day too.

        >>> config = SyntheticConfig.demo(days=3)
        >>> config.start.isoformat(), config.end.isoformat()
        ('2021-12-27', '2021-12-30')
        """
        fields: dict[str, Any] = {"users": 5_000, "posts": 1_000, "days": 30, **overrides}
        if isinstance(fields["days"], int) and "start" not in fields:
            fields["start"] = DEMO_END - dt.timedelta(days=fields["days"])
        return cls(**fields)

    @property
    def end(self) -> dt.date:
        """The first day after the generated period."""
        return self.start + dt.timedelta(days=self.days)

    def topic_counts(self) -> dict[str, int]:
        """Posts per topic: the course's counts, scaled to ``posts`` (largest remainder)."""
        total = COURSE_POSTS
        exact = {t: n * self.posts / total for t, n in COURSE_TOPIC_COUNTS.items()}
        counts = {t: max(1, int(x)) for t, x in exact.items()}
        by_remainder = sorted(exact, key=lambda t: exact[t] - int(exact[t]), reverse=True)
        i = 0
        while sum(counts.values()) < self.posts:
            counts[by_remainder[i % len(by_remainder)]] += 1
            i += 1
        while sum(counts.values()) > self.posts:
            largest = max(counts, key=lambda t: counts[t])
            counts[largest] -= 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the date as ISO text)."""
        fields = dataclasses.asdict(self)
        fields["start"] = self.start.isoformat()
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "SyntheticConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticConfig field(s): {', '.join(unknown)}")
        values = dict(fields)
        if isinstance(values.get("start"), str):
            values["start"] = dt.date.fromisoformat(values["start"])
        return cls(**values)
