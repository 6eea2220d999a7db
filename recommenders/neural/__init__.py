"""The neural recommender (the experiment's test arm); see :mod:`recommenders.neural.model`."""

from recommenders.neural.model import NeuralParams, NeuralRecommender

__all__ = ["NeuralParams", "NeuralRecommender"]
