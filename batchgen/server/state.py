"""Everything one server instance holds, in one object the handlers share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..clock import Clock
from .config import ServerConfig
from .faults import Faults
from .jobs import Job, JobBook
from .journal import Journal
from .png import ImageCache, ImageSpec
from .ratelimit import SlidingWindow
from .stats import Stats


@dataclass(slots=True)
class ServerState:
    """Config, clock, jobs, counters and the seeded generators of one server."""

    config: ServerConfig
    clock: Clock
    book: JobBook = field(init=False)
    stats: Stats = field(init=False)
    faults: Faults = field(init=False)
    window: SlidingWindow = field(init=False)
    images: ImageCache = field(init=False)
    # Random seeds, jitter and fail_rate draws: seeded, so a run replays. Request ids are
    # not drawn from it (uuid4, see submit.py).
    rng: random.Random = field(init=False)
    # Where accepted jobs are written when ``config.state_dir`` is set (``open``).
    journal: Journal | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.book = JobBook(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config)
        self.window = SlidingWindow(self.config.rpm, self.config.rpm_window_s)
        self.images = ImageCache(self.config.image_cache_size)
        self.rng = random.Random(f"jobs:{self.config.rng_seed}")

    def open(self) -> None:
        """Take back the jobs kept in ``config.state_dir``, and keep writing there."""
        if self.config.state_dir is None:
            return
        self.journal, jobs, available = Journal.load(
            self.config.state_dir, self.config, self.clock
        )
        if available is not None:
            self.book.restore(jobs, available)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def record(self, job: Job) -> None:
        """Keep an accepted job: in the state directory first (OSError when it cannot be
        written, and then the job does not exist), then in the book."""
        if self.journal is not None:
            self.journal.append(job, self.book.available - job.cost)
        self.book.add(job)
        self.stats.submits_accepted += 1

    def now(self) -> float:
        """Monotonic time, after settling the job book to it."""
        now = self.clock.now()
        self.book.settle(now)
        return now

    def image(self, job: Job, index: int) -> bytes:
        """The PNG bytes of output ``index`` of ``job``; remembers its size."""
        data = self.images.get(
            ImageSpec(job.prompt, job.seed, index, job.width, job.height)
        )
        if job.file_sizes is None:
            job.file_sizes = [None] * job.samples
        job.file_sizes[index] = len(data)
        return data

    def file_size(self, job: Job, index: int) -> int:
        """The size of output ``index``, rendering it once if not known yet."""
        if job.file_sizes and job.file_sizes[index] is not None:
            return job.file_sizes[index] or 0
        return len(self.image(job, index))

    def snapshot(self) -> dict[str, object]:
        """The ``/__stats`` answer."""
        self.now()
        return self.stats.snapshot(
            completed=self.book.completed,
            failed=self.book.failed,
            in_flight=self.book.in_flight,
            bodies=self.book.bodies,
        )
