"""Latency of GET /post/recommendations/ over HTTP against one real uvicorn worker, and
the server's memory after start, on a synthetic network built quickly with numpy.

Run: ``python -m tests.api.serve_bench [--posts 5000 --users 100000 --likes 1000000]``.
Prints a table and writes JSON (``--json``, default ``<work dir>/serve.json``).
"""

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from feeddata.db import make_engine
from feeddata.loading import Chunk, load
from tests.api.server import BIN, feedlab_env, free_port, running

START = pd.Timestamp("2021-10-01")
DAYS = 90


def network(posts: int, users: int, likes: int, seed: int = 0) -> Iterator[Chunk]:
    """Users, posts and ``likes`` like events over 90 days; posts' appeal is Zipf-like."""
    rng = np.random.default_rng(seed)
    yield Chunk(
        "user_data",
        pd.DataFrame(
            {
                "user_id": np.arange(1, users + 1),
                "gender": rng.integers(0, 2, users),
                "age": rng.integers(14, 70, users),
                "country": "Russia",
                "city": "Moscow",
                "exp_group": rng.integers(0, 5, users),
                "os": "iOS",
                "source": "ads",
            }
        ),
        "bench users",
    )
    yield Chunk(
        "post_text_df",
        pd.DataFrame(
            {
                "post_id": np.arange(1, posts + 1),
                "text": [f"post number {i}" for i in range(1, posts + 1)],
                "topic": rng.choice(["movie", "covid", "sport", "tech"], posts),
            }
        ),
        "bench posts",
    )
    appeal = 1 / np.arange(1, posts + 1) ** 0.8
    step = 500_000
    for first in range(0, likes, step):
        n = min(step, likes - first)
        seconds = rng.integers(0, DAYS * 86_400, n)
        yield Chunk(
            "feed_data",
            pd.DataFrame(
                {
                    "timestamp": START + pd.to_timedelta(seconds, unit="s"),
                    "user_id": rng.integers(1, users + 1, n),
                    "post_id": rng.choice(posts, n, p=appeal / appeal.sum()) + 1,
                    "action": "like",
                    "target": 0,
                }
            ),
            "bench likes",
        )


def measure(args: argparse.Namespace, work: Path) -> dict[str, float]:
    url = f"sqlite:///{work / 'bench.db'}"
    engine = make_engine(url)
    began = time.perf_counter()
    load(engine, network(args.posts, args.users, args.likes), check_references=False)
    engine.dispose()
    load_s = time.perf_counter() - began

    port = free_port()
    command = [str(BIN / "python"), "-m", "uvicorn", "api.main:create_app", "--factory"]
    command += ["--port", str(port), "--log-level", "warning"]
    rng = np.random.default_rng(1)
    began = time.perf_counter()
    with running(
        command, env=feedlab_env(url, work / "artifacts"), port=port, log=work / "log"
    ) as server:
        start_s = time.perf_counter() - began
        rss = server.rss_mib()
        for _ in range(50):  # warm-up
            server.http.get("/post/recommendations/", params={"id": 1})
        latencies = []
        for _ in range(args.requests):
            moment = START + pd.Timedelta(seconds=int(rng.integers(0, DAYS * 86_400)))
            params: dict[str, str | int] = {
                "id": int(rng.integers(1, args.users + 1)),
                "time": moment.isoformat(),
                "limit": 10,
            }
            t0 = time.perf_counter()
            response = server.http.get("/post/recommendations/", params=params)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200 or len(response.json()["recommendations"]) != 10:
                raise RuntimeError(f"unexpected answer to {params}: {response.text}")
        rss_after = server.rss_mib()
    ms = np.asarray(latencies) * 1000
    return {
        "load_s": load_s,
        "start_s": start_s,
        "rss_after_start_mib": rss,
        "rss_after_requests_mib": rss_after,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--likes", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        numbers = measure(args, Path(tmp))
    sizes = {k: getattr(args, k) for k in ("posts", "users", "likes", "requests")}
    print(f"GET /post/recommendations/ (limit 10), one uvicorn worker, SQLite; {sizes}")
    width = max(len(k) for k in numbers)
    for key, value in numbers.items():
        print(f"  {key.ljust(width)}  {value:10.2f}")
    out = args.json or Path(tempfile.gettempdir()) / "serve.json"
    out.write_text(json.dumps({"sizes": sizes, **numbers}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
