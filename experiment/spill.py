"""Local JSONL files holding exposures while the database is unreachable.

Each process appends to its own file, locked with ``flock`` while it is in use. A file
whose owner is gone (a crash, a restart) is unlocked: :meth:`SpillFiles.claim_orphans`
takes it over for replay. Replayed lines may be written again after a crash mid-file;
exposure writes ignore request ids already stored, so that costs nothing.
"""

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from feeddata.exposures import Exposure

log = logging.getLogger("feedlab.exposures")

SUFFIX = ".jsonl"
REPLAY_SUFFIX = ".replay"


@dataclass
class _Replay:
    path: Path
    lock: IO[bytes]
    offset: int = 0


class SpillFiles:
    """Spill files in ``directory``: appends from any thread, replay from one."""

    def __init__(self, directory: Path, *, limit_bytes: int) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None
        self._active_path: Path | None = None
        self._active_lines = 0
        self._replays: list[_Replay] = []
        self.pending = 0
        """Lines spilled or claimed and not replayed yet."""

    def append(self, batch: Iterable[Exposure]) -> int:
        """Append ``exposures``; returns how many fit under the size limit (OSError when
        the file cannot be written)."""
        lines = [(json.dumps(e.to_json(), separators=(",", ":")) + "\n").encode() for e in batch]
        with self._lock:
            handle = self._active or self._open_active()
            room = self.limit_bytes - self._used_bytes()
            kept = []
            for line in lines:
                if len(line) > room:
                    break
                kept.append(line)
                room -= len(line)
            handle.write(b"".join(kept))
            handle.flush()
            self._active_lines += len(kept)
            self.pending += len(kept)
            return len(kept)

    def rotate(self) -> None:
        """Queue the active file for replay; later spills go to a new file."""
        with self._lock:
            if self._active is None or self._active_path is None or not self._active_lines:
                return
            replay_path = self._active_path.with_suffix(REPLAY_SUFFIX)
            self._active_path.rename(replay_path)  # still locked: no one else claims it
            self._replays.append(_Replay(replay_path, self._active))
            self._active, self._active_path, self._active_lines = None, None, 0

    def has_replay(self) -> bool:
        return bool(self._replays)

    def has_unrotated(self) -> bool:
        return self._active_lines > 0

    def read_batch(self, size: int) -> tuple[list[Exposure], int]:
        """Up to ``size`` exposures from the oldest queued file, and the number of lines
        read (corrupt lines, e.g. a write cut by a crash, are skipped with a warning);
        :meth:`confirm` them once stored."""
        replay = self._replays[0]
        batch: list[Exposure] = []
        lines = 0
        with replay.path.open("rb") as source:
            source.seek(replay.offset)
            while len(batch) < size and (line := source.readline()):
                lines += 1
                try:
                    batch.append(Exposure.from_json(json.loads(line)))
                except (ValueError, TypeError, KeyError):
                    log.warning("skipping a corrupt line in %s", replay.path)
            self._next_offset = source.tell()
        return batch, lines

    def confirm(self, lines: int) -> None:
        """The batch last read is stored: move past it; remove the file at its end."""
        replay = self._replays[0]
        replay.offset = self._next_offset
        # under the lock: an append (any thread) sizes every queued file, and must not
        # find one listed that is gone
        with self._lock:
            self.pending = max(0, self.pending - lines)
            if replay.offset >= replay.path.stat().st_size:
                replay.path.unlink()
                replay.lock.close()
                self._replays.pop(0)

    def claim_orphans(self) -> int:
        """Take over unlocked spill files of other (gone) processes; returns their lines."""
        if not self.directory.is_dir():
            return 0
        claimed = 0
        for path in sorted(self.directory.iterdir()):
            if path.suffix not in (SUFFIX, REPLAY_SUFFIX) or path == self._active_path:
                continue
            handle = path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # a live process owns it
                continue
            target = self.directory / f"claimed-{os.getpid()}-{uuid.uuid4().hex[:8]}{REPLAY_SUFFIX}"
            try:
                path.rename(target)
            except FileNotFoundError:
                handle.close()  # claimed and finished by another process meanwhile
                continue
            with target.open("rb") as source:
                lines = sum(1 for _ in source)
            self._replays.append(_Replay(target, handle))
            claimed += lines
        with self._lock:
            self.pending += claimed
        return claimed

    def close(self) -> None:
        """Release the files; what is left in them is replayed by the next process."""
        with self._lock:
            for replay in self._replays:
                replay.lock.close()
            self._replays.clear()
            if self._active is not None:
                self._active.close()
                self._active, self._active_path, self._active_lines = None, None, 0

    def _open_active(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"exposures-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        handle = path.open("ab")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._active, self._active_path, self._active_lines = handle, path, 0
        return handle

    def _used_bytes(self) -> int:
        files = [r.path for r in self._replays]
        if self._active_path is not None:
            files.append(self._active_path)
        return sum(p.stat().st_size for p in files if p.exists())
