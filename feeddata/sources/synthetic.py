"""A synthetic social network in the course's tables, with a saved hidden preference model.

The generative model, in the order it is drawn (each part from its own seeded stream):

* **Users** (``user_data``): ids from 200 with a few gaps; mostly Russia, cities per country
  (Zipf), 55 % men, ages 14-90 skewed young (median about 24), Android/iOS, ads/organic,
  a legacy cohort ``exp_group`` 0-4.
* **Posts** (``post_text_df``): the course's topic mix (movie, covid, business, sport,
  politics, tech, entertainment), shuffled over ids 1..N. Texts mix words from a per-topic
  vocabulary with common words: film reviews are long, covid tweets short, the rest news.
  Each post leans on one of four word groups (subtopics) of its topic.
* **Tastes** (:class:`GroundTruth`): a view of post i by user u at UTC hour h is liked with
  probability ``sigmoid(intercept + user_bias[u] + post_quality[i] + affinity[u, topic(i)]
  + user_factors[u] . post_factors[i] + hour_effect[h])``. Topic affinity depends on age,
  gender and country plus a personal part; the rank-8 latent factors of posts cluster by
  topic and subtopic; the user bias holds a like propensity and small os/source effects.
  The intercept is calibrated so that about ``config.like_rate`` of the generated views
  are liked.
* **Activity**: each user has lognormal expected views per day and a share of days on which
  they show up at all; weekends are a little busier. On such a day the user opens a Poisson
  number of sessions (a few a day for heavy users, one every few days for light ones), each
  starting by an hour-of-day curve (Russian evenings) and holding 1 + negative binomial
  views (mean 16) about half a minute apart, so the hour after a view usually holds several.
* **Feed** (``feed_data``): the logged feed was served by an old recommender, and each view
  shows a post from a mixture of three draws:

  - *popular* (``feed_popular_share``, 50 %): a Zipf law (exponent 1.4) over the posts
    ranked by appeal, which is mostly post quality (correlation 0.8) and partly luck.
    Posts come out on a hidden day (uniformly from 60 days before the start to the end)
    and are shown only from then; a new post's weight is tripled and the boost fades over
    about a week, so the popular set drifts while high-appeal posts stay near the top;
  - *personal* (``feed_topical_share``, 40 %): a topic by its popularity mass times
    ``exp(1.5 * affinity[u, topic])``, then the best of 32 random posts of that topic by
    ``4 * user_factors[u] . post_factors[i] + 0.3 * log(popularity)`` plus Gumbel noise;
  - *exploration* (the rest, 10 %): a post out by then, uniformly at random.

  The feed does not show a user a post they liked before, nor one post twice in a day
  (redrawn a few times at most). Popularity is thus a strong but beatable baseline: the
  hidden tastes and the drift leave room for a model. A liked view gets ``target = 1`` and a
  ``like`` row seconds to minutes later. A user likes a post at most once. The like
  intercept is calibrated on a sample of feed views, then corrected once by simulating the
  whole period for a subsample of users.

Every day has its own random stream (``SeedSequence(seed, spawn_key=(4, day))``), so the
output is the same however it is chunked. Memory holds one day at a time.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from feeddata.db import Bind, count_rows, missing_tables
from feeddata.loading import Chunk, load
from feeddata.schema import TABLES
from feeddata.sources.synthetic_config import SyntheticConfig
from feeddata.sources.synthetic_feed import LikedPairs, PostSampler, calibrate, simulate_day
from feeddata.sources.synthetic_truth import GroundTruth, like_probability
from feeddata.sources.synthetic_world import World, make_world

__all__ = [
    "DatabaseNotEmptyError",
    "GenerationReport",
    "GroundTruth",
    "SyntheticConfig",
    "expected_feed_rows",
    "generate",
    "ground_truth",
    "iter_chunks",
    "like_probability",
]

CHUNK_ROWS = 250_000
SOURCE = "synthetic"


class DatabaseNotEmptyError(RuntimeError):
    """The target database already holds rows of the social network's tables."""


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate` wrote."""

    rows: dict[str, int]
    views: int
    likes: int
    truth_dir: Path
    seconds: float

    @property
    def like_rate(self) -> float:
        return self.likes / self.views if self.views else 0.0


def _prepare(config: SyntheticConfig) -> tuple[World, GroundTruth]:
    world = make_world(config)
    truth = world.truth.with_intercept(calibrate(world.truth, config))
    return world, truth


def ground_truth(config: SyntheticConfig) -> GroundTruth:
    """The calibrated ground truth of ``config``, without generating the feed."""
    return _prepare(config)[1]


def expected_feed_rows(config: SyntheticConfig) -> int:
    """About how many feed rows (views and likes) ``config`` generates."""
    return round(config.users * config.views_per_user_day * config.days * (1 + config.like_rate))


def iter_chunks(config: SyntheticConfig, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The whole network as loader chunks: users, posts, then the feed day by day.

    Pure generation, no database. The rows do not depend on ``chunk_rows``.
    """
    world, truth = _prepare(config)
    return _chunks(config, world, truth, chunk_rows)


def _chunks(
    config: SyntheticConfig, world: World, truth: GroundTruth, chunk_rows: int
) -> Iterator[Chunk]:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    for table, frame in (("user_data", world.users), ("post_text_df", world.posts)):
        for first in range(0, len(frame), chunk_rows):
            yield Chunk(table, frame.iloc[first : first + chunk_rows], SOURCE, first + 1)
    sampler = PostSampler(truth, config)
    liked = LikedPairs(len(truth.post_ids))
    first_row = 1
    for day in range(config.days):
        rows = simulate_day(truth, sampler, liked, config, day)
        for first in range(0, len(rows), chunk_rows):
            part = rows.iloc[first : first + chunk_rows].reset_index(drop=True)
            yield Chunk("feed_data", part, f"{SOURCE} day {day + 1}", first_row + first)
        first_row += len(rows)


def generate(
    bind: Bind,
    config: SyntheticConfig,
    *,
    truth_dir: str | Path,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> GenerationReport:
    """Generate the network into an empty database in one atomic import, then save its
    ground truth into ``truth_dir``.

    Raises :class:`DatabaseNotEmptyError` if any of the three tables already has rows.
    """
    absent = missing_tables(bind)
    filled = {t: n for t in TABLES if t not in absent and (n := count_rows(bind, t))}
    if filled:
        held = ", ".join(f"{table} has {n:,} rows" for table, n in filled.items())
        raise DatabaseNotEmptyError(
            f"the database is not empty ({held}); generate into a fresh database "
            "(a new SQLite file or an empty PostgreSQL database)"
        )
    started = time.perf_counter()
    world, truth = _prepare(config)
    counts = {"view": 0, "like": 0}

    def counted() -> Iterator[Chunk]:
        for chunk in _chunks(config, world, truth, chunk_rows):
            if chunk.table == "feed_data":
                likes = int((chunk.rows["action"] == "like").sum())
                counts["like"] += likes
                counts["view"] += len(chunk.rows) - likes
            yield chunk

    total = len(world.users) + len(world.posts) + expected_feed_rows(config)
    loaded = load(bind, counted(), total_rows=total, description="generate", progress=progress)
    folder = truth.save(truth_dir)
    return GenerationReport(
        rows=dict(loaded.rows),
        views=counts["view"],
        likes=counts["like"],
        truth_dir=folder,
        seconds=time.perf_counter() - started,
    )
