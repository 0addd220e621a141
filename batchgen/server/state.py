"""Everything one server instance holds, in one object the handlers share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..clock import Clock
from .config import ServerConfig
from .faults import Faults
from .jobs import Job, JobBook
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

    def __post_init__(self) -> None:
        self.book = JobBook(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config)
        self.window = SlidingWindow(self.config.rpm, self.config.rpm_window_s)
        self.images = ImageCache(self.config.image_cache_size)
        self.rng = random.Random(f"jobs:{self.config.rng_seed}")

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
