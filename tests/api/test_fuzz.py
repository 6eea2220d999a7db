"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis).

Every operation gets schema-valid and schema-violating requests against the app on the tiny
data set with an experiment and an admin token, on SQLite and PostgreSQL. Every response
must be documented: no 500, a documented status code, content type and body schema;
valid requests accepted, invalid ones rejected. Half the generated ids (and experiment
names) are steered to ones that exist, so the fuzzer gets past 404s into the
recommendation, like, experiment and report paths.

Bounded for CI (``FEEDLAB_FUZZ_EXAMPLES`` per operation and mode, default 25,
derandomized so a run is reproducible); for a long hunt: ``FEEDLAB_FUZZ_EXAMPLES=1000 pytest
tests/api/test_fuzz.py``, or ``st run http://127.0.0.1:8000/openapi.json`` against a
running service, which adds stateful sequences.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import Case, GenerationMode, HookContext
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import BaseSchema

from api.main import create_app
from feedlab.settings import Settings
from tests.api import experiment_setup, tiny_data
from tests.api.experiment_setup import save_arm_bundles, write_experiments

EXAMPLES = int(os.environ.get("FEEDLAB_FUZZ_EXAMPLES", "25"))
ADMIN_TOKEN = "9b1e4c7a2f5d8e3b6a0c9f4e7d2b5a8c"  # random, for this test only
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
USERS = tiny_data.USERS["user_id"].tolist()
POSTS = tiny_data.POSTS["post_id"].tolist()
INT32 = range(-(2**31), 2**31)


def _steer(value: Any, known: list[int]) -> Any:
    """An even 32-bit id becomes a known one; anything else (odd, out of range, not an
    integer) stays as generated, so a valid id stays valid and an invalid one invalid."""
    if isinstance(value, int) and not isinstance(value, bool) and value in INT32 and value % 2 == 0:
        return known[(value // 2) % len(known)]
    return value


@pytest.fixture
def api_schema(settings: Settings, tmp_path: Path) -> Iterator[BaseSchema]:
    """The app with an experiment (popularity against random) and an admin token, so the
    experiment and report routes are fuzzed past their 404 and 401."""
    save_arm_bundles(settings.artifacts)
    settings = settings.model_copy(
        update={
            "experiments": write_experiments(tmp_path / "experiments.toml"),
            "admin_token": SecretStr(ADMIN_TOKEN),
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    schema.config.update(headers=ADMIN)  # sent as it is, never fuzzed

    @schema.hook
    def map_query(context: HookContext, query: dict[str, Any] | None) -> dict[str, Any] | None:
        if query and "id" in query:
            query["id"] = _steer(query["id"], USERS)
        return query

    @schema.hook
    def map_path_parameters(
        context: HookContext, path: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        for name, known in (("user_id", USERS), ("post_id", POSTS)):
            if path and name in path:
                path[name] = _steer(path[name], known)
        if path and isinstance(path.get("name"), str) and len(path["name"]) % 2 == 0:
            path["name"] = experiment_setup.NAME
        return path

    @schema.hook
    def map_body(context: HookContext, body: Any) -> Any:
        if isinstance(body, dict):
            for name, known in (("user_id", USERS), ("post_id", POSTS)):
                if name in body:
                    body[name] = _steer(body[name], known)
        return body

    yield schema
    shutdown_lifespans()  # the app's lifespan, started by its first request, ends here


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_response_is_documented(api_schema: BaseSchema, mode: GenerationMode) -> None:
    failures = {}
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the schema itself is valid
        operation = result.ok()

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case) -> None:
            case.call_and_validate()

        try:
            check()
        except Unsatisfiable:
            # nothing to make invalid: no parameters, or a free-form string
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # report every operation's failure, not only the first
            failures[operation.label] = error
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
