"""Faults under load, each on a fresh `feedlab serve`: PostgreSQL stopped and started again
mid-run, SIGTERM to the server mid-run, SIGKILL of its busiest worker mid-run. Every run
counts failed responses and the exposures stored against the responses answered."""

import asyncio
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from bench.load_client import RAMP_S, Outcome, RequestPlan, drive, error_kinds
from bench.load_server import (
    Service,
    ServiceFiles,
    StoredExposures,
    count_exposures,
    describe_database,
    remove_exposures,
)
from bench.report import Result
from feeddata.db import connect, make_engine
from feedlab.settings import get_settings

FAULTS = ("outage", "sigterm", "sigkill")
PG_STOP = "pg_ctlcluster --skip-systemctl-redirect 15 main stop"
PG_START = "pg_ctlcluster --skip-systemctl-redirect 15 main start"
OTHER_SESSIONS = """
SELECT datname, count(*) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY datname ORDER BY datname
"""


@dataclass(frozen=True)
class FaultOptions:
    url: str
    faults: list[str]
    clients: int
    seconds: float
    workers: int
    outage_s: float
    pg_stop: str = PG_STOP
    pg_start: str = PG_START


@dataclass
class FaultRun:
    """One fault's run: every request's outcome, the exposures counted afterwards, the
    moments of the fault (perf_counter s) and what was seen."""

    name: str
    outcomes: list[Outcome]
    exposures: StoredExposures
    marks: dict[str, float] = field(default_factory=dict)
    detail: list[str] = field(default_factory=list)

    def row(self) -> list[object]:
        answered = sum(o.ok for o in self.outcomes)
        return [
            self.name,
            len(self.outcomes),
            len(self.outcomes) - answered,
            answered,
            self.exposures.stored,
            self.exposures.lost,
            "; ".join(self.detail),
        ]


Fault = Callable[[Service, asyncio.Event, dict[str, float]], Awaitable[None]]
COLUMNS = ["fault", "requests", "failed", "answered", "exposures stored", "lost", "detail"]


def run_faults(
    options: FaultOptions, plan: RequestPlan, files: Callable[[str], ServiceFiles], work: Path
) -> None:
    """Each fault of ``options.faults`` on its own server; one Result, ``load_faults``."""
    at = options.seconds / 3
    scenarios: dict[str, tuple[str, Fault]] = {
        "outage": (f"PostgreSQL stopped {options.outage_s:.0f} s at {at:.0f} s", _outage(options)),
        "sigterm": (f"SIGTERM to the server at {at:.0f} s", _sigterm),
        "sigkill": (f"SIGKILL of the busiest worker at {at:.0f} s", _sigkill),
    }
    runs = []
    for key in options.faults:
        name, fault = scenarios[key]
        runs.append(_run(options, plan, files(f"spill-{key}"), work / f"{key}.log", name, fault))
    config = get_settings().writer_config()  # what the served workers read as well
    Result(
        name="load_faults",
        title="Faults under load: database outage, SIGTERM, SIGKILL of a worker",
        command="python -m bench.bench_load --faults  (bench/load_faults.py)",
        columns=COLUMNS,
        rows=[r.row() for r in runs],
        notes=[
            f"Each fault on a fresh `feedlab serve --workers {options.workers}` with both "
            f"models, {options.clients} clients for up to {options.seconds:.0f} s; exposures "
            "counted by the request ids the clients received, after the service stopped "
            "(SIGTERM: the writers store what they hold).",
            f"Writer: batches of {config.batch_size:,}, linger {config.linger_s} s, "
            f"up to {config.memory_limit:,} exposures in memory per worker, then the spill "
            "file. By design a SIGKILLed worker loses what it held in memory and nothing "
            "from its spill file (the next worker to start replays it): with the database "
            "up, the exposures answered since its last batch was stored (linger plus one "
            "write); during an outage, the exposures since the last move to the spill file "
            "(every linger).",
            f"Database: {describe_database(options.url)}.",
        ],
        data={r.name: {"marks": r.marks, "errors": error_kinds(r.outcomes)} for r in runs},
    ).save()


def _run(
    options: FaultOptions,
    plan: RequestPlan,
    files: ServiceFiles,
    log: Path,
    name: str,
    fault: Fault,
) -> FaultRun:
    print(f"fault: {name}")
    service = Service(files, log, workers=options.workers)
    service.start()
    remove_exposures(options.url)
    marks: dict[str, float] = {}
    try:
        outcomes = asyncio.run(_with_fault(options, plan, service, fault, marks))
        if "kill" in marks:  # the supervisor starts a new worker: let it finish starting
            service.wait_started(options.workers + 1)
    finally:
        code = service.stop()
    answered = [o.request_id for o in outcomes if o.request_id is not None]
    run = FaultRun(name, outcomes, count_exposures(options.url, answered), marks)
    remove_exposures(options.url)
    run.detail = _detail(run, service, code, files.spill_dir)
    print(f"  {run.row()}")
    return run


