"""The neural model's sizes, shared by the torch module and the numpy scorer; this module
imports no torch, so a service that only scores never loads it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Sizes the module is built with; saved with the weights."""

    n_posts: int
    n_topics: int
    text_dims: int
    profile_sizes: tuple[int, ...]
    dims: int
    heads: int
    tower: bool
    attention: bool
    ids: bool
    text: bool
    features: bool

    @property
    def pad(self) -> int:
        """The history padding index (one past the last post)."""
        return self.n_posts
