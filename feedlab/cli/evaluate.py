"""``feedlab evaluate``: offline hitrate@k of recommenders side by side."""

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from feeddata.db import missing_tables
from feeddata.interactions import read_interactions, read_posts, read_users
from feedlab.cli.common import engine_from_settings, fail, parse_time
from recommenders.evaluation import EvaluationReport, split_time_at_quantile
from recommenders.evaluation import evaluate as run_evaluation
from recommenders.registry import make_recommender


def evaluate(
    split_time: str | None = typer.Option(
        None, "--split-time", help="ISO-8601 datetime or epoch seconds."
    ),
    split_quantile: float | None = typer.Option(
        None, "--split-quantile", help="Split at this quantile of view times (default 0.8)."
    ),
    k: int = typer.Option(5, "--k", min=1, max=100, help="Recommendations per request."),
    window: int = typer.Option(
        3600, "--window", min=0, help="Seconds after a request a like counts."
    ),
    requests: int = typer.Option(10_000, "--requests", min=1, help="At most this many requests."),
    recommenders: str = typer.Option(
        "popular,random",
        "--recommenders",
        help="Comma-separated; the others are compared with the first on the same requests.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the request sample."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report here."),
) -> None:
    """Fit recommenders on the feed before a split time and report hitrate@k after it."""
    if split_time is not None and split_quantile is not None:
        raise fail("give --split-time or --split-quantile, not both")
    names = [n.strip() for n in recommenders.split(",") if n.strip()]
    try:
        models = {name: make_recommender(name) for name in names}
    except ValueError as error:
        raise fail(f"--recommenders: {error}") from None
    engine = engine_from_settings()
    if missing := missing_tables(engine):
        raise fail(f"the database lacks {', '.join(missing)}: import or generate data first")
    interactions = read_interactions(engine)
    if split_time is not None:
        split = parse_time(split_time, option="--split-time")
    else:
        split = split_time_at_quantile(interactions, split_quantile or 0.8)
    try:
        report = run_evaluation(
            interactions,
            read_posts(engine),
            read_users(engine),
            models,
            split_time=split,
            k=k,
            window=window,
            max_requests=requests,
            seed=seed,
        )
    except ValueError as error:
        raise fail(str(error)) from None
    typer.echo(format_report(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        typer.echo(f"wrote {json_path}")


def format_report(report: EvaluationReport) -> str:
    """The report as an aligned text table."""
    split = datetime.fromtimestamp(report.split_time, UTC).isoformat()
    lines = [
        f"split {split}  requests {report.requests}  k {report.k}  window {report.window_s}s",
        f"{'recommender':<12} {'hitrate@' + str(report.k):>10} {'hits':>7} {'coverage':>9} "
        f"{'ms/req':>8} {'fit s':>8}",
    ]
    for name, score in report.recommenders.items():
        lines.append(
            f"{name:<12} {score.hitrate:>10.4f} {score.hits:>7} {score.coverage:>9.3f} "
            f"{score.ms_per_request:>8.3f} {score.fit_s:>8.2f}"
        )
    lines.append(f"{'ceiling':<12} {report.ceiling:>10.4f}")
    for name, c in report.comparisons.items():
        lines.append(
            f"{name} vs {c.reference}: {c.difference:+.4f} "
            f"(95% CI {c.ci95[0]:+.4f} to {c.ci95[1]:+.4f}); hit by {name} only "
            f"{c.only_this}, by {c.reference} only {c.only_reference}; McNemar p {c.p_value:.3g}"
        )
    return "\n".join(lines)
