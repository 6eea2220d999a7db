"""The bucket function of SPEC.md and the arm ranges built on it."""

import math

import numpy as np
import pytest
from scipy import stats

from experiment.assignment import BUCKETS, arm_of_bucket, bucket, bucket_ranges

GOLDEN = [
    ("feed-ab-2026", 1, 7047),
    ("feed-ab-2026", 7, 4000),
    ("feed-ab-2026", 42, 8625),
    ("feed-ab-2026", 200, 3850),
    ("feed-ab-2026", 163204, 5982),
    ("x", 1, 3646),
    ("x", 42, 5765),
]
Z_999 = stats.norm.ppf(1 - 0.001 / 2)  # two-sided 99.9 %


@pytest.mark.parametrize(("salt", "user_id", "expected"), GOLDEN)
def test_golden_values(salt: str, user_id: int, expected: int) -> None:
    assert bucket(salt, user_id) == expected


def buckets(salt: str, n: int) -> np.ndarray:
    return np.fromiter((bucket(salt, u) for u in range(n)), dtype=np.int64, count=n)


@pytest.fixture(scope="module")
def million() -> np.ndarray:
    return buckets("feed-ab-2026", 1_000_000)


@pytest.mark.parametrize("control_weight", [50, 30, 90])
def test_arm_shares_of_a_million_ids_lie_in_the_binomial_interval(
    million: np.ndarray, control_weight: int
) -> None:
    ranges = bucket_ranges({"control": control_weight, "test": 100 - control_weight})
    in_control = int(np.sum(million < ranges[0].stop))
    n, p = len(million), control_weight / 100
    half_width = Z_999 * math.sqrt(p * (1 - p) / n)
    assert abs(in_control / n - p) <= half_width, (in_control, half_width)


def test_buckets_are_uniform(million: np.ndarray) -> None:
    counts = np.bincount(million, minlength=BUCKETS)
    assert stats.chisquare(counts).pvalue > 0.001


def test_assignments_under_two_salts_are_independent() -> None:
    n = 200_000
    a = buckets("feed-ab-2026", n) < 5000
    b = buckets("another-experiment", n) < 5000
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_coverage_never_moves_a_user_to_the_other_arm(million: np.ndarray) -> None:
    sample = million[:50_000]
    arms = {}
    for coverage in (1, 10, 50, 100):
        ranges = bucket_ranges({"control": 50, "test": 50}, coverage)
        arms[coverage] = [arm_of_bucket(ranges, int(b)) for b in sample]
    full = arms[100]
    for coverage, assigned in arms.items():
        assert all(a is None or a == f for a, f in zip(assigned, full, strict=True))
        share = sum(a is not None for a in assigned) / len(sample)
        assert share == pytest.approx(coverage / 100, abs=0.01)


def test_fifty_fifty_control_owns_the_first_half() -> None:
    control, test = bucket_ranges({"control": 50, "test": 50})
    assert (control.start, control.stop, test.start, test.stop) == (0, 5000, 5000, 10000)


def test_weights_must_sum_to_100() -> None:
    with pytest.raises(ValueError, match="sum to 100, got 90"):
        bucket_ranges({"control": 50, "test": 40})
