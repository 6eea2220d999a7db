"""docker-compose.yml is valid and carries no secret (checked where a compose client exists)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def _config(compose: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"} | env
    return subprocess.run(
        [*compose, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        check=False,
    )


def test_compose_file_is_valid_with_the_three_services(compose: list[str]) -> None:
    result = _config(compose, POSTGRES_PASSWORD="not-a-real-secret")
    assert result.returncode == 0, result.stderr
    for service in ("postgres:", "prepare:", "api:", "healthcheck:", "service_healthy"):
        assert service in result.stdout


def test_compose_file_demands_the_password_from_the_environment(compose: list[str]) -> None:
    result = _config(compose)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
