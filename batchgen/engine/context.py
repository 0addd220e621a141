"""What one item's life on the API needs, and nothing more."""

from __future__ import annotations

import random
from dataclasses import dataclass

from batchgen.clock import Clock
from batchgen.config import RunConfig
from batchgen.engine.budget import Budget
from batchgen.engine.calls import Calls
from batchgen.engine.gate import Gate
from batchgen.engine.inflight import InFlight
from batchgen.engine.runstate import Counters, DurationEstimate, StopSwitch
from batchgen.engine.twins import BodyLocks
from batchgen.lifecycle import Lifecycle, PayPolicy
from batchgen.store.items import ItemStore

# Spread waits by +-JITTER so jobs submitted together do not poll together.
JITTER = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """The run's settings and the few services a job uses; shared by every job."""

    cfg: RunConfig
    clock: Clock
    calls: Calls
    life: Lifecycle
    items: ItemStore
    gate: Gate
    estimate: DurationEstimate
    inflight: InFlight
    twins: BodyLocks
    rng: random.Random

    @property
    def counters(self) -> Counters:
        return self.life.counters

    @property
    def stop(self) -> StopSwitch:
        return self.gate.stop

    @property
    def budget(self) -> Budget:
        return self.gate.budget

    @property
    def policy(self) -> PayPolicy:
        cfg = self.cfg
        return PayPolicy(on_in_doubt=cfg.on_in_doubt, on_expired=cfg.on_expired,
                         retry_failed_jobs=cfg.retry_failed_jobs, retry_failed=cfg.retry_failed)

    def jitter(self, seconds: float) -> float:
        return seconds * self.rng.uniform(1 - JITTER, 1 + JITTER)
