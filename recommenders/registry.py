"""Recommenders by name, for the command line and the service."""

from collections.abc import Callable

from recommenders.base import Recommender
from recommenders.baselines import PopularityRecommender, RandomRecommender

FACTORIES: dict[str, Callable[[], Recommender]] = {
    PopularityRecommender.name: PopularityRecommender,
    RandomRecommender.name: RandomRecommender,
}


def make_recommender(name: str) -> Recommender:
    """A new, unfitted recommender called ``name``."""
    try:
        return FACTORIES[name]()
    except KeyError:
        known = ", ".join(sorted(FACTORIES))
        raise ValueError(f"unknown recommender {name!r}; known: {known}") from None
