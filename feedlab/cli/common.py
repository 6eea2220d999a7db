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
