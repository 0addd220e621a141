"""The server's state directory (``state_dir``): jobs that survive a restart.

One JSON line per accepted job, appended to ``jobs-YYYY-MM-DD.jsonl`` (the UTC day the
job was created), is all that is written. Everything else follows from it: a job's
states from its times (``jobs.py``), its output files from (prompt, seed, index, size)
(``png.py`` renders the same bytes again), the account's balance from the newest line.

Why this is enough, and cheap:

- A line is written with one ``os.write`` on an ``O_APPEND`` descriptor before the
  submit is answered, and never fsynced: a killed process (SIGKILL, a crash) loses no
  job it answered, since the kernel already holds the bytes; a power cut may lose the
  last jobs, as if their answers had been dropped. A torn last line is skipped on load.
- Times are stored on the wall clock (creation, then queue and run seconds), and turned
  back into the new process's monotonic scale on load, so v2 records and history expire
  by the server's wall clock across restarts, and a job still running when the server
  stopped ends when it would have.
- Retention prunes whole files: a day's file is deleted once every job in it is past the
  history retention, except the newest file, which carries the balance.
- An OS file lock (``lock``) keeps a second server out of the same directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import UsageError
from .config import ServerConfig
from .jobs import Job

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "jobs-", ".jsonl"


class StateDirError(UsageError):
    """Raised when the state directory cannot be used, or another server holds it."""

    def __init__(self, directory: Path, reason: str, *, busy: bool = False) -> None:
        self.directory = directory
        self.busy = busy
        super().__init__(f"server state directory {directory}: {reason}")


def record_of(job: Job, available: float) -> dict[str, Any]:
    """The journal line of ``job``; ``available`` is what new submits may spend after it."""
    return {
        "id": job.request_id, "slug": job.slug, "body": job.body_json, "seed": job.seed,
        "samples": job.samples, "width": job.width, "height": job.height,
        "base64": job.base64, "created": job.created_wall,
        "queue_s": job.start - job.created, "run_s": job.end - job.start,
        "error": job.error, "cost": job.cost, "available": available,
    }


def job_of(record: dict[str, Any], now: float, wall: float) -> Job:
    """The job a journal line describes, on the monotonic scale where ``wall`` is ``now``."""
    created = now - (wall - float(record["created"]))
    start = created + float(record["queue_s"])
    error = record["error"]
    return Job(
        request_id=str(record["id"]), slug=str(record["slug"]), body_json=str(record["body"]),
        seed=int(record["seed"]), samples=int(record["samples"]), width=int(record["width"]),
        height=int(record["height"]), base64=bool(record["base64"]), created=created,
        created_wall=float(record["created"]), start=start, end=start + float(record["run_s"]),
        error=None if error is None else str(error), cost=float(record["cost"]),
        # Whoever was told this job ended was told by the previous process.
        detected=True,
    )


def _day(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).date().isoformat()


def _day_end(name: str) -> float:
    """The wall time at which the day of the file ``name`` ends (infinity: not a day)."""
    try:
        day = datetime.fromisoformat(name[len(PREFIX) : -len(SUFFIX)]).replace(tzinfo=UTC)
    except ValueError:
        return math.inf
    return (day + timedelta(days=1)).timestamp()


class Journal:
    """The append side of a state directory, opened by ``load``."""

    def __init__(self, directory: Path, horizon_s: float) -> None:
        self.directory = directory
        self._horizon_s = horizon_s
        self._lock_fd = -1
        self._fd: int | None = None
        self._day_ends = 0.0

    @classmethod
    def load(
        cls, directory: Path, config: ServerConfig, clock: Clock
    ) -> tuple[Journal, list[Job], float | None]:
        """Return the journal of ``directory``, the jobs still kept, and the credits
        available after the newest job (None when there is none).

        A directory that exists is locked now; one that does not is created and locked
        with the first job, so a server that accepted nothing leaves nothing behind (a
        ``run --local`` stopped by a bad manifest creates no OUT).
        """
        journal = cls(directory, config.retention_s + config.history_retention_s)
        if not directory.exists():
            return journal, [], None
        try:
            journal._lock()
            jobs, available = journal._read(clock)
            journal._prune(clock.wall())
        except OSError as exc:
            journal.close()
            busy = isinstance(exc, BlockingIOError)
            reason = "another server is using it" if busy else exc.strerror or str(exc)
            raise StateDirError(directory, reason, busy=busy) from exc
        return journal, jobs, available

    def _lock(self) -> None:
        """Create and lock the directory; BlockingIOError when another server holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _segments(self) -> list[Path]:
        # Regular files only: a device or a FIFO in their place could be read forever.
        found = self.directory.glob(f"{PREFIX}????-??-??{SUFFIX}")
        return sorted(path for path in found if path.is_file())

    def _read(self, clock: Clock) -> tuple[list[Job], float | None]:
        now, wall = clock.now(), clock.wall()
        jobs: dict[str, Job] = {}
        available: float | None = None
        skipped = 0
        for path in self._segments():
            with path.open("rb") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                        job = job_of(record, now, wall)
                        spendable = float(record["available"])
                    except (ValueError, KeyError, TypeError):
                        skipped += 1
                        continue
                    available = spendable
                    if job.created_wall + self._horizon_s > wall:
                        jobs[job.request_id] = job
        if skipped:
            log.warning("skipped %d unreadable line(s) in %s", skipped, self.directory)
        return sorted(jobs.values(), key=lambda job: job.created), available

    def _prune(self, wall: float) -> None:
        """Delete the day files whose jobs are all past retention, except the newest."""
        for path in self._segments()[:-1]:
            if _day_end(path.name) + self._horizon_s <= wall:
                path.unlink(missing_ok=True)

    def append(self, job: Job, available: float) -> None:
        """Write ``job``'s line before its submit is answered; OSError when it cannot."""
        if self._lock_fd < 0:
            self._lock()
        if self._fd is None or job.created_wall >= self._day_ends:
            self._open_day(job.created_wall)
        assert self._fd is not None
        line = memoryview((json.dumps(record_of(job, available)) + "\n").encode())
        while line:
            line = line[os.write(self._fd, line) :]

    def _open_day(self, wall: float) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.directory / f"{PREFIX}{_day(wall)}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        # A line torn by a crash must not swallow the next one.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        self._fd = fd
        self._day_ends = _day_end(path.name)
        self._prune(wall)

    def close(self) -> None:
        """Close the files and release the directory."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

