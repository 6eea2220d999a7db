"""docker-compose.yml is valid and carries no secret (checked where a compose client exists)."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    return command


SECRETS = ("POSTGRES_PASSWORD", "FEEDLAB_ADMIN_TOKEN")
TOKEN = "not-a-real-token-only-for-compose-config"


def _config(compose: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in SECRETS} | env
    return subprocess.run(
        [*compose, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        check=False,
    )


def _services(compose: list[str]) -> dict[str, Any]:
    result = _config(compose, POSTGRES_PASSWORD="not-a-real-secret", FEEDLAB_ADMIN_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def test_compose_file_is_valid_with_the_three_services(compose: list[str]) -> None:
    services = _services(compose)
    assert set(services) == {"postgres", "prepare", "api"}
    assert services["prepare"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    ready = services["api"]["depends_on"]["prepare"]["condition"]
    assert ready == "service_completed_successfully"


def test_the_api_runs_in_production_with_two_workers_and_a_readiness_check(
    compose: list[str],
) -> None:
    api = _services(compose)["api"]
    assert api["environment"]["FEEDLAB_ENV"] == "production"
    assert api["environment"]["FEEDLAB_ADMIN_TOKEN"] == TOKEN
    command = api["command"]
    assert command[command.index("--workers") + 1] == "2"
    assert any("/health/ready" in part for part in api["healthcheck"]["test"])


def test_data_and_bundles_live_in_volumes(compose: list[str]) -> None:
    services = _services(compose)
    mounts = {name: [str(v).split(":")[:2] for v in s["volumes"]] for name, s in services.items()}
    assert ["pgdata", "/var/lib/postgresql/data"] in mounts["postgres"]
    for name in ("prepare", "api"):  # the job writes the bundles the API reads
        assert ["artifacts", "/data/artifacts"] in mounts[name]
    assert services["api"]["environment"]["FEEDLAB_ARTIFACTS"] == "/data/artifacts"


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_file_demands_the_secrets_from_the_environment(
    compose: list[str], secret: str
) -> None:
    given = {"POSTGRES_PASSWORD": "not-a-real-secret", "FEEDLAB_ADMIN_TOKEN": TOKEN}
    del given[secret]
    result = _config(compose, **given)
    assert result.returncode != 0
    assert secret in result.stderr


def test_no_secret_is_written_in_the_file() -> None:
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = raw["services"]
    # required references to the environment (":?" fails without them), never values
    assert services["api"]["environment"]["FEEDLAB_ADMIN_TOKEN"].startswith(
        "${FEEDLAB_ADMIN_TOKEN:?"
    )
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert ":${POSTGRES_PASSWORD:?" in raw["x-feedlab-env"]["FEEDLAB_DATABASE_URL"]


def test_the_prepare_job_and_the_api_use_the_experiment_file_in_the_image(
    compose: list[str],
) -> None:
    services = _services(compose)
    path = services["api"]["environment"]["FEEDLAB_EXPERIMENTS"]
    assert services["prepare"]["environment"]["FEEDLAB_EXPERIMENTS"] == path
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    assert path == "/app/experiments.toml"
    assert "WORKDIR /app" in dockerfile
    assert "COPY experiments.toml ./" in dockerfile
