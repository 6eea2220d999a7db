"""Course-scale generation straight into PostgreSQL: time, rows and peak memory."""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.pg import fresh_database
from bench.report import Result
from feeddata.db import count_rows, make_engine

COURSE_DB = "feedlab_bench_course"


def run() -> str:
    """Generate the course-scale network into a fresh database; returns its URL."""
    url = fresh_database(COURSE_DB)
    truth = Path(tempfile.gettempdir()) / "feedlab_bench_truth"
    env = os.environ | {"FEEDLAB_DATABASE_URL": url}
    command = [
        "/usr/bin/time", "-f", "MAXRSS_KB=%M",
        sys.executable, "-m", "feedlab.cli", "data", "generate", "--scale", "course",
        "--truth", str(truth),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise RuntimeError("course-scale generation failed")
    peak_mb = int(re.findall(r"MAXRSS_KB=(\d+)", done.stderr)[-1]) / 1024
    engine = make_engine(url)
    counts = {t: count_rows(engine, t) for t in ("user_data", "post_text_df", "feed_data")}
    engine.dispose()
    Result(
        name="generate",
        title="Course-scale synthetic data generated into PostgreSQL",
        command="feedlab data generate --scale course  (bench/bench_generate.py)",
        columns=["users", "posts", "feed rows", "seconds", "rows/s", "peak RSS MB"],
        rows=[
            [
                counts["user_data"],
                counts["post_text_df"],
                counts["feed_data"],
                seconds,
                counts["feed_data"] / seconds,
                peak_mb,
            ]
        ],
        notes=["One atomic import; feed indexes are built once at the end."],
    ).save()
    return url
