"""Running the service as a real process, for end-to-end tests and the benchmark."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def feedlab_env(database_url: str, artifacts: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDLAB_")}
    env.update(
        FEEDLAB_DATABASE_URL=database_url,
        FEEDLAB_ARTIFACTS=str(artifacts),
        FEEDLAB_LOG_LEVEL="info",
    )
    return env


@dataclass(frozen=True)
class Server:
    http: httpx.Client
    pid: int

    def rss_mib(self) -> float:
        """Resident memory of the server process (the supervisor when workers > 1)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")


@contextmanager
def running(
    command: Sequence[str], *, env: dict[str, str], port: int, log: Path, timeout_s: float = 120
) -> Iterator[Server]:
    """Start ``command``, wait until ``/health`` answers on ``port``, yield it, then stop
    the process (SIGINT, as Ctrl-C would)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_healthy(client, process, log, timeout_s)
            yield Server(client, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(
    client: httpx.Client, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server not healthy after {timeout_s} s:\n{log.read_text()}")