async def _with_fault(
    options: FaultOptions,
    plan: RequestPlan,
    service: Service,
    fault: Fault,
    marks: dict[str, float],
) -> list[Outcome]:
    url, clients = service.base_url, options.clients
    await drive(url, plan, clients=clients, seconds=2, ramp=RAMP_S)  # warm-up, not counted
    stop = asyncio.Event()

    async def inject() -> None:
        await asyncio.sleep(options.seconds / 3)
        await fault(service, stop, marks)

    injected = asyncio.create_task(inject())
    run = await drive(
        url, plan, clients=clients, seconds=options.seconds, ramp=RAMP_S, stop=stop, seed=3
    )
    await injected
    return run.outcomes


def _outage(options: FaultOptions) -> Fault:
    async def fault(service: Service, stop: asyncio.Event, marks: dict[str, float]) -> None:
        _say_other_sessions(options.url)
        marks["stop"] = time.perf_counter()
        await asyncio.to_thread(_shell, options.pg_stop)
        marks["down"] = time.perf_counter()
        await asyncio.sleep(options.outage_s)
        await asyncio.to_thread(_shell, options.pg_start)
        marks["up"] = time.perf_counter()

    return fault


async def _sigterm(service: Service, stop: asyncio.Event, marks: dict[str, float]) -> None:
    marks["signal"] = time.perf_counter()
    service.send(signal.SIGTERM)
    stop.set()  # no new requests; those in flight must be answered
    assert service.process is not None
    await asyncio.to_thread(service.process.wait)
    marks["exited"] = time.perf_counter()


async def _sigkill(service: Service, stop: asyncio.Event, marks: dict[str, float]) -> None:
    victim = service.busiest_worker()
    marks["kill"] = time.perf_counter()
    os.kill(victim, signal.SIGKILL)


def _detail(run: FaultRun, service: Service, code: int, spill_dir: Path) -> list[str]:
    marks, outcomes = run.marks, run.outcomes
    detail = []
    if "stop" in marks:
        during = [o for o in outcomes if marks["down"] <= o.started < marks["up"]]
        detail += [
            f"PostgreSQL down {marks['up'] - marks['down']:.1f} s (stopping took "
            f"{marks['down'] - marks['stop']:.1f} s): {sum(o.ok for o in during)} of "
            f"{len(during)} requests sent then answered",
            f"writers reported failing writes {service.log_count('exposure writes failing')} "
            "time(s)",
        ]
    if "signal" in marks:
        t = marks["signal"]
        in_flight = [o for o in outcomes if o.started < t < o.started + o.seconds]
        detail += [
            f"{sum(o.ok for o in in_flight)} of {len(in_flight)} requests in flight at the "
            "signal answered",
            f"the server exited {marks['exited'] - t:.1f} s after the signal, code {code}",
        ]
    if "kill" in marks:
        t = marks["kill"]
        in_flight = [o for o in outcomes if o.started < t < o.started + o.seconds]
        after = [o for o in outcomes if o.started >= t]
        per_second = sum(o.ok for o in outcomes if o.started < t) / max(t - outcomes[0].started, 1)
        detail += [
            f"failed: {sum(not o.ok for o in in_flight)} in flight at the kill, "
            f"{sum(not o.ok for o in after)} sent later on its dead connections",
            f"lost = the last {run.exposures.lost / per_second:.2f} s of the whole service's "
            f"answers ({per_second:.0f}/s)",
        ]
    left = len(list(spill_dir.glob("*"))) if spill_dir.is_dir() else 0
    detail.append(
        f"workers at close (written, left in spill files, dropped): {service.closed_logs()}; "
        f"spill files left: {left}"
    )
    return detail


def _shell(command: str) -> None:
    subprocess.run(shlex.split(command), check=True, timeout=120)


def _say_other_sessions(url: str) -> None:
    engine = make_engine(url)
    with connect(engine) as conn:
        others = conn.execute(text(OTHER_SESSIONS)).all()
    engine.dispose()
    names = ", ".join(f"{db} {n}" for db, n in others) or "none"
    print(f"  stopping PostgreSQL; other client sessions it cuts: {names}")
