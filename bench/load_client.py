"""Concurrent feed clients for the load benchmark: N asyncio tasks, each sending keep-alive
`GET /post/recommendations/` requests for random users at random times inside the
experiment. In a closed loop a client asks again as soon as it is answered; in an open loop
requests arrive at a fixed mean rate (Poisson, shared out over the clients) whatever the
server's pace, and each latency counts from when its request was due, so a request that
waited for its client's previous answer is charged the wait (no coordinated omission).

The clients speak HTTP/1.1 over asyncio streams themselves (:class:`Connection`): they run
on the same two cores as the server, and httpx spent about 3.9 ms of CPU per request there,
which the server then lacked. A request here costs the client a fraction of that.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from experiment.config import ExperimentConfig

LIMIT = 5
RAMP_S = 1.0
"""How long the benchmark takes to start its clients, one after the other."""


@dataclass(frozen=True)
class RequestPlan:
    """Where requests go: random users at random times in ``[start, end)`` (epoch s)."""

    users: np.ndarray
    start: int
    end: int
    experiment: ExperimentConfig
    limit: int = LIMIT
    """Posts asked for; a response with fewer counts as an error."""
    seed: int = 1

    def arm_of(self, user_id: int) -> str:
        """The arm the user belongs to, so a failed request is counted against it too."""
        assignment = self.experiment.assign(user_id)
        return assignment.arm if assignment else "outside"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: when it started (perf_counter s), how long it took, its status (0
    when no response came), the arm and the exposure id it reported, and the error."""

    started: float
    seconds: float
    status: int
    arm: str
    request_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Run:
    """Every request's outcome, and when the last client had started (perf_counter s):
    the run is measured from then on."""

    outcomes: list[Outcome]
    measured_from: float

    def measured(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= self.measured_from]

    def answered_ids(self) -> list[str]:
        return [o.request_id for o in self.outcomes if o.request_id is not None]


async def drive(
    base_url: str,
    plan: RequestPlan,
    *,
    clients: int,
    seconds: float,
    ramp: float = 0.0,
    stop: asyncio.Event | None = None,
    seed: int = 0,
    rate: float | None = None,
) -> Run:
    """``clients`` concurrent clients, started one after the other over ``ramp`` seconds,
    then all of them for ``seconds`` (or until ``stop`` is set: each client finishes the
    request it is waiting for, then quits). Closed loop, or with ``rate`` an open loop of
    that many requests per second in all.

    The ramp spreads the connections over the server's workers: they share one listening
    socket, and a worker that wakes up to many waiting connections accepts them all."""
    rng = np.random.default_rng([plan.seed, seed])
    stop = stop or asyncio.Event()
    measured_from = time.perf_counter() + ramp
    deadline = measured_from + seconds
    outcomes: list[Outcome] = []
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    async def client(delay: float) -> None:
        await asyncio.sleep(delay)
        connection = Connection(host, port)
        due = time.perf_counter()
        try:
            while not stop.is_set():
                if rate is not None:
                    due += rng.exponential(clients / rate)
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                # the open loop sends every request due before the deadline, however late
                if stop.is_set() or (due if rate is not None else time.perf_counter()) >= deadline:
                    break
                user = int(plan.users[rng.integers(len(plan.users))])
                at = int(rng.integers(plan.start, plan.end))
                since = due if rate is not None else None
                outcomes.append(await _request(connection, user, at, plan, since))
        finally:
            connection.close()

    await asyncio.gather(*(client(ramp * i / clients) for i in range(clients)))
    return Run(outcomes, measured_from)


class Connection:
    """One keep-alive HTTP/1.1 connection for GET requests, opened on first use and again
    after a failure; responses must carry a Content-Length (the API's do)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of ``GET target``; OSError,
        TimeoutError or asyncio.IncompleteReadError when no whole response came."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._streams is None:
                    self._streams = await asyncio.open_connection(self.host, self.port)
                reader, writer = self._streams
                writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    name.lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(head[0].split(" ", 2)[1]), headers, body

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _request(
    connection: Connection, user: int, at: int, plan: RequestPlan, due: float | None = None
) -> Outcome:
    """One request; its latency counts from ``due`` when given (else from now)."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    target = f"/post/recommendations/?id={user}&time={iso}&limit={plan.limit}"
    started = time.perf_counter() if due is None else due
    try:
        status, headers, raw = await connection.get(target)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        elapsed = time.perf_counter() - started
        return Outcome(started, elapsed, 0, plan.arm_of(user), None, type(error).__name__)
    elapsed = time.perf_counter() - started
    if status != 200:
        return Outcome(started, elapsed, status, plan.arm_of(user), None, f"HTTP {status}")
    body = json.loads(raw)
    if len(body["recommendations"]) != plan.limit:
        short = f"{len(body['recommendations'])} posts"
        return Outcome(started, elapsed, 200, body["exp_group"], None, short)
    return Outcome(started, elapsed, 200, body["exp_group"], headers["x-request-id"])


@dataclass(frozen=True)
class Summary:
    """Requests, answers per second, latency percentiles of the answered (ms), errors."""

    label: str
    requests: int
    per_second: float
    p50: float
    p95: float
    p99: float
    errors: int

    def row(self) -> list[object]:
        return [
            self.label,
            self.requests,
            self.per_second,
            self.p50,
            self.p95,
            self.p99,
            self.errors,
        ]


SUMMARY_COLUMNS = ["arm", "requests", "answered/s", "p50 ms", "p95 ms", "p99 ms", "errors"]


def span(outcomes: list[Outcome]) -> float:
    """Seconds from the first request's start to the last one's answer."""
    return max(o.started + o.seconds for o in outcomes) - min(o.started for o in outcomes)


def summarize(label: str, outcomes: list[Outcome], seconds: float) -> Summary:
    """``outcomes`` of a run that lasted ``seconds``."""
    ms = np.asarray([o.seconds * 1000 for o in outcomes if o.ok])
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (np.nan,) * 3
    errors = sum(not o.ok for o in outcomes)
    answered = len(outcomes) - errors
    return Summary(
        label, len(outcomes), answered / seconds, float(p50), float(p95), float(p99), errors
    )


def by_arm(outcomes: list[Outcome]) -> list[Summary]:
    """One summary per arm, then all requests together."""
    seconds = span(outcomes)
    arms = sorted({o.arm for o in outcomes})
    summaries = [summarize(arm, [o for o in outcomes if o.arm == arm], seconds) for arm in arms]
    return [*summaries, summarize("all", outcomes, seconds)]


def error_kinds(outcomes: list[Outcome]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            kinds[outcome.error] = kinds.get(outcome.error, 0) + 1
    return kinds
