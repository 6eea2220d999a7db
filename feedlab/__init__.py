"""feedlab: an A/B testing platform for feed recommenders."""

__version__ = "0.1.0"
