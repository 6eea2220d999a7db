"""The whole report: verdicts for planted effects and broken experiments, JSON with every
number, and Markdown and HTML that open with the verdict and stand alone."""

import json
import math
import re

import pytest

from analysis.logs import reduce_logs
from analysis.render import to_html, to_markdown
from analysis.report import AnalysisConfig, analyse
from analysis.synthetic_logs import synthetic_logs

CONFIG = AnalysisConfig(bootstrap_replicates=200)


def report_for(lift: float, users: int = 8000, seed: int = 11, config=CONFIG, drop_test=0.0):
    views, likes = synthetic_logs(
        users=users, exposures=3 * users, likes=4 * users, lift=lift, seed=seed
    )
    if drop_test:
        test_users = views.loc[views["exp_group"] == "test", "user_id"].unique()
        dropped = test_users[: int(len(test_users) * drop_test)]
        views = views[~views["user_id"].isin(dropped)]
    return analyse(reduce_logs(views, likes, experiment="demo"), config)


@pytest.fixture(scope="module")
def winner():
    return report_for(0.15)


def test_a_planted_lift_ships(winner):
    assert winner.verdict.decision == "ship"
    assert re.fullmatch(
        r"test raised hitrate@5 by \d+\.\d % \(95 % CI \d+\.\d % to \d+\.\d %\), significant; "
        r"health checks passed; recommendation: ship",
        winner.verdict.text,
    )
    primary = winner.metric("hitrate")
    low, high = primary.headline.relative_ci
    assert low < 0.15 < high
    assert primary.cuped is not None
    assert primary.cuped.variance_reduction is not None
    assert primary.cuped.variance_reduction > 0
    assert winner.health.passed


def test_every_metric_has_every_column(winner):
    assert [m.name for m in winner.metrics] == ["hitrate", "ctr", "likes_per_user", "like_share"]
    for metric in winner.metrics:
        assert metric.effect.ok
        assert metric.bootstrap is not None
        assert metric.bootstrap.reason is None
        assert metric.mann_whitney is not None
        assert metric.mann_whitney.reason is None
        assert metric.p_value_holm >= metric.headline.p_value
        # the bootstrap interval and the analytic one tell the same story
        boot_low, boot_high = metric.bootstrap.relative_ci
        low, high = metric.effect.relative_ci
        assert abs(boot_low - low) < 0.5 * (high - low)
        assert abs(boot_high - high) < 0.5 * (high - low)


def test_a_planted_loss_keeps_control():
    report = report_for(-0.15)
    assert report.verdict.decision == "keep control"
    assert report.verdict.text.startswith("test lowered hitrate@5 by")
    assert report.verdict.text.endswith("recommendation: do not ship, keep control")


def test_no_effect_on_a_small_sample_says_keep_running():
    report = report_for(0.0, users=2500, config=AnalysisConfig(min_users_per_arm=500))
    assert report.verdict.decision == "keep running"
    assert "not significant" in report.verdict.text
    assert "users per arm" in report.verdict.text


def test_sample_ratio_mismatch_means_investigate():
    report = report_for(0.15, drop_test=0.1)
    assert not report.health.srm.passed
    assert report.verdict.decision == "investigate"
    assert "sample ratio mismatch" in report.verdict.text


def test_small_arms_and_implausible_lifts_are_flagged():
    small = report_for(0.0, users=600)
    assert not small.health.minimum_sample.passed
    assert "fewer than 1,000 users" in small.verdict.text
    huge = report_for(1.5)
    assert not huge.health.lift.passed
    assert huge.verdict.decision == "investigate"
    assert "implausibly large lift" in huge.verdict.text


def test_configured_weights_drive_the_sample_ratio_check():
    views, likes = synthetic_logs(users=4000, exposures=8000, likes=9000, control_share=0.3)
    data = reduce_logs(views, likes)
    assert not analyse(data, CONFIG).health.srm.passed  # against 50/50
    weighted = AnalysisConfig(weights={"control": 30, "test": 70}, bootstrap_replicates=0)
    report = analyse(data, weighted)
    assert report.health.srm.passed
    assert report.inputs.weights == (30, 70)


def test_json_has_every_number_and_the_inputs(winner):
    text = json.dumps(winner.to_dict(), allow_nan=False)
    data = json.loads(text)
    inputs = data["inputs"]
    assert inputs["experiment"] == "demo"
    assert inputs["window_s"] == 3600
    assert inputs["k"] == 5
    assert inputs["code_version"].startswith("0.1.0")
    assert len(inputs["time_range"]) == 2
    assert inputs["users_analysed"] == 8000
    hitrate = data["metrics"][0]
    assert hitrate["primary"] is True
    assert hitrate["effect"]["p_value"] == pytest.approx(winner.metric("hitrate").effect.p_value)
    assert set(hitrate) >= {"effect", "cuped", "bootstrap", "mann_whitney", "p_value_holm"}
    assert data["health"]["passed"] is True
    assert data["health"]["srm"]["passed"] is True
    assert data["power"]["mde_relative"] > 0
    assert len(data["daily"]) == 14
    assert data["verdict"]["decision"] == "ship"


def test_markdown_opens_with_the_verdict(winner):
    lines = to_markdown(winner).splitlines()
    assert lines[0] == "# A/B report demo: ship"
    assert lines[2] == f"**{winner.verdict.text}.**"
    assert lines[4].startswith("✅ sample ratio")
    text = "\n".join(lines)
    assert text.index("## Metrics") < text.index("## Plots")
    assert text.count("data:image/svg+xml;base64,") == 3


def test_html_is_self_contained(winner):
    page = to_html(winner)
    assert page.startswith("<!DOCTYPE html>")
    head = page[: page.index("<h2>")]
    assert winner.verdict.text in head
    assert page.count("<svg") == 3
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "@import" not in page
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page)
    assert embedded is not None
    assert json.loads(embedded.group(1))["verdict"]["decision"] == "ship"


def test_a_single_arm_gives_no_verdict_and_still_renders():
    views, likes = synthetic_logs(users=300, exposures=600, likes=700)
    views = views[views["exp_group"] == "control"]
    report = analyse(reduce_logs(views, likes), CONFIG)
    assert report.verdict.decision == "no verdict"
    assert "the test arm has no users" in report.verdict.text
    assert math.isnan(report.metric("hitrate").effect.p_value)
    assert "no verdict" in to_markdown(report)
    assert "<svg" in to_html(report)
    json.dumps(report.to_dict(), allow_nan=False)
