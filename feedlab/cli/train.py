"""``feedlab train``: fit a recommender on the feed and write its bundle for the service.

:func:`read_training_data` and :func:`train_bundle` are the whole of it; ``feedlab up``
calls them too, for the bundles it finds missing.
"""

import json
import time as clock
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import Engine

from feeddata.db import missing_tables
from feeddata.interactions import read_interactions, read_posts, read_users
from feedlab.cli.common import engine_from_settings, fail, parse_time
from feedlab.settings import get_settings
from recommenders.base import BundleMeta, Recommender, TrainingData
from recommenders.catboost_model import CatBoostRecommender
from recommenders.neural import NeuralRecommender
from recommenders.registry import FACTORIES


def train(
    model: str = typer.Argument("catboost", help="Recommender to train (catboost, ease, ...)."),
    until: str | None = typer.Option(
        None,
        "--until",
        help="Train on events before this ISO-8601 datetime or epoch seconds "
        "(default: every event).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Bundle folder (default: <FEEDLAB_ARTIFACTS>/<model>)."
    ),
    params: str | None = typer.Option(
        None, "--params", help="Hyper-parameters as JSON, e.g. '{\"iterations\": 300}'."
    ),
) -> None:
    """Fit MODEL on the feed before --until and write its bundle (model, feature tables,
    meta.json) where the service loads it at start."""
    if model not in FACTORIES:
        raise fail(f"unknown recommender {model!r}; known: {', '.join(sorted(FACTORIES))}")
    try:
        overrides = json.loads(params) if params else {}
        build_recommender(model, overrides)  # bad --params fail before the data are read
    except ValueError as error:
        raise fail(f"--params: {error}") from None
    cutoff = parse_time(until, option="--until") if until is not None else None
    engine = engine_from_settings()
    try:
        data = read_training_data(engine, cutoff)
    except ValueError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    try:
        meta = train_bundle(model, overrides, data, out or get_settings().artifacts / model)
    except ValueError as error:
        raise fail(str(error)) from None
    for name, value in meta.metrics.items():
        typer.echo(f"  {name}: {value:.4g}")


def build_recommender(name: str, params: dict[str, Any]) -> Recommender:
    """A new recommender ``name`` (a key of FACTORIES) with hyper-parameters ``params``;
    ValueError names the bad parameter."""
    if not isinstance(params, dict):
        raise ValueError(f"expected a JSON object of hyper-parameters, got {params!r}")
    try:
        return FACTORIES[name](**params)
    except TypeError as error:  # a recommender whose __init__ takes fixed keywords
        raise ValueError(str(error)) from None


def read_training_data(engine: Engine, until: int | None = None) -> TrainingData:
    """The feed's events before ``until`` (epoch seconds; None: every event), the posts and
    the users; ValueError says what is missing."""
    if missing := missing_tables(engine):
        raise ValueError(f"the database lacks {', '.join(missing)}: import or generate data first")
    interactions = read_interactions(engine)
    if len(interactions) == 0:
        raise ValueError("the feed is empty: import or generate data first")
    cutoff = until if until is not None else int(interactions.timestamp[-1]) + 1
    data = TrainingData.cut(interactions, read_posts(engine), read_users(engine), cutoff)
    if len(data.interactions) == 0:
        raise ValueError(f"no events before --until {_utc(cutoff)}: choose a later time")
    return data


def train_bundle(name: str, params: dict[str, Any], data: TrainingData, out: Path) -> BundleMeta:
    """Fit recommender ``name`` with ``params`` on ``data`` (showing its progress), save the
    bundle to ``out`` and return its metadata; ValueError for bad params or data."""
    recommender = build_recommender(name, params)
    if isinstance(recommender, CatBoostRecommender | NeuralRecommender):
        recommender.progress = True
    typer.echo(f"training {name} on {len(data.interactions):,} events before {_utc(data.until)}")
    started = clock.perf_counter()
    recommender.fit(data)
    folder = recommender.save(out)
    assert recommender.meta is not None
    typer.echo(
        f"wrote {folder} ({recommender.meta.version}) in {clock.perf_counter() - started:.0f}s"
    )
    return recommender.meta


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
