"""Experiment reports at course size: 65,000 users, 200,000 exposures, 230,000 likes over
two weeks, from the course's log files (in-process and through ``feedlab report``) and from
PostgreSQL; plus the A/A false-positive rate and the interval coverage behind the numbers.

Run alone: ``python -m bench.bench_report``.
"""

import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from analysis.database import read_experiment
from analysis.logs import read_likes, read_views, reduce_logs
from analysis.render import to_html, to_markdown
from analysis.report import analyse
from analysis.synthetic_logs import synthetic_logs
from analysis.validation import aa_resalt, coverage_simulation
from bench.pg import fresh_database
from bench.report import Result
from feeddata.db import create_schema, make_engine

USERS, EXPOSURES, LIKES = 65_000, 200_000, 230_000
LIFT = 0.05
REPEATS = 3
AA_SALTS = 500
COVERAGE_EXPERIMENTS = 1000
EXPERIMENT = "bench-report"


def _report_from_files(views: Path, likes: Path) -> dict[str, float]:
    """Seconds of each step of one report, every format rendered."""
    marks = [time.perf_counter()]
    frames = read_views(views), read_likes(likes)
    marks.append(time.perf_counter())
    data = reduce_logs(*frames, experiment=EXPERIMENT)
    marks.append(time.perf_counter())
    report = analyse(data)
    marks.append(time.perf_counter())
    report.to_dict(), to_markdown(report), to_html(report)
    marks.append(time.perf_counter())
    steps = ("read CSV", "reduce to users", "statistics", "render json+md+html")
    seconds = {step: marks[i + 1] - marks[i] for i, step in enumerate(steps)}
    seconds["total"] = marks[-1] - marks[0]
    return seconds


def _cli_seconds(views: Path, likes: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of ``feedlab report --format html`` as a process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "feedlab.cli", "report", "--views", str(views), "--likes",
         str(likes), "--format", "html", "--out", str(out)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mb


def _copy(conn: object, table: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.copy_expert(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH CSV", buffer)


def _to_time(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(seconds, unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")


def _load_postgres(views: pd.DataFrame, likes: pd.DataFrame) -> str:
    url = fresh_database("feedlab_bench_report")
    engine = make_engine(url)
    create_schema(engine)
    request = [f"r{i}" for i in range(len(views))]
    posts = views["recommendations"].str.strip("[]").str.split()
    exposure_posts = pd.DataFrame({"request_id": request, "post_id": posts}).explode("post_id")
    exposure_posts["position"] = exposure_posts.groupby(level=0).cumcount()
    exposures = pd.DataFrame(
        {
            "request_id": request,
            "experiment": EXPERIMENT,
            "arm": views["exp_group"],
            "bucket": 0,
            "forced": False,
            "user_id": views["user_id"],
            "request_time": _to_time(views["timestamp"]),
            "served_at": _to_time(views["timestamp"]),
            "recommender": "bench",
            "model_version": "1",
            "post_ids": views["recommendations"],
        }
    )
    feed = pd.DataFrame(
        {
            "timestamp": _to_time(likes["timestamp"]),
            "user_id": likes["user_id"],
            "post_id": likes["post_id"],
            "action": "like",
            "target": 0,
        }
    )
    raw = engine.raw_connection()
    try:
        _copy(raw, "exposures", exposures)
        _copy(raw, "exposure_posts", exposure_posts[["request_id", "position", "post_id"]])
        _copy(raw, "feed_data", feed)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return url


def run() -> None:
    rows: list[list[object]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        views, likes = synthetic_logs(
            users=USERS, exposures=EXPOSURES, likes=LIKES, lift=LIFT, seed=1
        )
        views_csv, likes_csv = folder / "views.csv", folder / "likes.csv"
        views.to_csv(views_csv, index=False)
        likes.to_csv(likes_csv, index=False)

        runs = [_report_from_files(views_csv, likes_csv) for _ in range(REPEATS)]
        for step in runs[0]:
            values = [r[step] for r in runs]
            rows.append([f"files, in-process: {step}", statistics.median(values), min(values)])
        cli, peak = _cli_seconds(views_csv, likes_csv, folder / "report.html")
        rows.append(["files, `feedlab report --format html` (process)", cli, cli])

        url = _load_postgres(views, likes)
        engine = make_engine(url)
        timings = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            data = read_experiment(bind=engine, experiment=EXPERIMENT)
            analyse(data)
            timings.append(time.perf_counter() - started)
        engine.dispose()
        rows.append(
            ["PostgreSQL, in-process: SQL + statistics", statistics.median(timings), min(timings)]
        )

        data = reduce_logs(views, likes)
        report = analyse(data)
        started = time.perf_counter()
        assert data.users is not None
        aa = aa_resalt(data.users, iterations=AA_SALTS)
        aa_seconds = time.perf_counter() - started
        started = time.perf_counter()
        coverage = coverage_simulation(experiments=COVERAGE_EXPERIMENTS, users=2000, seed=0)
        coverage_seconds = time.perf_counter() - started
    rows.append([f"A/A: {AA_SALTS} re-saltings of {USERS:,} users", aa_seconds, aa_seconds])
    rows.append(
        [
            f"coverage: {COVERAGE_EXPERIMENTS} simulated experiments",
            coverage_seconds,
            coverage_seconds,
        ]
    )
    notes.append(
        f"Data: analysis.synthetic_logs, {USERS:,} users, {EXPOSURES:,} exposures (k=5), "
        f"{LIKES:,} likes, 14 days, planted lift {LIFT:.0%}; report verdict: "
        f'"{report.verdict.text}".'
    )
    notes.append(
        f"In-process times are the median and best of {REPEATS} runs with a 1,000-replicate "
        f"bootstrap; the process time includes Python start-up and imports; its peak memory "
        f"was {peak:,.0f} MB."
    )
    for m in aa.metrics:
        notes.append(
            f"A/A {m.metric}: false-positive rate {m.false_positive_rate:.3f} "
            f"(95 % CI {m.fpr_ci[0]:.3f}-{m.fpr_ci[1]:.3f}) at alpha 0.05, KS uniformity "
            f"p = {m.ks_p_value:.3f}"
        )
    notes.append(
        f"Coverage of 95 % intervals over {coverage.experiments} experiments x "
        f"{coverage.users_per_experiment:,} users with a planted {coverage.lift:.0%} lift: "
        f"ratio (delta method) {coverage.ratio_coverage:.3f} absolute, "
        f"{coverage.ratio_relative_coverage:.3f} relative; mean (Welch) "
        f"{coverage.mean_coverage:.3f} absolute, {coverage.mean_relative_coverage:.3f} relative."
    )
    Result(
        name="report",
        title="Experiment report at course size (65,000 users, 200,000 exposures)",
        command="python -m bench.bench_report  (bench/bench_report.py)",
        columns=["step", "median s", "best s"],
        rows=rows,
        notes=notes,
        data={
            "aa": [vars(m) | {"passed": m.passed} for m in aa.metrics],
            "coverage": vars(coverage),
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    ).save()


if __name__ == "__main__":
    run()
