"""All runtime configuration, read once from ``FEEDLAB_*`` environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from experiment.exposure_log import WriterConfig


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

    # The exposure writer (see experiment.exposure_log.WriterConfig for their meaning).
    exposure_spill_dir: Path | None = None
    exposure_memory_limit: int = 50_000
    exposure_batch_size: int = 1_000
    exposure_linger_s: float = 0.2
    exposure_max_backoff_s: float = 5.0
    exposure_spill_limit_mb: float = 1024
    exposure_close_timeout_s: float = 30.0

    def writer_config(self) -> "WriterConfig":
        """The ``exposure_*`` fields as the writer's validated configuration."""
        from experiment.exposure_log import WriterConfig

        prefix = "exposure_"
        fields = {k[len(prefix) :]: v for k, v in self.model_dump().items() if k.startswith(prefix)}
        return WriterConfig(**fields)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests override them with ``get_settings.cache_clear()``."""
    return Settings()
