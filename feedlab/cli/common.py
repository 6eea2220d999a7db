"""Helpers shared by the commands."""

import typer
from sqlalchemy import Engine

from feeddata.db import make_engine
from feedlab.settings import get_settings


def engine_from_settings() -> Engine:
    return make_engine(get_settings().database_url)


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def parse_time(value: str, *, option: str) -> int:
    """Seconds since epoch from an ISO-8601 datetime (naive means UTC) or an integer."""
    from datetime import UTC, datetime

    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO-8601 datetime nor epoch seconds", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())
