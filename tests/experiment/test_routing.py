"""Routing users to the recommenders of their arms, with real bundles on disk."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from experiment.assignment import bucket
from experiment.config import ExperimentConfigError, ExperimentsFile
from experiment.routing import DEFAULT_ARM, Router
from recommenders.base import Recommender
from tests.experiment.bundles import fit_baseline, save_bundle, tiny_history

START = datetime(2021, 10, 1, tzinfo=UTC)
END = datetime(2021, 11, 1, tzinfo=UTC)
DURING = START + timedelta(days=3)


def plan(**overrides: Any) -> ExperimentsFile:
    experiment = {
        "name": "pop-vs-random",
        "salt": "s1",
        "start": START,
        "end": END,
        "arms": [
            {"name": "control", "weight": 50, "recommender": "popular"},
            {"name": "test", "weight": 50, "recommender": "random"},
        ],
        "forced": {"control": [4]},
    } | overrides
    return ExperimentsFile.model_validate({"experiments": [experiment]})


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    save_bundle(tmp_path, "popular")
    save_bundle(tmp_path, "random")
    return tmp_path


@pytest.fixture(scope="module")
def default() -> Recommender:
    return fit_baseline("popular")


def test_users_get_their_arms_recommender(artifacts: Path, default: Recommender) -> None:
    router = Router.load(plan(), artifacts, default)
    for user in range(1, 4):
        route = router.route(user, DURING)
        expected = "control" if bucket("s1", user) < 5000 else "test"
        assert route.arm == expected
        assert route.recommender.name == {"control": "popular", "test": "random"}[expected]
        assert route.assignment is not None
        assert (route.assignment.experiment, route.assignment.bucket) == (
            "pop-vs-random",
            bucket("s1", user),
        )
        ids = route.recommender.recommend(user, int(DURING.timestamp()), 2, tiny_history())
        assert len(set(ids.tolist())) == 2
    forced = router.route(4, DURING)
    assert (forced.arm, forced.assignment.forced) == ("control", True)  # type: ignore[union-attr]


def test_outside_the_dates_everyone_gets_the_default(artifacts: Path, default: Recommender) -> None:
    router = Router.load(plan(), artifacts, default)
    for at in (START - timedelta(seconds=1), END):
        route = router.route(1, at)
        assert (route.arm, route.recommender, route.assignment) == (DEFAULT_ARM, default, None)
    assert router.route(1, START).assignment is not None


def test_users_outside_coverage_get_the_default(artifacts: Path, default: Recommender) -> None:
    router = Router.load(plan(coverage=10), artifacts, default)
    routed = {u: router.route(u, DURING) for u in range(5, 2000)}
    inside = {u for u, r in routed.items() if r.assignment is not None}
    assert 0.05 < len(inside) / len(routed) < 0.15
    for user, route in routed.items():
        b = bucket("s1", user)
        assert (user in inside) == (b < 500 or 5000 <= b < 5500)
        if user not in inside:
            assert route.recommender is default


def test_arms_sharing_a_bundle_load_it_once(artifacts: Path, default: Recommender) -> None:
    arms = [
        {"name": "control", "weight": 50, "recommender": "popular"},
        {"name": "test", "weight": 50, "recommender": "popular"},
    ]
    router = Router.load(plan(arms=arms), artifacts, default)
    assert router.model_of("pop-vs-random", "control") is router.model_of("pop-vs-random", "test")


def test_an_unknown_recommender_stops_loading(artifacts: Path, default: Recommender) -> None:
    arms = [
        {"name": "control", "weight": 50, "recommender": "popular"},
        {"name": "test", "weight": 50, "recommender": "neural-x"},
    ]
    with pytest.raises(ExperimentConfigError) as error:
        Router.load(plan(arms=arms), artifacts, default)
    message = str(error.value)
    assert "experiment 'pop-vs-random', arm 'test': unknown recommender 'neural-x'" in message
    assert "known: " in message
    assert "fix the arm's recommender" in message


def test_a_missing_bundle_stops_loading(tmp_path: Path, default: Recommender) -> None:
    save_bundle(tmp_path, "popular")
    with pytest.raises(ExperimentConfigError) as error:
        Router.load(plan(), tmp_path, default)
    assert (
        f"experiment 'pop-vs-random', arm 'test': no 'random' bundle at {tmp_path / 'random'} "
        "(meta.json is missing); train and save it there"
    ) in str(error.value)


def test_a_bundle_of_another_recommender_stops_loading(
    artifacts: Path, default: Recommender
) -> None:
    arms = [
        {"name": "control", "weight": 50, "recommender": "popular"},
        {"name": "test", "weight": 50, "recommender": "random", "bundle": "popular"},
    ]
    with pytest.raises(ExperimentConfigError, match="holds a 'popular' bundle, not 'random'"):
        Router.load(plan(arms=arms), artifacts, default)
