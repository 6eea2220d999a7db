"""All runtime configuration, read once from ``FEEDLAB_*`` environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    log_format: Literal["json", "text"] = "json"
    """``json``: one JSON object per log line, with the request id; ``text`` for a terminal."""

    env: Literal["development", "production"] = "development"
    """``production`` refuses to serve with a missing or placeholder admin token."""

    admin_token: SecretStr | None = None
    """Bearer token of the admin endpoints (reports). Unset: those endpoints answer 403."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to call the API from a browser, comma-separated; none by default."""

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Larger request bodies are refused with 413 before they are read."""

    max_query_bytes: int = Field(default=2048, ge=256)
    """Longer query strings are refused with 422."""

    request_threads: int = Field(default=2, ge=1)
    """Threads of a worker's request pool: the endpoints that wait on the database (feed
    actions, profiles, posts, readiness, reports) run there, at most this many at once;
    more wait their turn. Recommendations are computed on the event loop, outside it."""

    # The exposure writer (see experiment.exposure_log.WriterConfig for their meaning).
    exposure_spill_dir: Path | None = None
    exposure_memory_limit: int = 50_000
    exposure_batch_size: int = 1_000
    exposure_linger_s: float = 0.2
    exposure_max_backoff_s: float = 5.0
    exposure_spill_limit_mb: float = 1024
    exposure_close_timeout_s: float = 30.0

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    def check_serving(self) -> None:
        """Refuse to serve in production with an admin token anyone could guess.

        Raises :class:`UnsafeSettingsError` naming the variable to set.
        """
        if self.env != "production":
            return
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        how = (
            "set FEEDLAB_ADMIN_TOKEN to a random secret of at least "
            f"{MIN_ADMIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
        )
        if not token.strip():
            raise UnsafeSettingsError(f"FEEDLAB_ENV=production needs an admin token; {how}")
        if len(token) < MIN_ADMIN_TOKEN_CHARS or _looks_like_placeholder(token):
            raise UnsafeSettingsError(
                f"FEEDLAB_ADMIN_TOKEN looks like a placeholder ({len(token)} characters); {how}"
            )
        if "*" in self.cors_origins:
            raise UnsafeSettingsError(
                "FEEDLAB_CORS_ORIGINS='*' lets every web site call the API from its visitors' "
                "browsers; list the allowed origins instead (e.g. https://feed.example.org)"
            )

    def writer_config(self) -> "WriterConfig":
        """The ``exposure_*`` fields as the writer's validated configuration."""
        from experiment.exposure_log import WriterConfig

        prefix = "exposure_"
        fields = {k[len(prefix) :]: v for k, v in self.model_dump().items() if k.startswith(prefix)}
        return WriterConfig(**fields)


MIN_ADMIN_TOKEN_CHARS = 24
_PLACEHOLDER_WORDS = ("change", "secret", "password", "token", "example", "admin", "test")


class UnsafeSettingsError(ValueError):
    """Settings that must not reach production; the message says which variable to fix."""


def _looks_like_placeholder(token: str) -> bool:
    lowered = token.lower()
    # "change-me-please-change-me" is long and still a placeholder; so is "aaaa...".
    return len(set(token)) < 8 or any(word in lowered for word in _PLACEHOLDER_WORDS)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests override them with ``get_settings.cache_clear()``."""
    return Settings()
