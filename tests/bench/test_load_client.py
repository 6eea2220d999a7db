"""The load benchmark's clients against a tiny HTTP server that takes a fixed time per
request on each connection: the closed loop waits for answers, the open loop does not and
charges every request the time it waited for its connection."""

import asyncio
import json
from pathlib import Path

import numpy as np

from bench.load_client import RequestPlan, Run, drive
from bench.load_server import EXPERIMENT
from experiment.config import load_experiments

SERVICE_S = 0.04
"""Each answer takes this long: one connection answers at most 25 requests/s."""


def _plan(tmp_path: Path) -> RequestPlan:
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENT)
    [experiment] = load_experiments(experiments).experiments
    start = int(experiment.start.timestamp())
    return RequestPlan(np.arange(1, 50), start, start + 86_400, experiment, limit=2)


async def _serve_and_drive(plan: RequestPlan, **drive_args: float) -> Run:
    count = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(SERVICE_S)
                count += 1
                body = json.dumps({"exp_group": "control", "recommendations": [1, 2]}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Request-Id: r%d\r\n\r\n%s"
                    % (len(body), count, body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await drive(f"http://127.0.0.1:{port}", plan, **drive_args)  # type: ignore[arg-type]


def _latencies(run: Run) -> np.ndarray:
    outcomes = run.measured()
    assert outcomes
    assert all(o.ok for o in outcomes)
    return np.asarray([o.seconds for o in outcomes])


def test_the_closed_loop_waits_for_each_answer(tmp_path: Path) -> None:
    run = asyncio.run(_serve_and_drive(_plan(tmp_path), clients=2, seconds=1.0))
    latencies = _latencies(run)
    assert 30 <= len(latencies) <= 52  # two connections, 25 answers/s each at most
    assert np.median(latencies) < 2 * SERVICE_S


def test_the_open_loop_keeps_its_rate_and_counts_the_queue(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    below = asyncio.run(_serve_and_drive(plan, clients=2, seconds=1.5, rate=10))
    # 10/s over two connections that answer 50/s: requests rarely wait
    assert 5 <= len(below.measured()) <= 30
    assert np.median(_latencies(below)) < 2 * SERVICE_S
    above = asyncio.run(_serve_and_drive(plan, clients=2, seconds=1.5, rate=100))
    latencies = _latencies(above)
    # twice what the connections answer: requests queue behind their connection, and the
    # latency (from when each was due) grows over the run instead of staying one answer
    assert np.max(latencies) > 10 * SERVICE_S
    assert np.median(latencies[-10:]) > np.median(latencies[:10])
