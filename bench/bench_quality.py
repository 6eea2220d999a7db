"""Offline quality of the recommenders: hitrate@5 on MovieLens 100K and synthetic demo data.

The protocol is :mod:`recommenders.evaluation` (split at the 0.8 quantile of view times,
k = 5, one-hour window). ROC-AUC is the control model's ranking of held-out views after
the split (liked within the hour or not), scored through the serving path.
"""

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bench.report import Result
from feeddata.interactions import Interactions
from feeddata.sources import movielens
from feeddata.sources.synthetic import SyntheticConfig, iter_chunks
from recommenders.base import Recommender
from recommenders.baselines import PopularityRecommender, RandomRecommender
from recommenders.catboost_model import CatBoostRecommender
from recommenders.evaluation import HOUR, evaluate, split_time_at_quantile
from recommenders.history import LikeHistory
from recommenders.peers import EASERecommender

MOVIELENS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
K = 5
OBJECTIVE_ROWS = 200_000


@dataclass(frozen=True)
class Dataset:
    """A feed, its catalogue (indexed by post_id) and its user profiles (by user_id)."""

    name: str
    interactions: Interactions
    posts: pd.DataFrame
    users: pd.DataFrame


def _from_frames(
    name: str, feed: pd.DataFrame, posts: pd.DataFrame, users: pd.DataFrame
) -> Dataset:
    stamps = feed["timestamp"]
    if not pd.api.types.is_integer_dtype(stamps):
        stamps = stamps.astype("datetime64[s]").astype("int64")
    events = Interactions.from_arrays(
        feed["user_id"].to_numpy(),
        feed["post_id"].to_numpy(),
        stamps.to_numpy(),
        (feed["action"] == "like").to_numpy(),
        feed["target"].to_numpy(),
    )
    return Dataset(
        name,
        events,
        posts.set_index("post_id").sort_index(),
        users.set_index("user_id").sort_index(),
    )


def movielens_data(directory: Path = MOVIELENS_DIR) -> Dataset:
    """MovieLens 100K mapped as SPEC.md says (the importer's readers, no database)."""
    return _from_frames(
        "ml-100k",
        movielens.read_feed(directory / "u.data"),
        movielens.read_posts(directory / "u.item", directory / "u.genre"),
        movielens.read_users(directory / "u.user"),
    )


def synthetic_data(config: SyntheticConfig) -> Dataset:
    """The synthetic network of ``config``, generated in memory."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(config):
        tables.setdefault(chunk.table, []).append(chunk.rows)
    frames = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    name = f"synthetic {config.users:,}u/{config.posts:,}p/{config.days}d"
    return _from_frames(name, frames["feed_data"], frames["post_text_df"], frames["user_data"])


def heldout_auc(
    model: Recommender, data: Dataset, split: int, *, max_views: int = 3000, seed: int = 0
) -> float:
    """ROC-AUC of ``model``'s scores of views after ``split`` (label: liked within the hour),
    each scored at its view time through the serving path."""
    history = LikeHistory(data.posts.index.to_numpy(), data.interactions.likes())
    views = data.interactions.select(
        ~data.interactions.is_like & (data.interactions.timestamp >= split)
    )
    if isinstance(model, CatBoostRecommender):  # the model's own ranking, no candidate cut
        model = copy.copy(model)
        model.config = model.config.model_copy(update={"candidates": 0})
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(views), min(max_views, len(views)), replace=False))
    labels, scores = [], []
    for user, post, at in zip(
        views.user_id[pick], views.post_id[pick], views.timestamp[pick], strict=True
    ):
        position = int(history.post_index(np.asarray([post]))[0])
        liked = history.liked_between(int(user), int(at), int(at) + HOUR)
        if position < 0 or position in history.liked_before(int(user), int(at)):
            continue
        labels.append(position in liked)
        scores.append(model._scores(int(user), int(at), history)[position])
    return float(roc_auc_score(labels, scores))


def quality_rows(data: Dataset, *, requests: int = 2000) -> tuple[list[list[Any]], dict[str, Any]]:
    """Hitrate@5 of every recommender on ``data``, and the control model's held-out AUC."""
    split = split_time_at_quantile(data.interactions, 0.8)
    models: dict[str, Recommender] = {
        "popular": PopularityRecommender(),
        "random": RandomRecommender(),
        "catboost": CatBoostRecommender(),
        # the objectives side by side on a smaller sample: YetiRank fits ~5x slower
        "catboost Logloss 200k": CatBoostRecommender(max_rows=OBJECTIVE_ROWS),
        "catboost YetiRank 200k": CatBoostRecommender(loss="YetiRank", max_rows=OBJECTIVE_ROWS),
        "ease (peer)": EASERecommender(),
    }
    report = evaluate(
        data.interactions,
        data.posts,
        data.users,
        models,
        split_time=split,
        k=K,
        max_requests=requests,
        progress=False,
    )
    popular = report.recommenders["popular"].hitrate
    rows: list[list[Any]] = []
    for name, score in report.recommenders.items():
        model = models[name]
        auc = heldout_auc(model, data, split) if name.startswith("catboost") else None
        lift = score.hitrate / popular if popular else float("nan")
        rows.append(
            [
                data.name,
                name,
                score.hitrate,
                lift,
                auc if auc is not None else "",
                score.ms_per_request,
                score.fit_s,
            ]
        )
    rows.append([data.name, "ceiling", report.ceiling, "", "", "", ""])
    return rows, {"requests": report.requests, "split_time": split}


def run() -> None:
    """Quality table on MovieLens 100K and synthetic demo data -> bench/results/quality.json."""
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    for dataset in (movielens_data(), synthetic_data(SyntheticConfig.demo())):
        part, info = quality_rows(dataset)
        rows += part
        data[dataset.name] = info
    Result(
        name="quality",
        title="Offline quality: hitrate@5 (split at the 0.8 quantile of views, 1 h window)",
        command="make bench",
        columns=[
            "data",
            "recommender",
            "hitrate@5",
            "x popular",
            "held-out AUC",
            "ms/req",
            "fit s",
        ],
        rows=rows,
        notes=[
            "held-out AUC: views after the split (label: liked within the hour), each scored "
            "at its view time",
            "ceiling: share of requests followed by any like within the hour",
            f"catboost ... 200k: both objectives trained on {OBJECTIVE_ROWS:,} sampled rows",
        ],
        data=data,
    ).save()


if __name__ == "__main__":
    run()
