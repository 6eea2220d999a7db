"""Import throughput: a synthetic feed CSV into PostgreSQL (COPY) and SQLite (batched
inserts), through the same path as `feedlab data import-csv`."""

import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.pg import fresh_database
from bench.report import Result
from feeddata.db import make_engine
from feeddata.sources.files import load_files
from feeddata.sources.synthetic import SyntheticConfig, iter_chunks

CONFIG = SyntheticConfig.course(users=100_000, days=5, seed=7)


def _write_csvs(folder: Path) -> dict[str, Path]:
    frames: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(CONFIG):
        frames.setdefault(chunk.table, []).append(chunk.rows)
    paths = {}
    for table, parts in frames.items():
        paths[table] = folder / f"{table}.csv"
        pd.concat(parts).to_csv(paths[table], index=False)
    return paths


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_csvs(Path(tmp))
        rows = []
        targets = {
            "PostgreSQL (COPY)": fresh_database("feedlab_bench_import"),
            "SQLite (batched inserts)": f"sqlite:///{tmp}/import.db",
        }
        for label, url in targets.items():
            engine = make_engine(url)
            started = time.perf_counter()
            report = load_files(
                engine,
                users=paths["user_data"],
                posts=paths["post_text_df"],
                feed=paths["feed_data"],
            )
            seconds = time.perf_counter() - started
            engine.dispose()
            total = sum(report.rows.values())
            rows.append([label, total, report.rows["feed_data"], seconds, total / seconds])
    Result(
        name="import",
        title="Import throughput (CSV files -> database, one atomic import)",
        command="make bench  (bench/bench_import.py)",
        columns=["database", "rows", "feed rows", "seconds", "rows/s"],
        rows=rows,
        notes=[
            f"Data: synthetic course-like slice, {CONFIG.users:,} users, {CONFIG.posts:,} posts, "
            f"{CONFIG.days} days; includes validation, reference checks and index builds.",
        ],
    ).save()
