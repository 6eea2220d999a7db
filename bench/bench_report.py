"""Experiment reports at course size: 65,000 users, 200,000 exposures, 230,000 likes over
two weeks, from the course's log files (in-process and through ``feedlab report``) and from
PostgreSQL; plus the A/A false-positive rate and the interval coverage behind the numbers.
At scale: 20 million exposures in PostgreSQL, ``feedlab report`` timed as a process.

Run alone: ``python -m bench.bench_report`` (course size), ``python -m bench.bench_report
--scale`` (20 million exposures; about ten minutes, most of it filling the database).
"""

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, text

from analysis.database import read_experiment
from analysis.logs import read_likes, read_views, reduce_logs
from analysis.render import to_html, to_markdown
from analysis.report import analyse
from analysis.synthetic_logs import synthetic_logs
from analysis.validation import aa_resalt, coverage_simulation
from bench.pg import fresh_database
from bench.report import Result
from feeddata.db import create_schema, make_engine
from feeddata.schema import exposure_posts, exposures, feed_data

USERS, EXPOSURES, LIKES = 65_000, 200_000, 230_000
LIFT = 0.05
REPEATS = 3
AA_SALTS = 500
COVERAGE_EXPERIMENTS = 1000
EXPERIMENT = "bench-report"

# At scale: the course network's users (every user the service can serve) over two weeks.
SCALE_EXPOSURES = 20_000_000
SCALE_USERS = 163_205
SCALE_LIKES_PER_EXPOSURE = 1.15  # as in the course-size logs: 230,000 / 200,000
SCALE_DB = "feedlab_bench_report_pg"
SCALE_START = "2021-12-30"
SCALE_DAYS, PRE_DAYS = 14, 28
POSTS, K, WINDOW_S = 7_000, 5, 3600


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


# Uniform [0, 1) from a 64-bit hash of (i, seed): every row is a pure function of its
# number, so the fill needs no staging tables and gives the same data every time.
_UNIFORM = """CREATE FUNCTION bench_uniform(bigint, bigint) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (hashint8extended($1, $2) & 2147483647)::float8 / 2147483648 $$"""
# Exposure i: appended in time order as the service logs them; heavier users more often;
# arms 50/50 by user; five posts. Shown post j is liked with the user's propensity
# (0.5 % to 7.5 %, 5 % higher in the test arm), up to two windows later.
_USER = "(1 + floor(:users * power(bench_uniform(i, 1), 1.25))::int)"
_TIME = "(CAST(:start AS timestamp) + make_interval(secs => (i - 1) * :span / :n))"
_IS_TEST = "(bench_uniform({user}, 10) >= 0.5)"
_POST = "(1 + floor(bench_uniform(i * 8 + {j}, 3) * :posts)::int)"
_PROPENSITY = "(0.005 + 0.07 * power(bench_uniform({user}, 11), 2))"


def _fill_exposures(conn: Connection, params: dict[str, object]) -> None:
    posts = ", ".join(_POST.format(j=j) for j in range(K))
    conn.execute(
        text(f"""
        INSERT INTO exposures
        SELECT md5(i::text), :experiment,
            CASE WHEN {_IS_TEST.format(user="u")} THEN 'test' ELSE 'control' END,
            floor(bench_uniform(u, 10) * 10000)::int, false, u, t, t, 'bench', '1',
            '[' || concat_ws(' ', {posts}) || ']'
        FROM (SELECT i, {_USER} AS u, {_TIME} AS t FROM generate_series(1, :n) i) s
        """),
        params,
    )


def _fill_likes(conn: Connection, params: dict[str, object]) -> int:
    """Likes of shown posts, then background likes (half of them before the experiment,
    the CUPED covariate) up to the total; returns the number of likes."""
    shown = conn.execute(
        text(f"""
        INSERT INTO feed_data (timestamp, user_id, post_id, action, target)
        SELECT t + make_interval(secs => floor(bench_uniform(i * 8 + j, 5) * 2 * :window)),
            u, {_POST.format(j="j")}, 'like', 0
        FROM (SELECT i, {_USER} AS u, {_TIME} AS t FROM generate_series(1, :n) i) s,
            generate_series(0, {K - 1}) j
        WHERE bench_uniform(i * 8 + j, 4) < {_PROPENSITY.format(user="u")}
            * CASE WHEN {_IS_TEST.format(user="u")} THEN 1 + :lift ELSE 1 END
        """),
        params,
    ).rowcount
    background = max(int(params["likes"]) - shown, 0)  # type: ignore[call-overload]
    conn.execute(
        text("""
        INSERT INTO feed_data (timestamp, user_id, post_id, action, target)
        SELECT CAST(:start AS timestamp)
                + make_interval(secs => ((i - 1) * :all_span / :background) - :pre_span),
            1 + floor(:users * power(bench_uniform(i, 6), 1.25))::int,
            1 + floor(bench_uniform(i, 8) * :posts)::int, 'like', 0
        FROM generate_series(1, :background) i
        """),
        {**params, "background": background},
    )
    return shown + background


