"""``feedlab train``: fit a recommender on the feed and write its bundle for the service."""

import json
import time as clock
from pathlib import Path

import typer

from feeddata.db import missing_tables
from feeddata.interactions import read_interactions, read_posts, read_users
from feedlab.cli.common import engine_from_settings, fail, parse_time
from feedlab.settings import get_settings
from recommenders.base import TrainingData
from recommenders.catboost_model import CatBoostRecommender
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
        recommender = FACTORIES[model](**overrides)
    except (ValueError, TypeError) as error:
        raise fail(f"--params: {error}") from None
    engine = engine_from_settings()
    if missing := missing_tables(engine):
        raise fail(f"the database lacks {', '.join(missing)}: import or generate data first")
    started = clock.perf_counter()
    interactions = read_interactions(engine)
    if len(interactions) == 0:
        raise fail("the feed is empty: import or generate data first")
    cutoff = (
        parse_time(until, option="--until")
        if until is not None
        else int(interactions.timestamp[-1]) + 1
    )
    data = TrainingData.cut(interactions, read_posts(engine), read_users(engine), cutoff)
    if len(data.interactions) == 0:
        raise fail(f"no events before --until {until}: choose a later time")
    typer.echo(f"training {model} on {len(data.interactions):,} events before {cutoff}")
    if isinstance(recommender, CatBoostRecommender):
        recommender.progress = True
    try:
        recommender.fit(data)
    except ValueError as error:
        raise fail(str(error)) from None
    folder = recommender.save(out or get_settings().artifacts / model)
    assert recommender.meta is not None
    typer.echo(
        f"wrote {folder} ({recommender.meta.version}) in {clock.perf_counter() - started:.0f}s"
    )
    for name, value in recommender.meta.metrics.items():
        typer.echo(f"  {name}: {value:.4g}")
