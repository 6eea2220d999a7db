"""``feedlab data generate``: the synthetic social network, into the configured database."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import OperationalError

from feeddata.sources import synthetic
from feeddata.sources.synthetic import DatabaseNotEmptyError, GenerationReport, SyntheticConfig
from feedlab.cli.common import engine_from_settings, fail
from feedlab.settings import get_settings


class Scale(StrEnum):
    demo = "demo"
    course = "course"


def generate(
    scale: Annotated[
        Scale,
        typer.Option(
            help="demo: 5,000 users, 1,000 posts, the 30 days up to 2021-12-29 (under a "
            "minute). course: the original's 163,205 users, 7,023 posts, 89 days from "
            "2021-10-01 (~76M feed rows)."
        ),
    ] = Scale.demo,
    users: Annotated[int | None, typer.Option(min=1, help="Override the scale's users.")] = None,
    posts: Annotated[int | None, typer.Option(min=7, help="Override the scale's posts.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Override the scale's days.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same data.")] = 42,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Where to save the hidden ground truth [FEEDLAB_ARTIFACTS/synthetic_truth]."
        ),
    ] = None,
) -> None:
    """Generate the synthetic social network into an empty database, with its ground truth."""
    overrides: dict[str, Any] = {"seed": seed}
    for name, value in (("users", users), ("posts", posts), ("days", days)):
        if value is not None:
            overrides[name] = value
    make = SyntheticConfig.course if scale is Scale.course else SyntheticConfig.demo
    try:
        config = make(**overrides)
    except ValueError as error:
        raise fail(str(error)) from None
    truth_dir = truth if truth is not None else get_settings().artifacts / "synthetic_truth"
    engine = engine_from_settings()
    where = engine.url.render_as_string(hide_password=True)
    try:
        report = synthetic.generate(engine, config, truth_dir=truth_dir)
    except DatabaseNotEmptyError as error:
        raise fail(f"{error}; FEEDLAB_DATABASE_URL is {where}") from None
    except OperationalError as error:
        detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise fail(f"cannot use the database {where} (FEEDLAB_DATABASE_URL): {detail}") from None
    finally:
        engine.dispose()
    typer.echo(format_report(report, where))


def format_report(report: GenerationReport, where: str) -> str:
    """One summary line per fact: rows written, like rate, ground truth, time."""
    counts = ", ".join(f"{table} {rows:,}" for table, rows in report.rows.items())
    return "\n".join(
        [
            f"generated {counts} rows into {where} in {report.seconds:.1f} s",
            f"views {report.views:,}, likes {report.likes:,} ({report.like_rate:.1%} of views)",
            f"ground truth saved in {report.truth_dir}",
        ]
    )
