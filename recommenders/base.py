"""The interface every recommender implements, and its model bundle on disk.

A recommender is fitted on data before a time, then ranks the catalogue for a user at a
request time. ``fit`` and ``recommend`` are template methods: they check their arguments
and state, then call the subclass's ``_fit`` and ``_scores``. Ranking, exclusion of posts
the user already liked and deterministic tie-breaking live here, once.
"""

import json
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from threadpoolctl import threadpool_limits

from feeddata.interactions import Interactions
from recommenders.history import LikeHistory

BUNDLE_SCHEMA_VERSION = 2
"""2: meta.json lists the bundle's files and sizes; neural bundles hold co-likes snapshots."""
META_FILE = "meta.json"


@dataclass(frozen=True)
class TrainingData:
    """What a recommender may learn from: events strictly before ``until``, the catalogue
    (``posts`` indexed by post_id) and the user profiles (``users`` indexed by user_id)."""

    interactions: Interactions
    posts: pd.DataFrame
    users: pd.DataFrame
    until: int

    @classmethod
    def cut(
        cls, interactions: Interactions, posts: pd.DataFrame, users: pd.DataFrame, until: int
    ) -> "TrainingData":
        return cls(interactions.before(until), posts, users, until)


class BundleMeta(BaseModel):
    """Says exactly how a bundle was made; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    schema_version: int = BUNDLE_SCHEMA_VERSION
    created_at: str
    trained_until: int
    params: dict[str, Any]
    rows: dict[str, int]
    metrics: dict[str, float] = {}
    code_version: str = ""
    files: dict[str, int] = {}
    """The bundle's other files (paths relative to it) and their sizes in bytes, so that a
    missing or cut file is found without loading the model."""


class NotFittedError(RuntimeError):
    pass


class Recommender(ABC):
    """Base class: ``fit`` -> ``_fit``; ``recommend`` -> ``_scores`` + shared ranking."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.meta: BundleMeta | None = None
        self.fit_metrics: dict[str, float] = {}
        """Offline metrics ``_fit`` measured (held-out AUC, validation hit@5, ...); they go
        into the bundle's meta."""

    @property
    def is_fitted(self) -> bool:
        return self.meta is not None

    @property
    def version(self) -> str:
        return self.meta.version if self.meta else "unfitted"

    def params(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-serialisable; saved in the bundle."""
        return {}

    def fit(self, data: TrainingData) -> Self:
        """Learn from ``data`` (nothing at or after ``data.until``); returns ``self``."""
        if len(data.interactions) and int(data.interactions.timestamp.max()) >= data.until:
            raise ValueError("training interactions must all be before `until`")
        rows = self._fit(data)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.meta = BundleMeta(
            name=self.name,
            version=f"{self.name}-{data.until}-{_short_hash(self.params(), rows)}",
            created_at=stamp,
            trained_until=data.until,
            params=self.params(),
            rows=rows,
            metrics=self.fit_metrics,
            code_version=code_version(),
        )
        return self

    def recommend(self, user_id: int, time: int, k: int, history: LikeHistory) -> np.ndarray:
        """The ``k`` best post ids for ``user_id`` at ``time`` (seconds since epoch), best
        first, excluding posts the user liked before ``time``. Fewer than ``k`` only when
        the catalogue has no more posts to offer."""
        if not self.is_fitted:
            raise NotFittedError(f"{self.name} recommender is not fitted; call fit() or load()")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = np.asarray(self._scores(int(user_id), int(time), history), dtype=np.float64)
        if scores.shape != (history.n_posts,):
            raise ValueError(
                f"{self.name} scored {scores.shape} posts, catalogue has {history.n_posts}"
            )
        allowed = np.ones(history.n_posts, dtype=bool)
        allowed[history.liked_before(user_id, time)] = False
        return history.post_ids[top_k(scores, k, allowed)]

    @abstractmethod
    def _fit(self, data: TrainingData) -> dict[str, int]:
        """Fit; return row counts worth recording (e.g. ``{"likes": n}``)."""

    @abstractmethod
    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        """A score per catalogue post (``history.post_ids`` order); higher is better."""

    def save(self, directory: Path) -> Path:
        """Write the bundle (meta.json and the model's files) to ``directory``."""
        if self.meta is None:
            raise NotFittedError(f"cannot save an unfitted {self.name} recommender")
        directory.mkdir(parents=True, exist_ok=True)
        self._save(directory)
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != META_FILE)
        self.meta.files = {p.relative_to(directory).as_posix(): p.stat().st_size for p in files}
        (directory / META_FILE).write_text(self.meta.model_dump_json(indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a bundle written by :meth:`save`; refuses other models and schema versions."""
        meta = read_meta(directory, cls.name)
        model = cls._load(directory, meta)
        model.meta = meta
        return model

    def _save(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write model files other than meta.json."""

    @classmethod
    def _load(cls, directory: Path, meta: BundleMeta) -> Self:
        return cls(**meta.params)


def read_meta(directory: Path, name: str) -> BundleMeta:
    """The description of the ``name`` bundle in ``directory``; refuses other models and
    schema versions (ValueError), and a folder with no meta.json (FileNotFoundError)."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"no model bundle at {directory}: {META_FILE} is missing")
    try:
        meta = BundleMeta.model_validate(json.loads(meta_path.read_text()))
    except ValueError as error:
        raise ValueError(f"{meta_path} is not a valid bundle description: {error}") from error
    if meta.name != name:
        raise ValueError(f"{directory} holds a {meta.name!r} bundle, not {name!r}")
    if meta.schema_version != BUNDLE_SCHEMA_VERSION:
        raise ValueError(
            f"{meta_path} has bundle schema version {meta.schema_version}; this feedlab "
            f"reads version {BUNDLE_SCHEMA_VERSION}. Retrain with `feedlab train`."
        )
    return meta


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` highest allowed scores, best first; ties go to the lower
    position, so rankings are deterministic.

    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 2, np.array([True, True, True, False])).tolist()
    [1, 2]
    """
    candidates = np.flatnonzero(allowed)
    if len(candidates) <= k:
        chosen = candidates
    else:
        values = scores[candidates]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        chosen = candidates[values >= kth]
    order = np.lexsort((chosen, -scores[chosen]))
    return chosen[order][:k]


def top_k_set(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores in no particular order: the set :func:`top_k`
    would pick with every position allowed (ties to the lower position), without sorting
    it (15-25 us for 1,000 of 7,023 scores where top_k takes about 60).

    >>> sorted(top_k_set(np.array([0.1, 0.9, 0.5, 0.9, 0.5]), 3).tolist())
    [1, 2, 3]
    """
    if k <= 0:
        return np.zeros(0, np.int64)
    if k >= len(scores):
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)[: k - len(above)]
    return np.concatenate([above, ties])


def _short_hash(*parts: Any) -> str:
    import hashlib

    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def code_version() -> str:
    """The git commit of the working tree when there is one, else the package version."""
    from feedlab import __version__

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{out.stdout.strip()}" if out.returncode == 0 else __version__


def one_blas_thread() -> "threadpool_limits":
    """Run numpy's matrix products on one thread in this process, as serving does; used as
    a context manager (``with one_blas_thread(): ...``) it restores the limit on exit.

    A request's products are small ((posts x 21) @ (21 x 32) in the neural head); with
    OpenBLAS's default of a thread per core, each product waits for sleeping helper threads
    to wake, which on two busy cores took 25 ms per request instead of 0.3 ms (measured
    in-process at 7,023 posts). Serving workers already use one core each.
    """
    return threadpool_limits(limits=1, user_api="blas")
