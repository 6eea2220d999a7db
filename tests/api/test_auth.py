"""Access control: the admin token, its refusal in production when it is a placeholder,
the admin-only routes, and CORS (closed unless configured)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api.deps import AdminDep
from api.main import create_app
from feeddata.db import make_engine
from feedlab.cli import app as cli
from feedlab.settings import Settings, UnsafeSettingsError, get_settings
from tests.api import tiny_data

TOKEN = "3f9c1a7e5b2d48c6a0e4f1b9d7c35e82"  # random, for these tests only


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: nothing here depends on the database."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    engine = make_engine(url)
    tiny_data.fill(engine)
    engine.dispose()
    return url


def _app(settings: Settings, **changes: object) -> FastAPI:
    app = create_app(settings.model_copy(update=changes))
    app.add_api_route("/admin/probe", lambda: {"ok": True}, dependencies=[AdminDep])
    return app


@pytest.fixture
def admin_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(_app(settings, admin_token=SecretStr(TOKEN))) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_admin_token_opens_admin_routes(admin_client: TestClient) -> None:
    assert admin_client.get("/admin/probe", headers=_bearer(TOKEN)).json() == {"ok": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _bearer(TOKEN[:-1]),
        _bearer(TOKEN + "0"),
        _bearer(""),
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": ("Bearer " + "é" * 10).encode("latin-1")},
    ],
    ids=["none", "prefix", "longer", "empty", "no scheme", "basic", "not ascii"],
)
def test_anything_else_is_401(admin_client: TestClient, headers: Any) -> None:
    response = admin_client.get("/admin/probe", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "FEEDLAB_ADMIN_TOKEN" in response.json()["detail"]
    assert TOKEN not in response.text


def test_without_a_configured_token_admin_routes_are_closed(settings: Settings) -> None:
    for token in (None, SecretStr("")):
        with TestClient(_app(settings, admin_token=token)) as client:
            response = client.get("/admin/probe", headers=_bearer(""))
        assert response.status_code == 403
        assert "no FEEDLAB_ADMIN_TOKEN" in response.json()["detail"]


def test_the_report_is_admin_only(admin_client: TestClient) -> None:
    assert admin_client.get("/experiments/any/report").status_code == 401
    # with the token, the request reaches the route: no such experiment here
    response = admin_client.get("/experiments/any/report", headers=_bearer(TOKEN))
    assert response.status_code == 404


def test_feed_clients_need_no_token(admin_client: TestClient) -> None:
    params: dict[str, str | int] = {"id": 1, "time": "2021-10-01T13:00:00"}
    assert admin_client.get("/post/recommendations/", params=params).status_code == 200
    action = {"user_id": 1, "post_id": 10, "action": "like", "time": "2021-10-01T13:00:00"}
    assert admin_client.post("/feed/actions", json=action).status_code == 201
    for path in ("/user/1", "/post/10", "/experiments", "/health", "/metrics"):
        assert admin_client.get(path).status_code == 200, path


def test_the_schema_documents_the_bearer_scheme(admin_client: TestClient) -> None:
    schema = admin_client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/experiments/{name}/report"]["get"]["security"]


# --- production refuses placeholder tokens -------------------------------------------------

PLACEHOLDERS = [
    None,
    "",
    "   ",
    "change-me",
    "short-but-random-9f2",
    "change-me-please-change-me-please",
    "my-admin-token-for-production-use",
    "x" * 40,
    "abababababababababababababababab",
]


def _settings(env: str, token: str | None) -> Settings:
    return Settings(env=env, admin_token=None if token is None else SecretStr(token))  # type: ignore[arg-type]


@pytest.mark.parametrize("token", PLACEHOLDERS)
def test_production_refuses_a_missing_or_placeholder_token(token: str | None) -> None:
    settings = _settings("production", token)
    with pytest.raises(UnsafeSettingsError, match="FEEDLAB_ADMIN_TOKEN"):
        settings.check_serving()


def test_production_accepts_a_random_token_and_development_anything() -> None:
    _settings("production", TOKEN).check_serving()
    for token in PLACEHOLDERS:
        _settings("development", token).check_serving()


def test_production_refuses_cors_for_every_origin() -> None:
    settings = _settings("production", TOKEN).model_copy(update={"cors_origins": ["*"]})
    with pytest.raises(UnsafeSettingsError, match="FEEDLAB_CORS_ORIGINS"):
        settings.check_serving()


def test_the_app_refuses_to_start_in_production_with_a_placeholder(settings: Settings) -> None:
    unsafe = settings.model_copy(update={"env": "production", "admin_token": SecretStr("dev")})
    with pytest.raises(UnsafeSettingsError, match="placeholder"):
        create_app(unsafe)


def test_feedlab_serve_refuses_before_touching_anything(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDLAB_DATABASE_URL", database_url)
    monkeypatch.setenv("FEEDLAB_ENV", "production")
    monkeypatch.setenv("FEEDLAB_ADMIN_TOKEN", "change-me")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "refusing to serve: FEEDLAB_ADMIN_TOKEN looks like a placeholder" in result.stderr
    assert "change-me" not in result.stderr  # the token itself is never printed
    assert "Traceback" not in result.output


def test_settings_never_print_the_token() -> None:
    settings = _settings("production", TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())


# --- CORS -------------------------------------------------------------------------------

PREFLIGHT = {"Access-Control-Request-Method": "GET"}


def test_cors_is_closed_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://evil.example"}
    response = client.get("/post/10", headers=origin)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/post/10", headers=origin | PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_the_configured_origins(settings: Settings) -> None:
    allowed = "https://feed.example.org"
    app = create_app(settings.model_copy(update={"cors_origins": [allowed, "http://localhost"]}))
    with TestClient(app) as client:
        response = client.get("/post/10", headers={"Origin": allowed})
        assert response.headers["access-control-allow-origin"] == allowed
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
        preflight = client.options(
            "/feed/actions",
            headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        other = client.get("/post/10", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_origins_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEEDLAB_CORS_ORIGINS", "https://a.example, https://b.example,")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("FEEDLAB_CORS_ORIGINS", "")
    assert Settings().cors_origins == []
