"""Faults on demand, drawn from one generator seeded by ``rng_seed`` so a run replays.

Each request rolls once per kind it is exposed to:

- ``error_5xx``: a JSON ``{"error"}`` answer with status 500, 502, 503 or 504 (one roll,
  the four rates stacked), before auth, so no job is created.
- ``drop_before``: the connection is closed with no answer before anything is done.
- ``drop_after`` (submits only): the job is accepted, then the connection is closed with
  no answer; the job runs and shows up in history, the client never hears of it. The
  submits numbered in ``drop_after_submits`` always are, with no roll.
- ``slow``: the answer is held ``slow_s`` seconds of the server clock first.
- ``truncate`` (downloads only): Content-Length promises the whole file, half is sent,
  then the connection is closed.
- ``non_json``: an error answer's body is text/plain or HTML instead of JSON.
- ``garbled_result`` (results of COMPLETED jobs): 200, but the JSON body is cut in half.
- ``wrong_result`` (results of COMPLETED jobs): 200 with another kept job's result (its
  prompt, seed and images) under this request id, as a server that reused an id would
  answer: the client must check a result against what it sent.
"""

from __future__ import annotations

import random

from .config import ServerConfig


class Faults:
    """Seeded decisions about which requests misbehave, and how."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._rng = random.Random(f"faults:{config.rng_seed}")

    def _roll(self, rate: float) -> bool:
        # A zero rate draws nothing, so enabling one fault does not reshuffle the others.
        return rate > 0.0 and self._rng.random() < rate

    def error_status(self) -> int | None:
        """An injected 5xx status for this request, or None."""
        rates = self._config.error_rates()
        if not any(rates.values()):
            return None
        draw = self._rng.random()
        for status, rate in rates.items():
            if draw < rate:
                return status
            draw -= rate
        return None

    def drop_before(self) -> bool:
        return self._roll(self._config.drop_before_rate)

    def drop_after(self, ordinal: int) -> bool:
        """Whether the ``ordinal``-th accepted submit of this process is dropped."""
        if ordinal in self._config.drop_after_submits:
            return True
        return self._roll(self._config.drop_after_rate)

    def slow(self) -> bool:
        return self._roll(self._config.slow_rate)

    def truncate(self) -> bool:
        return self._roll(self._config.truncate_rate)

    def result(self) -> str | None:
        """``"garbled"`` or ``"wrong"`` when this COMPLETED result should be bad."""
        if self._roll(self._config.garbled_result_rate):
            return "garbled"
        if self._roll(self._config.wrong_result_rate):
            return "wrong"
        return None

    def non_json(self) -> str | None:
        """``"text"`` or ``"html"`` when this error body should not be JSON."""
        if not self._roll(self._config.non_json_rate):
            return None
        return self._rng.choice(("text", "html"))
