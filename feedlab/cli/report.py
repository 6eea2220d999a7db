"""``feedlab report`` and ``feedlab aa``: experiment reports and A/A re-salting."""

import json
from pathlib import Path
from typing import Annotated

import typer

from analysis.data import ExperimentData, UserTable
from feedlab.cli.common import engine_from_settings, fail, parse_time
from feedlab.settings import get_settings

FORMATS = ("json", "md", "html")


def _parse_weights(value: str | None) -> dict[str, float] | None:
    if value is None:
        return None
    try:
        pairs = [part.split("=", 1) for part in value.split(",")]
        weights = {name.strip(): float(weight) for name, weight in pairs}
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: write arm=weight pairs, e.g. control=50,test=50", param_hint="--weights"
        ) from None
    if len(weights) < 2 or any(w <= 0 for w in weights.values()):
        raise typer.BadParameter(
            "give at least two arms with positive weights, e.g. control=50,test=50",
            param_hint="--weights",
        )
    return weights


def _experiment_weights(name: str) -> dict[str, float]:
    """The configured weights of experiment ``name`` (FEEDLAB_EXPERIMENTS)."""
    from experiment.config import ExperimentConfigError, load_experiments

    path = get_settings().experiments
    if path is None:
        raise fail(
            "--experiment needs the experiment file: set FEEDLAB_EXPERIMENTS "
            "(or pass --weights to give the arm weights)"
        )
    try:
        config = load_experiments(Path(path)).get(name)
    except ExperimentConfigError as error:
        raise fail(str(error)) from None
    if config is None:
        raise fail(f"--experiment: no experiment named {name!r} in {path}")
    return {arm.name: float(arm.weight) for arm in config.arms}


def _check_inputs(experiment: str | None, views: Path | None, likes: Path | None) -> None:
    if experiment is not None and (views is not None or likes is not None):
        raise fail("give --experiment (database) or --views and --likes (files), not both")
    if experiment is None and (views is None or likes is None):
        raise fail("give --experiment NAME, or both --views FILE and --likes FILE")


def _load(
    experiment: str | None, views: Path | None, likes: Path | None, window: int, k: int
) -> ExperimentData:
    _check_inputs(experiment, views, likes)
    if experiment is None:
        if views is None or likes is None:  # pragma: no cover - _check_inputs said so
            raise fail("give both --views FILE and --likes FILE")
        from analysis.logs import read_likes, read_views, reduce_logs

        try:
            return reduce_logs(
                read_views(views),
                read_likes(likes),
                window=window,
                k=k,
                source=f"files {views} {likes}",
            )
        except (OSError, ValueError) as error:
            raise fail(str(error)) from None
    from analysis.database import read_experiment

    try:
        return read_experiment(
            bind=engine_from_settings(), experiment=experiment, window=window, k=k
        )
    except Exception as error:  # database errors name the missing table or column
        raise fail(f"reading experiment {experiment!r} from the database: {error}") from None


