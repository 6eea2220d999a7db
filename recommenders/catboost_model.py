"""The control arm: a CatBoost model of "user likes post within the hour after t".

Training rows (all before the cutoff; see :func:`training_rows`):

- every view followed by the viewer's like of that post within ``label_window_s`` (label 1);
- other views, down-sampled to ``view_negatives`` per positive (label 0);
- ``random_negatives`` catalogue posts per positive, drawn uniformly at the positive's
  (user, time): the served task ranks the whole catalogue, not only what the feed showed,
  so the model must also learn what a user would not have looked at;
- views of posts the user had already liked are dropped (serving never ranks those);
- at most ``max_rows`` rows (a seeded uniform sample), so the course scale (69M views)
  trains in minutes.

Features come from :mod:`recommenders.features`, as of each row's time. The last
``validation_share`` of rows (by time) is the early-stopping slice. Serving takes the
``candidates`` posts with the most likes before t (1,000 by default: on MovieLens and on
course-like synthetic data this kept hitrate@5 and cut the scoring time several-fold; 0
scores all), fills their feature rows into a preallocated matrix and scores them with
CatBoost on one thread; the other posts rank below them by likes.
"""

import sys
import threading
import time as clock
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from catboost import CatBoost, Pool
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import roc_auc_score

from recommenders.base import BundleMeta, Recommender, TrainingData, top_k_set
from recommenders.features import LikeLog, RequestFeatures, feature_names, training_matrix
from recommenders.history import LikeHistory
from recommenders.snapshots import FeatureParams, FeatureTables, build_tables

MODEL_FILE = "model.cbm"
TABLES_DIR = "features"
_SHIFT = np.int64(1 << 32)


class CatBoostParams(BaseModel):
    """Hyper-parameters of the control model; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    loss: Literal["Logloss", "YetiRank"] = "Logloss"
    iterations: int = 500
    depth: int = 6
    learning_rate: float = 0.15
    l2_leaf_reg: float = 3.0
    max_bin: int = 64
    early_stopping_rounds: int = 50
    validation_share: float = 0.1
    label_window_s: int = 3600
    view_negatives: float = 1.0
    random_negatives: float = 10.0
    max_rows: int = 3_000_000
    candidates: int = 1000
    """Score only the posts with the most likes before t (0: score the whole catalogue)."""
    thread_count: int = -1
    seed: int = 0
    features: FeatureParams = FeatureParams()


class Rows:
    """Training rows as parallel arrays (user and post positions, times, labels)."""

    def __init__(self, user: np.ndarray, post: np.ndarray, time: np.ndarray, label: np.ndarray):
        order = np.argsort(time, kind="stable")
        self.user, self.post = user[order], post[order]
        self.time, self.label = time[order], label[order]

    def __len__(self) -> int:
        return len(self.time)

    def part(self, rows: slice | np.ndarray) -> "Rows":
        return Rows(self.user[rows], self.post[rows], self.time[rows], self.label[rows])


def training_rows(
    data: TrainingData, tables: FeatureTables, params: CatBoostParams
) -> tuple[Rows, dict[str, int]]:
    """Sample the training rows (see the module docstring) and count what was kept.

    A feed without views (only likes) uses its likes as the exposures.
    """
    rng = np.random.default_rng(params.seed)
    inter = data.interactions
    n_posts = len(tables.post_ids)
    pos = np.searchsorted(tables.post_ids, inter.post_id).clip(0, max(n_posts - 1, 0))
    known = tables.post_ids[pos] == inter.post_id
    user, post = tables.user_index(inter.user_id[known]), pos[known]
    ts, like = inter.timestamp[known], inter.is_like[known]
    liked_pairs = user[like] * n_posts + post[like]
    pair_likes = np.sort(liked_pairs * _SHIFT + ts[like])
    # a hash lookup first: most exposures are of pairs never liked, which need no search
    ever_liked = pd.Index(np.unique(liked_pairs))
    exposure = ~like if (~like).any() else like
    u, p, t = user[exposure], post[exposure], ts[exposure]

    def label(u: np.ndarray, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Liked within the window at or after t; liked before t."""
        pair = u * n_posts + p
        y, before = np.zeros(len(pair), bool), np.zeros(len(pair), bool)
        hit = np.flatnonzero(ever_liked.get_indexer(pair) >= 0)
        key, at_t = pair[hit] * _SHIFT, t[hit]
        at = np.searchsorted(pair_likes, key + at_t)
        before[hit] = at > np.searchsorted(pair_likes, key)
        nxt = pair_likes[np.minimum(at, len(pair_likes) - 1)]
        y[hit] = (at < len(pair_likes)) & (nxt <= key + at_t + params.label_window_s)
        return y, before

    y, before = label(u, p, t)
    positives = np.flatnonzero(y & ~before)
    negatives = np.flatnonzero(~y & ~before)
    keep = int(min(len(negatives), round(params.view_negatives * len(positives))))
    negatives = np.sort(rng.choice(negatives, keep, replace=False))
    anchors = rng.choice(positives, round(params.random_negatives * len(positives)))
    r_post = rng.integers(0, max(n_posts, 1), len(anchors))
    r_y, r_before = label(u[anchors], r_post, t[anchors])
    fresh = ~r_before
    rows = Rows(
        np.r_[u[positives], u[negatives], u[anchors][fresh]],
        np.r_[p[positives], p[negatives], r_post[fresh]],
        np.r_[t[positives], t[negatives], t[anchors][fresh]],
        np.r_[np.ones(len(positives)), np.zeros(len(negatives)), r_y[fresh]].astype(np.int8),
    )
    counts = {"positive_views": len(positives), "negative_views": len(negatives)}
    counts["random_posts"] = int(fresh.sum())
    if len(rows) > params.max_rows:
        rows = rows.part(np.sort(rng.choice(len(rows), params.max_rows, replace=False)))
    return rows, counts


