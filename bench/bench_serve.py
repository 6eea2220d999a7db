"""The recommendation endpoint over HTTP against one real uvicorn worker at course scale:
training time of both models, start-up time, latency percentiles per arm and server memory.

Two servers are measured on the course database: popularity alone, and the shipped
experiment's two arms (CatBoost control, neural test) in one server, as production runs.
The models are trained by the production command (`feedlab train MODEL`) on every event,
timed with their peak memory; the benchmark's experiment starts at ``EXPERIMENT_START``,
so that the requests (times in the data's second half) fall inside it.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select

from bench.bench_generate import COURSE_DB
from bench.pg import SERVER
from bench.report import Result
from feeddata.db import connect, make_engine
from feeddata.schema import feed_data, user_data

REQUESTS = 2000
WARMUP = 100
MODELS = ("catboost", "neural")
# At 7,023 posts a full-catalogue softmax step took ~5 s per batch of 512 on two busy cores
# (16 min per 100,000 examples): the course run samples 1,000 negatives per batch and
# stops after one pass over 600,000 examples, to train within the 30 minutes allowed. That
# pass took 25-35 min on this shared machine from one day to the next, so the fit also has
# a budget: 25 min, which leaves reading the feed (~1.5 min), the final passes and saving.
TRAIN_PARAMS: dict[str, dict[str, object]] = {
    "neural": {
        "negatives": 1000,
        "max_examples": 600_000,
        "max_epochs": 1,
        "max_validation": 5000,
        "check_every": 100_000,  # a validation pass over 7,023 posts costs about a minute
        "max_train_s": 1500,
    }
}
EXPERIMENT_START = "2021-11-15T00:00:00Z"


def experiment_toml(name: str) -> str:
    """An experiment file: ``name``, CatBoost control and neural test 50/50 from
    ``EXPERIMENT_START``."""
    return f"""
[[experiments]]
name = "{name}"
salt = "feed-ab-2026"
start = {EXPERIMENT_START}

[[experiments.arms]]
name = "control"
weight = 50
recommender = "catboost"

[[experiments.arms]]
name = "test"
weight = 50
recommender = "neural"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if "kB" in line}
    return int(values["VmRSS"]) / 1024, int(values["VmHWM"]) / 1024


