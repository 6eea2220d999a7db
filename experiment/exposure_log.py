"""The exposure log: requests hand exposures over in microseconds, a background thread
writes them in batches.

Nothing is lost short of the disk failing: while the database is unreachable the writer
retries with exponential backoff, and every ``linger_s`` it moves what requests handed over
to a local spill file (:mod:`experiment.spill`), replayed once writes succeed again. So a
process killed during an outage loses about ``linger_s`` of exposures, as it does when the
database is up (those waiting for the next batch). If the spill file is full, exposures
wait in memory up to ``memory_limit``. Closing writes everything still buffered; if the
database is still down at the deadline, the rest goes to the spill file for the next
start. Only a full or failing disk drops exposures, and the ``dropped`` counter says how
many.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from experiment.spill import SpillFiles
from feeddata.exposures import Exposure

log = logging.getLogger("feedlab.exposures")

WriteBatch = Callable[[Sequence[Exposure]], None]


class WriterConfig(BaseModel):
    """Tuning of the exposure writer; the service reads it from ``FEEDLAB_EXPOSURE_*``
    through :meth:`feedlab.settings.Settings.writer_config`. The defaults suit production."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spill_dir: Path | None = Field(
        default=None, description="spill files; default: <FEEDLAB_ARTIFACTS>/exposure_spill"
    )
    memory_limit: int = Field(default=50_000, ge=1, description="exposures held in memory")
    batch_size: int = Field(default=1_000, ge=1, description="exposures per transaction")
    linger_s: float = Field(default=0.2, gt=0, description="wait for a batch to fill")
    max_backoff_s: float = Field(default=5.0, gt=0, description="longest wait between retries")
    spill_limit_mb: float = Field(default=1024, ge=0, description="spill file size bound")
    close_timeout_s: float = Field(default=30.0, ge=0, description="writing at shutdown")


@dataclass(frozen=True)
class ExposureLogStats:
    logged: int
    written: int
    buffered: int
    spilled: int
    spill_pending: int
    replayed: int
    dropped: int
    write_errors: int
    database_ok: bool


