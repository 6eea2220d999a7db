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
    profile: bool = True
    """Profile embeddings join the user tower's query (else the hour of day alone)."""
    head_dims: int = 32
    """Hidden units of the feature head."""

    @property
    def pad(self) -> int:
        """The history padding index (one past the last post)."""
        return self.n_posts
