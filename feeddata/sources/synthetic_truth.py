"""The synthetic network's hidden ground truth: who likes what, when, and how often users come.

A view of post ``i`` by user ``u`` at hour ``h`` (UTC) is liked with probability

    sigmoid(intercept + user_bias[u] + post_quality[i] + user_topic_affinity[u, topic[i]]
            + user_factors[u] . post_factors[i] + hour_like_effect[h])

Saved as ``ground_truth.npz`` (arrays) and ``ground_truth.json`` (scalars, topics, the
generator's config) so a traffic simulator can decide likes for any (user, post, time).
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FORMAT_VERSION = 1
NPZ_NAME = "ground_truth.npz"
JSON_NAME = "ground_truth.json"
_ARRAYS = (
    "user_ids",
    "post_ids",
    "post_topic",
    "user_bias",
    "user_topic_affinity",
    "user_factors",
    "post_quality",
    "post_factors",
    "hour_like_effect",
    "user_views_per_day",
    "user_active_share",
    "hour_activity",
)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The hidden preference and activity model of one synthetic network.

    Users and posts are rows, in the order of the sorted ``user_ids`` and ``post_ids``.
    ``user_views_per_day`` is a user's expected views on an average day,
    ``user_active_share`` the share of days the user shows up at all, and
    ``hour_activity`` the share of sessions starting in each UTC hour.
    """

    config: dict[str, Any]
    topics: tuple[str, ...]
    intercept: float
    user_ids: np.ndarray  # int64, sorted
    post_ids: np.ndarray  # int64, sorted
    post_topic: np.ndarray  # int8, index into topics
    user_bias: np.ndarray  # float32
    user_topic_affinity: np.ndarray  # float32 (users, topics)
    user_factors: np.ndarray  # float32 (users, rank)
    post_quality: np.ndarray  # float32
    post_factors: np.ndarray  # float32 (posts, rank)
    hour_like_effect: np.ndarray  # float64 (24,)
    user_views_per_day: np.ndarray  # float32
    user_active_share: np.ndarray  # float32
    hour_activity: np.ndarray  # float64 (24,), sums to 1

    def save(self, directory: str | Path) -> Path:
        """Write the arrays and the scalars into ``directory`` (created if missing)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / NPZ_NAME, **{name: getattr(self, name) for name in _ARRAYS})
        meta = {
            "format_version": FORMAT_VERSION,
            "model": "P(like) = sigmoid(intercept + user_bias[u] + post_quality[i] + "
            "user_topic_affinity[u, post_topic[i]] + user_factors[u] . post_factors[i] + "
            "hour_like_effect[utc hour])",
            "intercept": self.intercept,
            "topics": list(self.topics),
            "config": self.config,
        }
        (folder / JSON_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> "GroundTruth":
        """Read a ground truth written by :meth:`save`."""
        folder = Path(directory)
        paths = [folder / JSON_NAME, folder / NPZ_NAME]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"no synthetic ground truth in {folder}: missing {', '.join(missing)}; "
                "generate the data with `feedlab data generate` first"
            )
        meta = json.loads(paths[0].read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{paths[0]}: format_version {meta.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; regenerate the data"
            )
        with np.load(paths[1]) as arrays:
            loaded = {name: arrays[name] for name in _ARRAYS}
        return cls(
            config=meta["config"],
            topics=tuple(meta["topics"]),
            intercept=float(meta["intercept"]),
            **loaded,
        )

    def with_intercept(self, intercept: float) -> "GroundTruth":
        return dataclasses.replace(self, intercept=float(intercept))

    def user_index(self, user_ids: npt.ArrayLike) -> np.ndarray:
        """Rows of ``user_ids``; unknown ids are a ValueError naming one."""
        return _index(self.user_ids, user_ids, "user_ids")

    def post_index(self, post_ids: npt.ArrayLike) -> np.ndarray:
        """Rows of ``post_ids``; unknown ids are a ValueError naming one."""
        return _index(self.post_ids, post_ids, "post_ids")

    def logit_at(self, users: np.ndarray, posts: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Like logits by row indices (not ids) and UTC hour, in float64."""
        topic = self.post_topic[posts]
        interaction = np.einsum(
            "ij,ij->i", self.user_factors[users], self.post_factors[posts], dtype=np.float64
        )
        return np.asarray(
            self.intercept
            + self.user_bias[users].astype(np.float64)
            + self.post_quality[posts]
            + self.user_topic_affinity[users, topic]
            + interaction
            + self.hour_like_effect[hours]
        )


def _index(known: np.ndarray, ids: npt.ArrayLike, name: str) -> np.ndarray:
    values = np.asarray(ids, dtype=np.int64).ravel()
    rows = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
    bad = known[rows] != values
    if bad.any():
        raise ValueError(f"{name}: {values[np.flatnonzero(bad)[0]]} is not in the ground truth")
    return rows


def utc_hours(timestamps: Any) -> np.ndarray:
    """UTC hour (0-23) of naive UTC datetimes, or of seconds since 1970-01-01."""
    values = np.asarray(timestamps)
    if values.dtype.kind in "iuf":
        seconds = values.astype(np.int64)
    else:
        if values.dtype.kind != "M":
            values = pd.to_datetime(values.ravel()).to_numpy()
        seconds = values.astype("datetime64[s]").astype(np.int64)
    return np.asarray((seconds.ravel() // 3600) % 24)


def like_probability(
    truth: GroundTruth,
    user_ids: npt.ArrayLike,
    post_ids: npt.ArrayLike,
    timestamps: Any,
) -> np.ndarray:
    """P(like) of each (user, post, time) triple, vectorised; scalars broadcast.

    ``timestamps`` are naive UTC datetimes (numpy, pandas or ``datetime``) or seconds since
    1970-01-01 UTC. Unknown user or post ids raise ValueError.
    """
    users, posts, hours = np.broadcast_arrays(
        truth.user_index(user_ids), truth.post_index(post_ids), utc_hours(timestamps)
    )
    return sigmoid(truth.logit_at(users, posts, hours))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))
