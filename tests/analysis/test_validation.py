"""The statistics hold up on this platform's data: A/A re-salting keeps the false-positive
rate at alpha with uniform p-values, and 95 % intervals cover a planted truth 95 % of the
time."""

import pytest

from analysis.logs import reduce_logs
from analysis.synthetic_logs import synthetic_logs
from analysis.validation import COVERAGE_RANGE, FPR_RANGE, aa_resalt, coverage_simulation


@pytest.fixture(scope="module")
def aa():
    views, likes = synthetic_logs(users=3000, exposures=9000, likes=10_500, seed=0)
    users = reduce_logs(views, likes).users
    assert users is not None
    return aa_resalt(users, iterations=500, alpha=0.05)


def test_aa_false_positive_rate_of_the_primary_metric(aa):
    low, high = FPR_RANGE
    primary = aa.primary
    assert primary.tests == 500
    assert low <= primary.false_positive_rate <= high
    assert primary.ks_p_value > 0.001
    assert aa.passed


def test_aa_every_metric_is_calibrated(aa):
    # four metrics on 500 salts each: each rate within its 99.9 % binomial band around 0.05
    for metric in aa.metrics:
        assert metric.tests == 500
        assert 0.02 <= metric.false_positive_rate <= 0.085, metric
        assert sum(metric.p_value_histogram) == 500


def test_aa_uses_the_experiment_bucket_function():
    from experiment.assignment import bucket

    views, likes = synthetic_logs(users=50, exposures=100, likes=100)
    users = reduce_logs(views, likes).users
    assert users is not None
    result = aa_resalt(users, iterations=3, salt_prefix="check", control_share=0.3)
    expected = [sum(bucket(f"check-{i}", int(u)) < 3000 for u in users.user_id) for i in range(3)]
    assert result.users == 50
    assert list(result.control_users) == expected


def test_interval_coverage_over_simulated_experiments():
    result = coverage_simulation(experiments=300, users=2000, lift=0.1, seed=1)
    low, high = COVERAGE_RANGE
    assert low <= result.ratio_coverage <= high
    assert low <= result.ratio_relative_coverage <= high
    assert low <= result.mean_coverage <= high
    assert low <= result.mean_relative_coverage <= high
    assert result.passed