def start_server(
    url: str,
    artifacts: Path,
    port: int,
    log: Path,
    timeout: float = 900,
    experiments: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`feedlab serve` on ``url`` with its output in ``log`` (a pipe nobody reads would fill
    up and stall the server)."""
    env = os.environ | {"FEEDLAB_DATABASE_URL": url, "FEEDLAB_ARTIFACTS": str(artifacts)}
    if experiments is not None:
        env["FEEDLAB_EXPERIMENTS"] = str(experiments)
    command = [sys.executable, "-m", "feedlab.cli", "serve", "--port", str(port), "--workers", "1"]
    with log.open("wb") as sink:
        server = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("server did not become healthy in time")


def _request_plan(url: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (user, time) pairs, times from ``EXPERIMENT_START`` to the data's end."""
    engine = make_engine(url)
    with connect(engine) as conn:
        users = np.asarray(conn.execute(select(user_data.c.user_id)).scalars().all())
        last = conn.execute(select(func.max(feed_data.c.timestamp))).scalar_one()
    engine.dispose()
    rng = np.random.default_rng(seed)
    start = int(np.datetime64(EXPERIMENT_START.rstrip("Z"), "s").astype(np.int64))
    times = rng.integers(start, int(last.timestamp()), n)
    return rng.choice(users, n), times


def measure(
    url: str, label: str, artifacts: Path | None = None, experiments: Path | None = None
) -> list[list[object]]:
    """Rows of the serving table, one per ``exp_group`` the server answered with: label,
    start-up s, p50/p95/p99 ms, the server's RSS and peak RSS in MB."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        server = start_server(
            url, artifacts or Path(tmp), port, Path(tmp) / "server.log", experiments=experiments
        )
        startup = time.perf_counter() - started
        try:
            latencies = _drive(port, *_request_plan(url, REQUESTS + WARMUP, seed=1))
            current, peak = rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
    rows: list[list[object]] = []
    for group, samples in sorted(latencies.items()):
        ms = np.asarray(samples)
        name = f"{label}: {group} ({len(ms)} requests)" if experiments else label
        rows.append([name, startup, float(np.median(ms)), float(np.percentile(ms, 95)),
                     float(np.percentile(ms, 99)), current, peak])  # fmt: skip
    return rows


def _drive(port: int, users: np.ndarray, times: np.ndarray, limit: int = 5) -> dict[str, list]:
    """Sequential keep-alive requests; latencies in ms (after ``WARMUP``) by exp_group."""
    latencies: dict[str, list[float]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for i, (user, at) in enumerate(zip(users, times, strict=True)):
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(at)))
            t0 = time.perf_counter()
            response = client.get(
                "/post/recommendations/", params={"id": int(user), "time": iso, "limit": limit}
            )
            elapsed = time.perf_counter() - t0
            body = response.json()
            if response.status_code != 200 or len(body["recommendations"]) != limit:
                raise RuntimeError(f"bad response {response.status_code}: {response.text[:200]}")
            if i >= WARMUP:
                latencies.setdefault(body["exp_group"], []).append(elapsed * 1000)
    return latencies


def train(url: str, model: str, artifacts: Path) -> list[object]:
    """`feedlab train MODEL` on every event of ``url``: a row of the training table
    (model, seconds, peak RSS MB, training rows, the bundle's offline metrics)."""
    env = os.environ | {"FEEDLAB_DATABASE_URL": url, "FEEDLAB_ARTIFACTS": str(artifacts)}
    command = ["/usr/bin/time", "-f", "MAXRSS_KB=%M",
               sys.executable, "-m", "feedlab.cli", "train", model,
               "--params", json.dumps(TRAIN_PARAMS.get(model, {}))]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise RuntimeError(f"training {model} failed")
    peak_mb = int(re.findall(r"MAXRSS_KB=(\d+)", done.stderr)[-1]) / 1024
    meta = json.loads((artifacts / model / "meta.json").read_text())
    rows = ", ".join(f"{k} {v:,}" for k, v in meta.get("rows", {}).items())
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in meta.get("metrics", {}).items())
    return [model, seconds, peak_mb, rows, metrics]


COLUMNS = ["service", "start-up s", "p50 ms", "p95 ms", "p99 ms", "RSS MB", "peak RSS MB"]


def run(course_url: str, artifacts: Path | None = None) -> None:
    """Train both models on the course database (unless ``artifacts`` holds their bundles),
    then measure popularity alone and the experiment's two arms."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = artifacts or Path(tmp)
        trained = [train(course_url, m, folder) for m in MODELS if not (folder / m).is_dir()]
        if trained:
            Result(
                name="train_course",
                title="Training at course scale (`feedlab train MODEL`, every event)",
                command="make bench  (bench/bench_serve.py)",
                columns=["model", "seconds", "peak RSS MB", "rows", "offline metrics"],
                rows=trained,
                notes=[
                    "Course scale: 163,205 users, 7,023 posts, 76.5M feed rows in PostgreSQL; "
                    "the time includes reading the feed (COPY) and writing the bundle.",
                    f"parameters besides the defaults: {json.dumps(TRAIN_PARAMS)}",
                ],
            ).save()
        experiment = folder / "experiments.toml"
        experiment.write_text(experiment_toml("bench"))
        rows = measure(course_url, "popularity")
        rows += measure(course_url, "experiment", artifacts=folder, experiments=experiment)
    Result(
        name="serve",
        title="GET /post/recommendations/ over HTTP at course scale, one uvicorn worker",
        command="make bench  (bench/bench_serve.py)",
        columns=COLUMNS,
        rows=rows,
        notes=[
            f"{REQUESTS} sequential keep-alive requests (after {WARMUP} warm-up), random users, "
            f"times from {EXPERIMENT_START} to the data's end, limit=5.",
            "popularity: no experiment. experiment: CatBoost control and neural test 50/50 in "
            "one server (both bundles loaded, as `make run` serves them); each arm's latencies "
            "from the same run, RSS is the whole server's.",
            "Course scale: 163,205 users, 7,023 posts, 76.5M feed rows in PostgreSQL; the server "
            "holds every like in memory (LikeHistory).",
        ],
    ).save()


if __name__ == "__main__":
    # python -m bench.bench_serve [ARTIFACTS]: reuse bundles already trained there
    run(f"{SERVER}/{COURSE_DB}", Path(sys.argv[1]) if len(sys.argv) > 1 else None)