def report(
    experiment: Annotated[
        str | None, typer.Option(help="Experiment name: read its exposures from the database.")
    ] = None,
    views: Annotated[Path | None, typer.Option(help="views.csv of the course's logs.")] = None,
    likes: Annotated[Path | None, typer.Option(help="likes.csv of the course's logs.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, md or html.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    window: Annotated[
        int, typer.Option(min=0, help="Seconds after an exposure a like counts.")
    ] = 3600,
    k: Annotated[int, typer.Option(min=1, max=100, help="Posts per exposure (hitrate@k).")] = 5,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Two-sided test level.")] = 0.05,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Arm weights, e.g. control=50,test=50 (default: the experiment's or equal)."
        ),
    ] = None,
    min_users: Annotated[int, typer.Option(min=2, help="Users per arm before any verdict.")] = 1000,
    lift: Annotated[
        float, typer.Option(min=0.0001, help="Relative lift to size the sample for.")
    ] = 0.03,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap replicates (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """An experiment report: the verdict, health checks, every metric's effect and plots."""
    from analysis.render import to_html, to_markdown
    from analysis.report import AnalysisConfig, analyse

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_inputs(experiment, views, likes)
    arm_weights = _parse_weights(weights)
    if arm_weights is None and experiment is not None:
        arm_weights = _experiment_weights(experiment)
    data = _load(experiment, views, likes, window, k)
    if arm_weights is not None and (unknown := set(data.arms) - set(arm_weights)):
        raise fail(f"--weights: no weight for arm(s) {', '.join(sorted(unknown))} of the data")
    config = AnalysisConfig(
        k=k,
        window_s=window,
        alpha=alpha,
        weights=arm_weights,
        min_users_per_arm=min_users,
        lift=lift,
        bootstrap_replicates=bootstrap,
        seed=seed,
    )
    result = analyse(data, config)
    if fmt == "json":
        body = json.dumps(result.to_dict(), indent=2) + "\n"
    elif fmt == "md":
        body = to_markdown(result)
    else:
        body = to_html(result)
    if out is None:
        typer.echo(body, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    typer.echo(result.verdict.text)
    typer.echo(f"wrote {out}")


def _history_users(since: str | None) -> UserTable:
    from analysis.database import read_feed_history

    moment = None
    if since is not None:
        from datetime import UTC, datetime

        seconds = parse_time(since, option="--since")
        moment = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    try:
        return read_feed_history(bind=engine_from_settings(), since=moment)
    except Exception as error:
        raise fail(f"reading feed_data from the database: {error}") from None


def aa(
    experiment: Annotated[
        str | None, typer.Option(help="Re-salt this experiment's users (database).")
    ] = None,
    views: Annotated[Path | None, typer.Option(help="views.csv of the course's logs.")] = None,
    likes: Annotated[Path | None, typer.Option(help="likes.csv of the course's logs.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Without --experiment or files: feed_data from this time (ISO-8601)."),
    ] = None,
    iterations: Annotated[int, typer.Option(min=1, help="Re-saltings.")] = 500,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5)] = 0.05,
    control_share: Annotated[float, typer.Option(min=0.01, max=0.99)] = 0.5,
    salt_prefix: Annotated[str, typer.Option(help="Salts are PREFIX-0, PREFIX-1, ...")] = "aa",
    window: Annotated[int, typer.Option(min=0)] = 3600,
    k: Annotated[int, typer.Option(min=1, max=100)] = 5,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
) -> None:
    """A/A check: re-split historical users under many new salts; report the false-positive
    rate at alpha (it should lie in 0.03-0.07 at 0.05) and the uniformity of the p-values.

    Users come from the log files, from an experiment's exposures, or (neither given) from
    feed_data, where views are the exposures and liked views the hits.
    """
    from dataclasses import asdict

    from tqdm import tqdm

    from analysis.validation import FPR_RANGE, aa_resalt

    if experiment is None and views is None and likes is None:
        users = _history_users(since)
        source = "feed_data"
    else:
        data = _load(experiment, views, likes, window, k)
        if data.users is None:  # pragma: no cover - both inputs load user rows
            raise fail("the input gave no per-user rows")
        users, source = data.users, data.source
    if users.user_id.size < 4:
        raise fail(f"{source}: {users.user_id.size} users; A/A needs at least 4")
    with tqdm(total=iterations, desc="re-salting", unit="salt", leave=False) as bar:
        result = aa_resalt(
            users,
            iterations=iterations,
            alpha=alpha,
            control_share=control_share,
            salt_prefix=salt_prefix,
            progress=bar.update,
        )
    low, high = FPR_RANGE
    typer.echo(
        f"A/A: {result.users:,} users of {source}, {iterations} salts, alpha {alpha:g}; "
        f"false-positive rate should lie in {low:g}-{high:g} at 0.05"
    )
    typer.echo(f"{'metric':<16}{'FPR':>7}{'95% CI':>18}{'KS p':>9}  p-value deciles")
    for m in result.metrics:
        ci = f"[{m.fpr_ci[0]:.3f}, {m.fpr_ci[1]:.3f}]"
        deciles = " ".join(str(v) for v in m.p_value_histogram)
        flag = "ok" if m.passed else "CHECK"
        typer.echo(
            f"{m.metric:<16}{m.false_positive_rate:>7.3f}{ci:>18}{m.ks_p_value:>9.3f}  "
            f"{deciles}  {flag}"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**asdict(result), "source": source, "passed": result.passed}
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")
