"""The experiment file: the shipped one loads; every mistake stops loading with a message
that names the place and says what to fix."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from experiment.config import ExperimentConfigError, ExperimentsFile, load_experiments
from tests.conftest import REPO

VALID = """
[[experiments]]
name = "pop-vs-random"
salt = "s1"
start = 2021-10-01T00:00:00Z
end = 2021-10-15
coverage = 100

[[experiments.arms]]
name = "control"
weight = 50
recommender = "popular"

[[experiments.arms]]
name = "test"
weight = 50
recommender = "random"

[experiments.forced]
test = [1, 2]
"""


def write(tmp_path: Path, text: str, name: str = "experiments.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ExperimentConfigError) as error:
        load_experiments(write(tmp_path, text))
    return str(error.value)


def test_the_shipped_file_is_valid() -> None:
    plan = load_experiments(REPO / "experiments.toml")
    [experiment] = plan.experiments
    assert [(a.name, a.recommender, a.weight) for a in experiment.arms] == [
        ("control", "catboost", 50),
        ("test", "neural", 50),
    ]
    assert experiment.salt == "feed-ab-2026"


def test_a_valid_file(tmp_path: Path) -> None:
    [experiment] = load_experiments(write(tmp_path, VALID)).experiments
    assert experiment.start == datetime(2021, 10, 1, tzinfo=UTC)
    assert experiment.end == datetime(2021, 10, 15, tzinfo=UTC)  # a date is midnight UTC
    assert experiment.assign(1) is not None
    assert experiment.assign(1).arm == "test"  # type: ignore[union-attr]
    assert experiment.assign(1).forced  # type: ignore[union-attr]
    assert experiment.is_active(datetime(2021, 10, 14, 23, 59, tzinfo=UTC))
    assert not experiment.is_active(datetime(2021, 10, 15, tzinfo=UTC))


def test_yaml_is_read_the_same(tmp_path: Path) -> None:
    yaml_text = """
experiments:
  - name: pop-vs-random
    salt: s1
    start: 2021-10-01T00:00:00Z
    end: 2021-10-15
    arms:
      - {name: control, weight: 50, recommender: popular}
      - {name: test, weight: 50, recommender: random}
    forced: {test: [1, 2]}
"""
    from_yaml = load_experiments(write(tmp_path, yaml_text, "experiments.yaml"))
    assert from_yaml == load_experiments(write(tmp_path, VALID))


def test_assignment_follows_the_bucket_ranges(tmp_path: Path) -> None:
    [experiment] = load_experiments(write(tmp_path, VALID)).experiments
    # salt "s1": the bucket decides, control owns 0-4999
    for user in range(3, 200):
        assigned = experiment.assign(user)
        assert assigned is not None
        assert assigned.arm == ("control" if assigned.bucket < 5000 else "test")
        assert not assigned.forced


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('weight = 50\nrecommender = "random"', 'weight = 40\nrecommender = "random"'),
            "arm weights must sum to 100, got 90 (control 50, test 40)",
        ),
        (('name = "test"', 'name = "treatment"'), "Input should be 'control' or 'test'"),
        (
            ("test = [1, 2]", "test = [1, 2]\ncontrol = [2]"),
            "user 2 is forced into both 'test' and 'control'; keep it in one list",
        ),
        (("test = [1, 2]", "treatment = [1]"), "forced names unknown arm(s) ['treatment']"),
        (("end = 2021-10-15", "end = 2021-09-15"), "end (2021-09-15 00:00:00+00:00) must be after"),
        (("end = 2021-10-15", 'end = "next week"'), "'next week' is not an ISO-8601 date"),
        (('salt = "s1"', 'salt = ""'), "salt: String should have at least 1 character"),
        (("coverage = 100", "coverage = 0"), "coverage: Input should be greater than 0"),
        (("coverage = 100", "coverge = 10"), "coverge: Extra inputs are not permitted"),
    ],
)
def test_mistakes_say_what_to_fix(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in VALID
    error = load_error(tmp_path, VALID.replace(old, new, 1))
    assert message in error
    assert "experiment 'pop-vs-random'" in error


def test_experiments_must_not_overlap_in_time(tmp_path: Path) -> None:
    second = VALID.replace('"pop-vs-random"', '"second"').replace(
        "start = 2021-10-01T00:00:00Z", "start = 2021-10-10T00:00:00Z"
    )
    error = load_error(tmp_path, VALID + second)
    assert "experiments 'pop-vs-random' and 'second' overlap in time" in error
    assert "end 'pop-vs-random' at or before 2021-10-10T00:00:00+00:00" in error


def test_names_must_be_unique(tmp_path: Path) -> None:
    later = VALID.replace("start = 2021-10-01T00:00:00Z", "start = 2021-11-01T00:00:00Z")
    later = later.replace("end = 2021-10-15", "end = 2021-11-15")
    assert "names must be unique; repeated: ['pop-vs-random']" in load_error(
        tmp_path, VALID + later
    )


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentConfigError, match="not a file; fix the path or unset it"):
        load_experiments(tmp_path / "nope.toml")
    assert "is not valid toml" in load_error(tmp_path, "[[experiments]\nname=")


def test_an_empty_file_has_no_experiments(tmp_path: Path) -> None:
    assert load_experiments(write(tmp_path, "")) == ExperimentsFile()
