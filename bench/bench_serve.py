"""The recommendation endpoint over HTTP against one real uvicorn worker: start-up time,
latency percentiles and server memory."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select

from bench.report import Result
from feeddata.db import connect, make_engine
from feeddata.schema import feed_data, user_data

REQUESTS = 2000
WARMUP = 100


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
    url: str, artifacts: Path, port: int, log: Path, timeout: float = 900
) -> subprocess.Popen[bytes]:
    """`feedlab serve` on ``url`` with its output in ``log`` (a pipe nobody reads would fill
    up and stall the server)."""
    env = os.environ | {"FEEDLAB_DATABASE_URL": url, "FEEDLAB_ARTIFACTS": str(artifacts)}
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
    engine = make_engine(url)
    with connect(engine) as conn:
        users = np.asarray(conn.execute(select(user_data.c.user_id)).scalars().all())
        first, last = conn.execute(
            select(func.min(feed_data.c.timestamp), func.max(feed_data.c.timestamp))
        ).one()
    engine.dispose()
    rng = np.random.default_rng(seed)
    start, end = int(first.timestamp()), int(last.timestamp())
    times = rng.integers(start + (end - start) // 2, end, n)
    return rng.choice(users, n), times


def measure(url: str, label: str, artifacts: Path | None = None, limit: int = 5) -> list[object]:
    """One row of the serving table: label, start-up s, p50/p95/p99 ms, RSS MB."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        server = start_server(url, artifacts or Path(tmp), port, Path(tmp) / "server.log")
        startup = time.perf_counter() - started
        try:
            users, times = _request_plan(url, REQUESTS + WARMUP, seed=1)
            latencies = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for i, (user, at) in enumerate(zip(users, times, strict=True)):
                    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(at)))
                    t0 = time.perf_counter()
                    response = client.get(
                        "/post/recommendations/",
                        params={"id": int(user), "time": iso, "limit": limit},
                    )
                    elapsed = time.perf_counter() - t0
                    if (
                        response.status_code != 200
                        or len(response.json()["recommendations"]) != limit
                    ):
                        raise RuntimeError(
                            f"bad response {response.status_code}: {response.text[:200]}"
                        )
                    if i >= WARMUP:
                        latencies.append(elapsed * 1000)
            current, peak = rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
    ms = np.asarray(latencies)
    return [label, startup, float(np.median(ms)), float(np.percentile(ms, 95)),
            float(np.percentile(ms, 99)), current, peak]  # fmt: skip


COLUMNS = ["service", "start-up s", "p50 ms", "p95 ms", "p99 ms", "RSS MB", "peak RSS MB"]


def run(course_url: str) -> None:
    rows = [measure(course_url, "popularity, course scale")]
    Result(
        name="serve",
        title="GET /post/recommendations/ over HTTP, one uvicorn worker",
        command="make bench  (bench/bench_serve.py)",
        columns=COLUMNS,
        rows=rows,
        notes=[
            f"{REQUESTS} sequential keep-alive requests (after {WARMUP} warm-up), random users, "
            "times in the second half of the data, limit=5.",
            "Course scale: 163,205 users, 7,023 posts, ~77M feed rows in PostgreSQL; the server "
            "holds every like in memory (LikeHistory).",
        ],
    ).save()
