"""All runtime configuration, read once from ``FEEDLAB_*`` environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings shared by the command line, the API and the jobs.

    Every field is read from the environment variable ``FEEDLAB_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="FEEDLAB_", extra="ignore")

    database_url: str = "sqlite:///feedlab.db"
    """SQLAlchemy URL. Default: an SQLite file in the working directory.
    PostgreSQL: ``postgresql+psycopg2://user@host:5432/dbname``."""

    artifacts: Path = Path("artifacts")
    """Folder of model bundles and the synthetic ground truth."""

    experiments: Path | None = None
    """Experiment configuration file (TOML or YAML)."""

    log_level: str = "info"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests override them with ``get_settings.cache_clear()``."""
    return Settings()