class ExposureLog:
    """Batches exposures to ``write`` from one background thread (:meth:`start`,
    :meth:`log`, :meth:`close`)."""

    def __init__(self, write: WriteBatch, *, spill_dir: Path, config: WriterConfig) -> None:
        """``write`` stores a batch or raises; ``spill_dir`` holds the spill files."""
        self._write = write
        self.config = config
        self._spill = SpillFiles(spill_dir, limit_bytes=int(config.spill_limit_mb * 2**20))
        self._pending: deque[Exposure] = deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="exposure-writer", daemon=True)
        self._deadline: float | None = None
        self._in_flight = 0
        self._database_ok = True
        self._logged = self._written = self._spilled = self._replayed = 0
        self._dropped = self._write_errors = 0

    def start(self) -> "ExposureLog":
        """Claim spill files left by earlier processes, then start writing."""
        if claimed := self._spill.claim_orphans():
            log.info("replaying %d exposures spilled by an earlier process", claimed)
        self._thread.start()
        return self

    def log(self, exposure: Exposure) -> None:
        """Hand ``exposure`` over; never blocks on the database."""
        with self._cond:
            self._logged += 1
            if len(self._pending) + self._in_flight < self.config.memory_limit:
                self._pending.append(exposure)
                if len(self._pending) == self.config.batch_size:
                    self._cond.notify()
                return
        self._spill_or_drop([exposure])

    def close(self) -> bool:
        """Write what is buffered (spilling what cannot be written by the deadline) and
        stop; True when everything reached the database."""
        with self._cond:
            self._deadline = time.monotonic() + self.config.close_timeout_s
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        self._spill.close()
        stats = self.stats()
        return stats.buffered == 0 and stats.spill_pending == 0

    def stats(self) -> ExposureLogStats:
        with self._cond:
            buffered = len(self._pending) + self._in_flight
        return ExposureLogStats(
            logged=self._logged,
            written=self._written,
            buffered=buffered,
            spilled=self._spilled,
            spill_pending=self._spill.pending,
            replayed=self._replayed,
            dropped=self._dropped,
            write_errors=self._write_errors,
            database_ok=self._database_ok,
        )

    def _run(self) -> None:
        backoff = 0.0
        while True:
            if self._past_deadline():
                self._spill_everything()
                return
            batch = self._next_batch()
            if batch:
                ok = self._store(batch)
                if not ok:
                    with self._cond:
                        self._pending.extendleft(reversed(batch))
                        self._in_flight = 0
                    self._spill_pending()
                elif self._spill_waiting():
                    ok = self._replay_one()
            elif self._spill_waiting():
                ok = self._replay_one()
            elif self._deadline is not None:
                return
            else:
                continue
            backoff = 0.0 if ok else min(max(backoff * 2, 0.1), self.config.max_backoff_s)
            if not ok:
                self._sleep(backoff)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _next_batch(self) -> list[Exposure]:
        with self._cond:
            if self._deadline is None and len(self._pending) < self.config.batch_size:
                self._cond.wait(self.config.linger_s)
            size = min(len(self._pending), self.config.batch_size)
            batch = [self._pending.popleft() for _ in range(size)]
            self._in_flight = size
            return batch

    def _store(self, batch: Sequence[Exposure]) -> bool:
        try:
            self._write(batch)
        except Exception as error:
            self._write_errors += 1
            if self._database_ok:
                log.warning("exposure writes failing, buffering and retrying: %s", error)
            self._database_ok = False
            return False
        if not self._database_ok:
            log.info("exposure writes succeed again")
        self._database_ok = True
        with self._cond:
            self._written += len(batch)
            self._in_flight = 0
        return True

    def _spill_waiting(self) -> bool:
        """Whether spilled exposures can be replayed now: queued files, or the active
        file once memory has room again. During an outage the replay is the writer's probe
        of the database, and at most one file waits for it while the active one grows."""
        if self._spill.has_replay():
            return True
        if not self._spill.has_unrotated():
            return False
        if len(self._pending) >= self.config.memory_limit:
            return False
        self._spill.rotate()
        return self._spill.has_replay()

    def _replay_one(self) -> bool:
        """Write one batch from the spill files; True when it was stored."""
        batch, lines = self._spill.read_batch(self.config.batch_size)
        with self._cond:
            self._in_flight = 0
        if not self._store(batch):
            return False
        self._spill.confirm(lines)
        self._replayed += len(batch)
        return True

    def _spill_pending(self) -> None:
        """Move the exposures waiting in memory to the spill file (the database is down);
        those that do not fit stay in memory."""
        with self._cond:
            waiting = list(self._pending)
            self._pending.clear()
        if not waiting:
            return
        kept = self._append_to_spill(waiting)
        if kept < len(waiting):
            with self._cond:
                self._pending.extendleft(reversed(waiting[kept:]))

    def _append_to_spill(self, exposures: Sequence[Exposure]) -> int:
        try:
            kept = self._spill.append(exposures)
        except OSError as error:
            log.error("cannot write the exposure spill file: %s", error)
            kept = 0
        with self._cond:
            self._spilled += kept
        return kept

    def _spill_or_drop(self, exposures: Sequence[Exposure]) -> None:
        kept = self._append_to_spill(exposures)
        with self._cond:
            if kept < len(exposures):
                self._dropped += len(exposures) - kept
                log.error("dropped %d exposures: memory and spill file full", len(exposures) - kept)

    def _spill_everything(self) -> None:
        with self._cond:
            rest = list(self._pending)
            self._pending.clear()
        if rest:
            log.warning(
                "database unreachable at shutdown: %d exposures go to the spill file", len(rest)
            )
            self._spill_or_drop(rest)

    def _sleep(self, seconds: float) -> None:
        """Back off after a failed write, spilling what arrives every ``linger_s``."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._deadline is not None:
                time.sleep(max(0.0, min(left, self._deadline - time.monotonic())))
                return
            with self._cond:
                # close() wakes it, so shutdown does not wait out a long backoff
                step = min(left, self.config.linger_s)
                self._cond.wait_for(lambda: self._deadline is not None, timeout=step)
            self._spill_pending()
