"""What the service holds in memory from start, so a recommendation never queries the
database: the post catalogue, the user ids, the like history and the recommenders."""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from feeddata.interactions import Interactions, read_interactions, read_posts
from feeddata.queries import NotFoundError, all_user_ids
from recommenders.base import META_FILE, Recommender, TrainingData
from recommenders.baselines import PopularityRecommender
from recommenders.history import LikeHistory

log = logging.getLogger("feedlab.api")

ArmName = Literal["control", "test"]
CONTROL: ArmName = "control"
POPULARITY_BUNDLE = "popular"


@dataclass(frozen=True)
class PostCard:
    """A post as the feed shows it."""

    id: int
    text: str
    topic: str


@dataclass(frozen=True)
class Recommendation:
    exp_group: ArmName
    posts: list[PostCard]


@dataclass(frozen=True)
class Catalogue:
    """Post texts and topics as arrays aligned with the sorted ``post_ids``."""

    post_ids: np.ndarray
    texts: np.ndarray
    topics: np.ndarray

    @classmethod
    def from_frame(cls, posts: pd.DataFrame) -> "Catalogue":
        """From :func:`~feeddata.interactions.read_posts`'s frame (indexed by post_id)."""
        return cls(
            posts.index.to_numpy(np.int64),
            posts["text"].to_numpy(object),
            posts["topic"].to_numpy(object),
        )

    def __len__(self) -> int:
        return len(self.post_ids)

    def cards(self, post_ids: np.ndarray) -> list[PostCard]:
        positions = np.searchsorted(self.post_ids, post_ids)
        return [
            PostCard(int(self.post_ids[i]), str(self.texts[i]), str(self.topics[i]))
            for i in positions
        ]


class ServiceState:
    """The service's memory. :meth:`recommender_for` is the seam where the A/B experiment
    will route each user to an arm; until then every user gets the control arm."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalogue: Catalogue,
        user_ids: np.ndarray,
        history: LikeHistory,
        control: Recommender,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.user_ids = np.asarray(user_ids, dtype=np.int64)
        self.history = history
        self.control = control
        self.started_at = datetime.now(UTC)

    @classmethod
    def load(cls, engine: Engine, artifacts: Path) -> "ServiceState":
        """Read the catalogue, the users and every like; load the popularity bundle from
        ``<artifacts>/popular``, or fit one in memory when there is none."""
        catalogue = Catalogue.from_frame(read_posts(engine))
        user_ids = all_user_ids(bind=engine)
        likes = read_interactions(engine, likes_only=True, progress=False)
        history = LikeHistory(catalogue.post_ids, likes)
        control = load_or_fit_popularity(artifacts / POPULARITY_BUNDLE, likes, catalogue, user_ids)
        log.info(
            "loaded %d posts, %d users, %d likes; control recommender %s",
            len(catalogue),
            len(user_ids),
            history.n_likes,
            control.version,
        )
        return cls(
            engine=engine, catalogue=catalogue, user_ids=user_ids, history=history, control=control
        )

    def has_user(self, user_id: int) -> bool:
        i = int(np.searchsorted(self.user_ids, user_id))
        return i < len(self.user_ids) and int(self.user_ids[i]) == user_id

    def arms(self) -> dict[ArmName, Recommender]:
        """Every arm served and its recommender."""
        return {CONTROL: self.control}

    def recommender_for(self, user_id: int) -> tuple[ArmName, Recommender]:
        """The experiment arm of ``user_id`` and the recommender that serves it."""
        return CONTROL, self.control

    def recommend(self, user_id: int, time: int, limit: int) -> Recommendation:
        """The ``limit`` best posts for ``user_id`` at ``time`` (epoch seconds), from memory."""
        if not self.has_user(user_id):
            raise NotFoundError("user", user_id)
        arm, recommender = self.recommender_for(user_id)
        post_ids = recommender.recommend(user_id, time, limit, self.history)
        return Recommendation(arm, self.catalogue.cards(post_ids))

    def record_like(self, user_id: int, post_id: int, time: datetime) -> None:
        """Make a like just stored in the database count for the next recommendations."""
        self.history.add_like(user_id, post_id, math.floor(time.replace(tzinfo=UTC).timestamp()))


def load_or_fit_popularity(
    directory: Path, likes: Interactions, catalogue: Catalogue, user_ids: np.ndarray
) -> Recommender:
    """The popularity bundle in ``directory``; fitted on ``likes`` when there is none."""
    if (directory / META_FILE).is_file():
        return PopularityRecommender.load(directory)
    log.info("no popularity bundle at %s; fitting one in memory", directory)
    return fit_popularity(likes, catalogue, user_ids)


def fit_popularity(
    likes: Interactions, catalogue: Catalogue, user_ids: np.ndarray
) -> PopularityRecommender:
    """Popularity fitted on every like; it keeps no state beyond its metadata, since the
    counts come from the live :class:`LikeHistory` at request time."""
    last = int(likes.timestamp.max()) if len(likes) else 0
    until = max(last + 1, math.ceil(datetime.now(UTC).timestamp()))
    posts = pd.DataFrame(
        {"text": catalogue.texts, "topic": catalogue.topics},
        index=pd.Index(catalogue.post_ids, name="post_id"),
    )
    users = pd.DataFrame(index=pd.Index(user_ids, name="user_id"))
    return PopularityRecommender().fit(TrainingData(likes, posts, users, until))
