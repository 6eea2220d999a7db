"""`feedlab serve --workers N` as the load benchmark runs it: the experiment it serves, the
process with its log in a file, its workers found through /proc, signals, resident memory,
and the exposures it stored."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import delete, func, select

from bench.bench_serve import experiment_toml, free_port
from feeddata.db import connect, make_engine, transaction
from feeddata.schema import exposure_posts, exposures, user_data

EXPERIMENT_NAME = "bench-load"
# bench_serve's experiment under its own name, so that this benchmark's exposures can be
# told apart (and removed) in a database other benchmarks log to as well.
EXPERIMENT = experiment_toml(EXPERIMENT_NAME)
STARTED = "Application startup complete"
CLOSED = re.compile(r"exposure log closed: (\d+) written, (\d+) left in spill files, (\d+) dropped")


@dataclass(frozen=True)
class ServiceFiles:
    """What a served experiment reads: the database, the bundles, the experiment file, and
    where its workers spill exposures."""

    url: str
    artifacts: Path
    experiments: Path
    spill_dir: Path


class Service:
    """One `feedlab serve` process (the uvicorn supervisor) and its workers."""

    def __init__(
        self,
        files: ServiceFiles,
        log: Path,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: the environment to start it in (default: this process's), to which
        the ``FEEDLAB_*`` variables of ``files`` are added."""
        self.files = files
        self.log = log
        self.workers = workers
        self.env = dict(os.environ) if env is None else env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self, timeout: float = 1800) -> float:
        """Start and wait until every worker has loaded its state; the seconds it took."""
        env = self.env | {
            "FEEDLAB_DATABASE_URL": self.files.url,
            "FEEDLAB_ARTIFACTS": str(self.files.artifacts),
            "FEEDLAB_EXPERIMENTS": str(self.files.experiments),
            "FEEDLAB_EXPOSURE_SPILL_DIR": str(self.files.spill_dir),
        }
        command = [
            sys.executable,
            "-m",
            "feedlab.cli",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        started = time.perf_counter()
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        self.wait_started(self.workers, timeout)
        return time.perf_counter() - started

    def wait_started(self, count: int, timeout: float = 1800) -> None:
        """Wait until ``count`` workers in all (respawned ones included) finished starting
        and the service answers ``/health/live``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            if self.log_count(STARTED) >= count and self._healthy():
                return
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor, not multiprocessing's
        resource tracker)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()]
        return [p for p in pids if b"resource_tracker" not in _cmdline(p)]

    def memory(self) -> dict[int, tuple[float, float]]:
        """Each worker's resident memory and its anonymous part (heap, not the mapped
        bundle files), in MB."""
        found = {}
        for pid in self.worker_pids():
            with contextlib.suppress(FileNotFoundError, KeyError, ProcessLookupError):
                found[pid] = _memory_mb(pid)
        return found

    def busiest_worker(self) -> int:
        """The worker that has used the most CPU time (connections are not spread evenly:
        each keep-alive connection stays with the worker that accepted it)."""

        def cpu(pid: int) -> int:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        return max(self.worker_pids(), key=cpu)

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL every worker, then the supervisor, as the kernel's OOM killer or a
        `docker kill` would: nothing runs its shutdown."""
        assert self.process is not None
        for pid in self.worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 120) -> int:
        """Send ``sig`` and wait for the supervisor (which stops its workers) to exit."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def closed_logs(self) -> list[tuple[int, int, int]]:
        """(written, left in spill files, dropped) as each worker said when it closed."""
        return [(int(a), int(b), int(c)) for a, b, c in CLOSED.findall(self._output())]

    def log_count(self, text: str) -> int:
        """How many times ``text`` appears in this run's output."""
        return self._output().count(text)

    def _output(self) -> str:
        with self.log.open("rb") as source:
            source.seek(self._log_start)
            return source.read().decode(errors="replace")


def _memory_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if "kB" in line}
    return kb["VmRSS"] / 1024, kb["RssAnon"] / 1024


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


@dataclass(frozen=True)
class StoredExposures:
    """Responses answered against exposures stored, counted after the service stopped."""

    answered: int
    stored: int
    rows: int
    """Rows stored in the benchmark's experiment, answered or not."""

    @property
    def lost(self) -> int:
        return self.answered - self.stored

    def line(self) -> str:
        return (
            f"exposures: {self.stored:,} stored of {self.answered:,} responses answered "
            f"({self.lost:,} missing; {self.rows:,} rows in the experiment)"
        )


def count_exposures(url: str, request_ids: list[str]) -> StoredExposures:
    """How many of ``request_ids`` (the answered responses' ids) the database holds."""
    engine = make_engine(url)
    stored = 0
    with connect(engine) as conn:
        for i in range(0, len(request_ids), 5000):
            chunk = request_ids[i : i + 5000]
            query = select(func.count()).where(exposures.c.request_id.in_(chunk))
            stored += int(conn.execute(query).scalar_one())
        rows = conn.execute(
            select(func.count()).where(exposures.c.experiment == EXPERIMENT_NAME)
        ).scalar_one()
    engine.dispose()
    return StoredExposures(len(request_ids), stored, int(rows))


def remove_exposures(url: str) -> None:
    """Delete the benchmark's exposures (of a run before, or just counted)."""
    engine = make_engine(url)
    ours = select(exposures.c.request_id).where(exposures.c.experiment == EXPERIMENT_NAME)
    with transaction(engine) as conn:
        conn.execute(delete(exposure_posts).where(exposure_posts.c.request_id.in_(ours)))
        conn.execute(delete(exposures).where(exposures.c.experiment == EXPERIMENT_NAME))
    engine.dispose()


def describe_database(url: str) -> str:
    engine = make_engine(url)
    with connect(engine) as conn:
        users = conn.execute(select(func.count()).select_from(user_data)).scalar_one()
    engine.dispose()
    return f"{url.rsplit('/', 1)[-1]}, {users:,} users"
