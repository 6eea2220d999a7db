"""What the service holds in memory from start, so a recommendation never queries the
database: the post catalogue, the user ids, the like history and the recommenders (routed
by the experiment), and the exposure log that writes what was shown in the background."""

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from experiment.bundles import BundleError, load_bundle
from experiment.config import ExperimentsFile
from experiment.exposure_log import ExposureLog
from experiment.routing import Route, Router, ServedModel
from feeddata.exposures import Exposure
from feeddata.interactions import Interactions, read_interactions, read_posts
from feeddata.queries import NotFoundError, all_user_ids
from recommenders.base import META_FILE, Recommender, TrainingData
from recommenders.baselines import PopularityRecommender
from recommenders.history import LikeHistory

log = logging.getLogger("feedlab.api")

POPULARITY_BUNDLE = "popular"


@dataclass(frozen=True)
class PostCard:
    """A post as the feed shows it."""

    id: int
    text: str
    topic: str


@dataclass(frozen=True)
class Recommendation:
    """A response: the arm it reports, the posts, and the id of its exposure."""

    request_id: str
    route: Route
    posts: list[PostCard]

    @property
    def exp_group(self) -> str:
        return self.route.arm


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
    """The service's memory. :attr:`router` picks each user's arm and recommender; every
    response is handed to :attr:`exposure_log` when one is attached."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalogue: Catalogue,
        user_ids: np.ndarray,
        history: LikeHistory,
        router: Router,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.user_ids = np.asarray(user_ids, dtype=np.int64)
        self.history = history
        self.router = router
        self.exposure_log: ExposureLog | None = None
        self.started_at = datetime.now(UTC)

    @classmethod
    def load(
        cls, engine: Engine, artifacts: Path, experiments: ExperimentsFile | None = None
    ) -> "ServiceState":
        """Read the catalogue, the users and every like; load the popularity bundle from
        ``<artifacts>/popular`` (fitted in memory when there is none) as the default
        recommender, and every experiment arm's bundle (which must exist)."""
        catalogue = Catalogue.from_frame(read_posts(engine))
        user_ids = all_user_ids(bind=engine)
        likes = read_interactions(engine, likes_only=True, progress=False)
        history = LikeHistory(catalogue.post_ids, likes)
        default = load_or_fit_popularity(artifacts / POPULARITY_BUNDLE, likes, catalogue, user_ids)
        router = Router.load(experiments or ExperimentsFile(), artifacts, default)
        check_bundles_fit(router.served(), user_ids, history)
        log.info(
            "loaded %d posts, %d users, %d likes; default recommender %s; %d experiment(s)",
            len(catalogue),
            len(user_ids),
            history.n_likes,
            default.version,
            len(router.experiments.experiments),
        )
        return cls(
            engine=engine, catalogue=catalogue, user_ids=user_ids, history=history, router=router
        )

    def has_user(self, user_id: int) -> bool:
        i = int(np.searchsorted(self.user_ids, user_id))
        return i < len(self.user_ids) and int(self.user_ids[i]) == user_id

    def served(self) -> list[ServedModel]:
        """Every recommender served: the default, then each experiment arm's."""
        return self.router.served()

    def recommend(
        self, user_id: int, time: int, limit: int, *, request_id: str | None = None
    ) -> Recommendation:
        """The ``limit`` best posts for ``user_id`` at ``time`` (epoch seconds), from memory,
        from the user's arm; the response is logged as an exposure with id ``request_id``
        (default: a new one)."""
        if not self.has_user(user_id):
            raise NotFoundError("user", user_id)
        at = datetime.fromtimestamp(time, UTC)
        route = self.router.route(user_id, at)
        post_ids = route.recommender.recommend(user_id, time, limit, self.history)
        request_id = request_id or uuid.uuid4().hex
        if self.exposure_log is not None:
            self.exposure_log.log(_exposure(request_id, route, user_id, at, post_ids))
        return Recommendation(request_id, route, self.catalogue.cards(post_ids))

    def record_like(self, user_id: int, post_id: int, time: datetime) -> None:
        """Make a like just stored in the database count for the next recommendations."""
        self.history.add_like(user_id, post_id, math.floor(time.replace(tzinfo=UTC).timestamp()))


def check_bundles_fit(
    served: list[ServedModel], user_ids: np.ndarray, history: LikeHistory
) -> None:
    """Rank once with every served model, so a bundle trained on another catalogue stops
    the start instead of failing every request of its arm later."""
    if not len(user_ids):
        return
    now = math.floor(datetime.now(UTC).timestamp())
    for model in served:
        try:
            model.recommender.recommend(int(user_ids[0]), now, 1, history)
        except ValueError as error:
            where = (
                f"experiment {model.experiment!r}, arm {model.arm!r}"
                if model.experiment
                else "the default recommender"
            )
            raise BundleError(
                f"{where}: the {model.recommender.name!r} bundle {model.recommender.version} "
                f"does not fit this database: {error}"
            ) from None


def _exposure(
    request_id: str, route: Route, user_id: int, at: datetime, post_ids: np.ndarray
) -> Exposure:
    assignment = route.assignment
    return Exposure(
        request_id=request_id,
        experiment=assignment.experiment if assignment else None,
        arm=route.arm,
        bucket=assignment.bucket if assignment else None,
        forced=assignment.forced if assignment else False,
        user_id=user_id,
        request_time=at.replace(tzinfo=None),
        served_at=datetime.now(UTC).replace(tzinfo=None),
        recommender=route.recommender.name,
        model_version=route.recommender.version,
        post_ids=tuple(int(p) for p in post_ids),
    )


def load_or_fit_popularity(
    directory: Path, likes: Interactions, catalogue: Catalogue, user_ids: np.ndarray
) -> Recommender:
    """The popularity bundle in ``directory``; fitted on ``likes`` when there is none.
    A bundle that is there but cannot be loaded is a
    :class:`~experiment.bundles.BundleError`, not a refit."""
    if (directory / META_FILE).is_file():
        return load_bundle(PopularityRecommender, directory)
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
