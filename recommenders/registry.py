"""Recommenders by name, for the command line and the service."""

from collections.abc import Callable

from recommenders.base import Recommender
from recommenders.baselines import PopularityRecommender, RandomRecommender
from recommenders.catboost_model import CatBoostRecommender
from recommenders.neural import NeuralRecommender
from recommenders.peers import EASERecommender

FACTORIES: dict[str, Callable[[], Recommender]] = {
    PopularityRecommender.name: PopularityRecommender,
    RandomRecommender.name: RandomRecommender,
    CatBoostRecommender.name: CatBoostRecommender,
    EASERecommender.name: EASERecommender,
    NeuralRecommender.name: NeuralRecommender,
}


def make_recommender(name: str) -> Recommender:
    """A new, unfitted recommender called ``name``."""
    try:
        return FACTORIES[name]()
    except KeyError:
        known = ", ".join(sorted(FACTORIES))
        raise ValueError(f"unknown recommender {name!r}; known: {known}") from None