class CatBoostRecommender(Recommender):
    """Ranks posts by a CatBoost model's score of a like within the hour (see module)."""

    name = "catboost"

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.config = CatBoostParams(**params)
        self.progress = False
        self.model: CatBoost | None = None
        self.tables: FeatureTables | None = None
        self._request: RequestFeatures | None = None
        self._lock = threading.Lock()
        self._started = clock.perf_counter()

    def params(self) -> dict[str, Any]:
        return self.config.model_dump()

    def _fit(self, data: TrainingData) -> dict[str, int]:
        cfg, started = self.config, clock.perf_counter()
        self._started = started
        self._say("building feature tables (encodings, text embedding, snapshots)")
        inter = data.interactions
        tables = build_tables(inter, data.posts, data.users, cfg.features, until=data.until)
        self._say("sampling training rows")
        rows, counts = training_rows(data, tables, cfg)
        if len(np.unique(rows.label)) < 2:
            raise ValueError("training needs both liked and unliked rows; give more feed data")
        self._say(f"computing features of {len(rows):,} rows")
        log = LikeLog(inter.likes(), tables)
        matrix = training_matrix(tables, cfg.features, log, rows.user, rows.post, rows.time)
        n_valid = int(len(rows) * cfg.validation_share)
        valid = slice(len(rows) - n_valid, len(rows))
        has_valid = n_valid >= 20 and len(np.unique(rows.label[valid])) == 2
        train = slice(0, len(rows) - n_valid) if has_valid else slice(0, len(rows))
        self._say(f"training on {train.stop:,} rows, validating on {n_valid if has_valid else 0:,}")
        model = CatBoost(self._catboost_params())
        model.fit(
            self._pool(rows.part(train), matrix[train]),
            eval_set=self._pool(rows.part(valid), matrix[valid]) if has_valid else None,
            early_stopping_rounds=cfg.early_stopping_rounds if has_valid else None,
            use_best_model=has_valid,
            verbose=100 if self.progress else False,
        )
        self.model, self.tables = model, tables
        self._request = RequestFeatures(tables, cfg.features)
        self.fit_metrics = {"fit_s": round(clock.perf_counter() - started, 2)}
        if has_valid:
            score = model.predict(matrix[valid], prediction_type="RawFormulaVal")
            self.fit_metrics["valid_auc"] = float(roc_auc_score(rows.label[valid], score))
            self.fit_metrics["best_iteration"] = float(model.get_best_iteration() or 0)
        return {
            "views": int((~inter.is_like).sum()),
            "likes": int(inter.is_like.sum()),
            "first_time": int(inter.timestamp[0]) if len(inter) else data.until,
            **counts,
            "train_rows": train.stop - train.start,
            "valid_rows": n_valid if has_valid else 0,
            "trees": int(model.tree_count_ or 0),
        }

    def _catboost_params(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "loss_function": cfg.loss,
            "eval_metric": "AUC" if cfg.loss == "Logloss" else "AUC:type=Ranking",
            "iterations": cfg.iterations,
            "depth": cfg.depth,
            "learning_rate": cfg.learning_rate,
            "l2_leaf_reg": cfg.l2_leaf_reg,
            "border_count": cfg.max_bin,
            "random_seed": cfg.seed,
            "thread_count": cfg.thread_count,
            "allow_writing_files": False,
        }

    def _pool(self, rows: Rows, matrix: np.ndarray) -> Pool:
        names = feature_names(self.config.features)
        if self.config.loss == "Logloss":
            return Pool(matrix, rows.label, feature_names=names)
        group = rows.user.astype(np.int64) * _SHIFT + rows.time // 3600
        order = np.argsort(group, kind="stable")
        return Pool(matrix[order], rows.label[order], group_id=group[order], feature_names=names)

    def _scores(self, user_id: int, time: int, history: LikeHistory) -> np.ndarray:
        assert self.model is not None
        assert self._request is not None
        if history.n_posts != len(self._request.tables.post_ids):
            raise ValueError(
                f"the catalogue has {history.n_posts} posts but the model was trained on "
                f"{len(self._request.tables.post_ids)}; retrain with `feedlab train catboost`"
            )
        n = self.config.candidates
        with self._lock:
            if not 0 < n < history.n_posts:
                return self._predict(self._request.fill(user_id, time, history))
            # Features only of the candidates: the posts with the most likes before t.
            counts = history.like_counts_before(time)
            likes = counts.astype(np.float64)
            chosen = top_k_set(likes, n)
            rows = self._request.fill(user_id, time, history, chosen, post_likes=counts)
            model_scores = self._predict(rows)
        # the rest rank below every candidate, by likes: distinct values keep the base
        # class's partition fast (thousands of equal scores make it ~10x slower)
        scores = model_scores.min() - 1.0 + likes / (likes.max() + 1.0)
        scores[chosen] = model_scores
        return scores

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        assert self.model is not None
        scores = self.model.predict(matrix, prediction_type="RawFormulaVal", thread_count=1)
        # CatBoost marks a column-major input read-only; the buffer is ours to refill
        matrix.setflags(write=True)
        return np.asarray(scores)

    def _save(self, directory: Path) -> None:
        assert self.model is not None
        assert self.tables is not None
        self.model.save_model(str(directory / MODEL_FILE))
        self.tables.save(directory / TABLES_DIR)

    @classmethod
    def _load(cls, directory: Path, meta: BundleMeta) -> Self:
        model = cls(**meta.params)
        model.model = CatBoost()
        model.model.load_model(str(directory / MODEL_FILE))
        model.tables = FeatureTables.load(directory / TABLES_DIR)
        model._request = RequestFeatures(model.tables, model.config.features)
        return model

    def _say(self, message: str) -> None:
        if self.progress:
            elapsed = clock.perf_counter() - self._started
            print(f"[catboost {elapsed:6.0f}s] {message}", file=sys.stderr, flush=True)