def fill_at_scale(
    *, n_exposures: int = SCALE_EXPOSURES, users: int = SCALE_USERS, name: str = SCALE_DB
) -> tuple[str, dict[str, float]]:
    """A throwaway database with ``n_exposures`` exposures of ``users`` users and about
    1.15 likes per exposure, generated by the server (INSERT ... SELECT generate_series);
    returns its URL and the seconds of each step.

    Only the indexes a report's plan could use are built (the exposures' primary key and
    the likes' per-post index are not), and ``exposure_posts`` stays empty: the report
    reads the shown posts from ``exposures.post_ids``. The tables are unlogged: they are
    thrown away, and skipping the write-ahead log halves the fill.
    """
    url = fresh_database(name)
    engine = make_engine(url)
    create_schema(engine)
    params: dict[str, object] = {
        "n": n_exposures,
        "users": users,
        "likes": round(n_exposures * SCALE_LIKES_PER_EXPOSURE),
        "experiment": EXPERIMENT,
        "start": SCALE_START,
        "span": SCALE_DAYS * 86_400.0,
        "pre_span": PRE_DAYS * 86_400.0,
        "all_span": (SCALE_DAYS + PRE_DAYS) * 86_400.0,
        "posts": POSTS,
        "window": WINDOW_S,
        "lift": LIFT,
    }
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(_UNIFORM))
        for table in (exposures, exposure_posts, feed_data):
            for index in table.indexes:
                index.drop(conn)
            conn.execute(text(f"ALTER TABLE {table.name} SET UNLOGGED"))
        conn.execute(text("ALTER TABLE exposures DROP CONSTRAINT exposures_pkey"))
        _fill_exposures(conn, params)
        seconds["exposures"] = time.perf_counter() - started
        seconds["likes_n"] = _fill_likes(conn, params)
        seconds["likes"] = time.perf_counter() - started - seconds["exposures"]
    mark = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET maintenance_work_mem = '256MB'"))
        for index in (*exposures.indexes, *feed_data.indexes):
            if index.name != "ix_feed_data_post_time":
                index.create(conn)
        conn.execute(text("ANALYZE"))
    seconds["indexes"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    engine.dispose()
    return url, seconds


def _timed_report(url: str, out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MB, from ``/usr/bin/time -f %M``) and the
    verdict of ``feedlab report --experiment`` as a process."""
    env = {**os.environ, "FEEDLAB_DATABASE_URL": url}
    command = [
        "/usr/bin/time", "-f", "%M", sys.executable, "-m", "feedlab.cli", "report",
        "--experiment", EXPERIMENT, "--weights", "control=50,test=50", "--format", "html",
        "--out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"feedlab report failed:\n{done.stdout}\n{done.stderr}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1024, done.stdout.splitlines()[0]


def run_at_scale(n_exposures: int = SCALE_EXPOSURES, users: int = SCALE_USERS) -> None:
    url, fill = fill_at_scale(n_exposures=n_exposures, users=users)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        seconds, peak_mb, verdict = _timed_report(url, Path(tmp) / "report.html")
    load_after = os.getloadavg()[0]
    likes = int(fill["likes_n"])
    rows: list[list[object]] = [
        [f"fill: {n_exposures:,} exposures (INSERT ... SELECT)", fill["exposures"], ""],
        [f"fill: {likes:,} likes", fill["likes"], ""],
        ["fill: indexes and ANALYZE", fill["indexes"], ""],
        ["fill: total", fill["total"], ""],
        ["`feedlab report --experiment` (process, html)", seconds, peak_mb],
    ]
    Result(
        name="report_pg",
        title=f"Experiment report over {n_exposures:,} exposures in PostgreSQL",
        command="python -m bench.bench_report --scale  (bench/bench_report.py)",
        columns=["step", "seconds", "peak RSS MB"],
        rows=rows,
        notes=[
            f"{users:,} users (the course network) over {SCALE_DAYS} days, {K} posts per "
            f"exposure, {likes:,} likes ({PRE_DAYS} days before the experiment and during "
            f'it), planted lift {LIFT:.0%}; no views in feed_data. Verdict: "{verdict}"',
            "The report process is timed from start to exit; peak RSS from `/usr/bin/time "
            "-f %M`. The database has the schema's indexes except the exposures' primary key "
            "and feed_data's per-post index (no report plan uses them); exposure_posts is "
            "empty, since the report reads exposures.post_ids.",
            f"Load average {load_before:.1f} before the report and {load_after:.1f} after it, "
            f"on {os.cpu_count()} cores shared with other work: the report's time depends on it.",
            "The report reads each exposure once: it meets its user's likes as arrays sorted "
            "by time (binary search for the likes within the window), aggregated per (user, "
            "arm, day); the days are cut into ranges read at once by sessions (one more than "
            "the server's max_parallel_workers_per_gather) in one exported snapshot, through "
            "the BRIN index on exposures.request_time. Before, it paired exposures with the "
            "likes of their (user, 4-hour bucket) in a second pass and joined every like with "
            "its user in a third: 155 s and 539 MB at this size (load 6); on 2,000,000 "
            "exposures of 16,320 users 9.8-10.7 s against 7.5-7.8 s now (load 3.5).",
        ],
        data={
            "exposures": n_exposures,
            "users": users,
            "likes": likes,
            "fill_seconds": fill,
            "load_average": [load_before, load_after],
        },
    ).save()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_report", description=__doc__)
    parser.add_argument("--scale", action="store_true", help="20 million exposures instead")
    parser.add_argument("--exposures", type=int, default=SCALE_EXPOSURES, help="with --scale")
    parser.add_argument("--users", type=int, default=SCALE_USERS, help="with --scale")
    args = parser.parse_args()
    if args.scale:
        run_at_scale(args.exposures, args.users)
    else:
        run()


if __name__ == "__main__":
    main()
