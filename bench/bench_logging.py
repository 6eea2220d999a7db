"""What exposure logging adds to the recommendation endpoint's latency.

Two uvicorn workers serve the same experiment from the same PostgreSQL database: one logs
every response (the service as shipped), its twin has no exposure log. Requests alternate
between them, so the shared machine's noise falls on both alike. Run with
``python -m bench.bench_logging``.
"""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI

from api.main import create_app
from bench.bench_serve import free_port
from bench.pg import fresh_database
from bench.report import Result
from experiment.exposure_log import ExposureLog, WriterConfig
from feeddata.db import make_engine
from feeddata.exposures import Exposure, count_exposures, write_exposures
from feeddata.interactions import read_interactions, read_posts, read_users
from recommenders.base import TrainingData
from recommenders.registry import make_recommender

DATABASE = "feedlab_bench_logging"
REQUESTS = 4000
WARMUP = 200
LIMIT = 5
EXPERIMENT = """
[[experiments]]
name = "bench"
salt = "bench-logging"
start = 2021-10-01T00:00:00Z

[[experiments.arms]]
name = "control"
weight = 50
recommender = "popular"

[[experiments.arms]]
name = "test"
weight = 50
recommender = "random"
"""


def app_with_logging() -> FastAPI:
    """The service as shipped."""
    return create_app()


def app_without_logging() -> FastAPI:
    """The same service with its exposure log detached once started."""
    app = create_app()
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(inner: FastAPI) -> AsyncIterator[None]:
        async with started(inner):
            inner.state.service.exposure_log = None
            yield

    app.router.lifespan_context = lifespan
    return app


def _prepare(folder: Path) -> tuple[str, dict[str, str]]:
    from feeddata.sources.synthetic import SyntheticConfig, generate

    url = fresh_database(DATABASE)
    engine = make_engine(url)
    generate(engine, SyntheticConfig.demo(), truth_dir=folder / "truth", progress=False)
    likes = read_interactions(engine, likes_only=True, progress=False)
    data = TrainingData(likes, read_posts(engine), read_users(engine), int(likes.timestamp[-1]) + 1)
    for name in ("popular", "random"):
        make_recommender(name).fit(data).save(folder / "artifacts" / name)
    engine.dispose()
    (folder / "experiments.toml").write_text(EXPERIMENT)
    env = os.environ | {
        "FEEDLAB_DATABASE_URL": url,
        "FEEDLAB_ARTIFACTS": str(folder / "artifacts"),
        "FEEDLAB_EXPERIMENTS": str(folder / "experiments.toml"),
        "FEEDLAB_EXPOSURE_SPILL_DIR": str(folder / "spill"),
        "FEEDLAB_LOG_LEVEL": "warning",
    }
    return url, env


def _start(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"bench.bench_logging:{factory}", "--factory"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{factory} exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"{factory} did not become healthy")


def _plan(url: str, n: int) -> list[tuple[int, str]]:
    engine = make_engine(url)
    likes = read_interactions(engine, likes_only=True, progress=False)
    users = read_users(engine).index.to_numpy()
    engine.dispose()
    rng = np.random.default_rng(1)
    first, last = int(likes.timestamp[0]), int(likes.timestamp[-1])
    times = rng.integers((first + last) // 2, last, n)
    return [
        (int(u), time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))))
        for u, t in zip(rng.choice(users, n), times, strict=True)
    ]


def _measure(bases: dict[str, str], plan: list[tuple[int, str]]) -> dict[str, np.ndarray]:
    clients = {label: httpx.Client(base_url=base, timeout=10) for label, base in bases.items()}
    latencies: dict[str, list[float]] = {label: [] for label in bases}
    try:
        for i, (user, at) in enumerate(plan):
            order = list(clients.items()) if i % 2 else list(reversed(clients.items()))
            for label, client in order:
                params: dict[str, str | int] = {"id": user, "time": at, "limit": LIMIT}
                t0 = time.perf_counter()
                response = client.get("/post/recommendations/", params=params)
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    raise RuntimeError(f"{label}: {response.status_code} {response.text[:200]}")
                if i >= WARMUP:
                    latencies[label].append(elapsed * 1000)
    finally:
        for client in clients.values():
            client.close()
    return {label: np.asarray(values) for label, values in latencies.items()}


def _log_call_costs(url: str, folder: Path, n: int = 50_000) -> np.ndarray:
    """Microseconds per ExposureLog.log() call, with the writer storing to ``url``."""
    engine = make_engine(url)
    config = WriterConfig()
    log = ExposureLog(
        lambda batch: write_exposures(bind=engine, batch=batch),
        spill_dir=folder / "spill-micro",
        config=config,
    ).start()
    now = datetime(2021, 12, 30).replace(tzinfo=None)
    costs = np.empty(n)
    for i in range(n):
        exposure = Exposure(
            uuid.uuid4().hex, "micro", "control", i % 10_000, False, 200 + i % 5000, now, now,
            "popular", "popular-1", (1, 2, 3, 4, 5),
        )  # fmt: skip
        t0 = time.perf_counter_ns()
        log.log(exposure)
        costs[i] = (time.perf_counter_ns() - t0) / 1000
    log.close()
    engine.dispose()
    return costs


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, env = _prepare(Path(tmp))
        plan = _plan(url, REQUESTS + WARMUP)
        servers = {
            "with logging": _start("app_with_logging", env),
            "without logging": _start("app_without_logging", env),
        }
        try:
            ms = _measure({label: base for label, (_, base) in servers.items()}, plan)
        finally:
            for server, _ in servers.values():
                server.terminate()  # graceful: the logging server writes what it holds
                server.wait(60)
        engine = make_engine(url)
        written = count_exposures(bind=engine)
        engine.dispose()
        micro = _log_call_costs(url, Path(tmp))
    stats = {
        label: [*(float(np.percentile(values, q)) for q in (50, 95, 99)), float(values.max())]
        for label, values in ms.items()
    }
    added = [a - b for a, b in zip(stats["with logging"], stats["without logging"], strict=True)]
    rows: list[list[object]] = [[label, *values] for label, values in stats.items()]
    rows.append(["added by logging", *added])
    micro_ms = [float(np.percentile(micro, q)) / 1000 for q in (50, 95, 99)]
    rows.append(["log() call alone, in-process", *micro_ms, float(micro.max()) / 1000])
    Result(
        name="logging",
        title="Exposure logging's cost on GET /post/recommendations/ (ms, one worker each)",
        command="python -m bench.bench_logging",
        columns=["service", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        rows=rows,
        notes=[
            f"{REQUESTS} sequential keep-alive requests per server after {WARMUP} warm-up, "
            "alternating between the two servers; demo-scale synthetic data in PostgreSQL, "
            f"an experiment of popularity vs random, limit={LIMIT}.",
            f"exposure rows written by the logging server: {written:,} "
            f"(= its {REQUESTS + WARMUP:,} responses)",
            f"log() call alone: {len(micro):,} calls timed in one process while its writer "
            "stores them to PostgreSQL (the request's share of logging).",
        ],
        data={"exposures_written": written, "responses": REQUESTS + WARMUP},
    ).save()
    if written != REQUESTS + WARMUP:
        raise RuntimeError(f"{written} exposures written for {REQUESTS + WARMUP} responses")


if __name__ == "__main__":
    run()
