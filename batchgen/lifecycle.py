"""The life of an item, from its manifest line to its images on disk, in one table.

Exactly-once and no-money-wasted live here. An item is in one of seven states (stored as
these strings in ``items.state``, so a store written by an older batchgen reads as is),
and it moves only by the events of ``EVENTS``: each names the states it may start from
and the one it leads to. ``Lifecycle.fire`` applies an event as one durable transaction
whose SQL checks the from-state (``UPDATE ... WHERE id = ? AND state IN (...)`` and the
row count), then counts and logs it; an event fired from any other state raises
``IllegalTransition`` and writes nothing.

    event        from                          to          when
    add          (new)                         pending     read from the manifest
    intend       pending, in_doubt             submitting  its POST is about to leave
    accepted     submitting                    submitted   the API answered with a request id
    unsent       submitting                    pending     no job was created (never sent, 429, 5xx)
    rejected     submitting                    failed      the API refused it (400, its model)
    doubted      submitting                    in_doubt    the POST may have created a job
    adopted      in_doubt                      submitted   the history shows the job it created
    fetched      submitted, fetched            fetched     the result is read (the job is paid)
    delivered    fetched                       completed   its images are on disk
    undelivered  fetched                       fetched     its images could not be written
    lost         completed                     fetched     its images are gone or changed on disk
    expired      submitted                     pending     record and history have nothing
    job_failed   submitted                     pending     the job ended FAILED (not billed)
    failed       pending, in_doubt, submitted, failed      given up by policy
                 fetched
    retry        failed                        pending     --retry-failed
    reopened     failed                        in_doubt    --retry-failed, its submit's fate unknown
    changed      pending, completed, failed    pending     its parameters changed in the manifest

Whether an item may be paid for again is ``may_pay_again``: one function, beside the table.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from batchgen.errors import BatchgenError

if TYPE_CHECKING:
    from batchgen.clock import Clock
    from batchgen.engine.runstate import Counters
    from batchgen.manifest.item import Item

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    """Where an item stands; the values are what the store keeps."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    IN_DOUBT = "in_doubt"
    SUBMITTED = "submitted"
    FETCHED = "fetched"
    COMPLETED = "completed"
    FAILED = "failed"


PENDING, SUBMITTING, IN_DOUBT = State.PENDING, State.SUBMITTING, State.IN_DOUBT
SUBMITTED, FETCHED, COMPLETED, FAILED = (State.SUBMITTED, State.FETCHED, State.COMPLETED,
                                         State.FAILED)
STATES: tuple[State, ...] = tuple(State)

# The named sets, defined once.
OUTCOME_UNKNOWN = frozenset({SUBMITTING, IN_DOUBT})  # a POST may have created a job
HAS_JOB = frozenset({SUBMITTED, FETCHED, COMPLETED})  # a request id is known
PAID = frozenset({FETCHED, COMPLETED})  # the job completed: it was billed
FINISHED = frozenset({COMPLETED, FAILED})  # nothing more happens without --retry-failed
STARTED = frozenset({SUBMITTING, IN_DOUBT, SUBMITTED, FETCHED})  # begun, not finished


@dataclass(frozen=True, slots=True)
class Event:
    """One named transition: its from-states, its to-state, and what it records."""

    name: str
    sources: frozenset[State]
    target: State
    # Columns the event may set besides ``state``.
    fields: frozenset[str] = frozenset()
    # Columns set to NULL, and per-item counters (columns) it adds one to.
    clears: frozenset[str] = frozenset()
    bumps: tuple[str, ...] = ()
    # Columns kept when already set: ``intent_at`` is the first intent since the item
    # last held a job, so that every job created since then counts as its own.
    keep_first: frozenset[str] = frozenset()
    # Whether the event claims a request id no other item may hold (an adoption).
    claims: bool = False
    level: int = logging.DEBUG


def _event(name: str, sources: set[State], target: State, fields: str = "", *,
           clears: str = "", bumps: tuple[str, ...] = (), keep_first: str = "",
           claims: bool = False, level: int = logging.DEBUG) -> Event:
    return Event(name, frozenset(sources), target, frozenset(fields.split()),
                 frozenset(clears.split()), bumps, frozenset(keep_first.split()), claims,
                 level)


_ERROR = "last_error error_class"
_JOB = "request_id status_url response_url submitted_at"
_FRESH = _ERROR + " intent_at"  # a job is held: no error, no open intent
_WARN = logging.WARNING
EVENTS: dict[str, Event] = {e.name: e for e in (
    _event("add", set(), PENDING),
    _event("intend", {PENDING, IN_DOUBT}, SUBMITTING, "intent_at", keep_first="intent_at"),
    _event("accepted", {SUBMITTING}, SUBMITTED, _JOB, clears=_FRESH),
    _event("unsent", {SUBMITTING}, PENDING, _ERROR, level=_WARN),
    _event("rejected", {SUBMITTING}, FAILED, _ERROR, level=_WARN),
    _event("doubted", {SUBMITTING}, IN_DOUBT, _ERROR, bumps=("in_doubt",), level=_WARN),
    _event("adopted", {IN_DOUBT}, SUBMITTED, _JOB, clears=_FRESH, claims=True,
           level=logging.INFO),
    _event("fetched", {SUBMITTED, FETCHED}, FETCHED, "result cost request_id"),
    _event("delivered", {FETCHED}, COMPLETED, "files", clears=_ERROR),
    _event("undelivered", {FETCHED}, FETCHED, _ERROR, level=_WARN),
    _event("lost", {COMPLETED}, FETCHED, _ERROR, level=logging.INFO),
    _event("expired", {SUBMITTED}, PENDING, _ERROR, clears="request_id intent_at",
           bumps=("resubmits",), level=_WARN),
    _event("job_failed", {SUBMITTED}, PENDING, _ERROR, clears="request_id intent_at",
           bumps=("job_failures",), level=_WARN),
    _event("failed", {PENDING, IN_DOUBT, SUBMITTED, FETCHED}, FAILED, _ERROR, level=_WARN),
    _event("retry", {FAILED}, PENDING, clears=_FRESH, level=logging.INFO),
    _event("reopened", {FAILED}, IN_DOUBT, clears=_ERROR, level=logging.INFO),
    _event("changed", {PENDING, COMPLETED, FAILED}, PENDING, "body model line",
           clears=_FRESH + " " + _JOB + " result files", level=logging.INFO),
)}

# What each event adds to this run's counters (``engine.runstate.Counters``).
_COUNTS: dict[str, tuple[str, ...]] = {
    "accepted": ("accepted",),
    "doubted": ("in_doubt",),
    "adopted": ("adopted",),
    "delivered": ("completed",),
    "undelivered": ("not_delivered",),
    "lost": ("redownloads",),
    "expired": ("resubmits",),
    "failed": ("failed",),
    "rejected": ("failed",),
    "retry": ("retried",),
    "reopened": ("retried",),
    "changed": ("changed",),
}


# Events whose cause is an outcome for ``errors_by_cause``; the others (an attempt that
# will be retried, a doubt being settled) are counted where their fate is decided.
_ENDS_IN_ERROR = frozenset({"rejected", "failed", "undelivered"})


class IllegalTransition(BatchgenError):
    """Raised when an event is fired at an item that is not in one of its from-states."""

    def __init__(self, event: str, item_id: str, state: str | None) -> None:
        self.event, self.item_id, self.state = event, item_id, state
        where = "no such item" if state is None else f"it is {state}"
        super().__init__(f"item {item_id}: cannot apply {event!r}: {where}")


# -- may we pay for this item again? ------------------------------------------------------

Cause = Literal["new", "in_doubt", "expired", "job_failed", "failed_before"]
# How many times one item may go in doubt before the policy stops resending it.
MAX_IN_DOUBT = 3
# Resubmits after the record expired with nothing in the history: a job that keeps not
# finishing within the hour is not worth paying for again and again.
MAX_EXPIRED_RESUBMITS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class PayPolicy:
    """The user's say in paying again (``RunConfig``'s options of the same names)."""

    on_in_doubt: Literal["resubmit", "fail"] = "resubmit"
    on_expired: Literal["resubmit", "fail"] = "resubmit"
    retry_failed_jobs: int = 0
    retry_failed: bool = False


def may_pay_again(state: State, cause: Cause, *, in_doubt: int = 0, resubmits: int = 0,
                  job_failures: int = 0, policy: PayPolicy) -> str | None:
    """None when the item may be submitted now; otherwise why it may not.

    ``cause`` is why a new submit is being considered; the counts are the item's own.
    A job that completed is never paid for again: only its images are fetched again.
    """
    if state in PAID:
        return "its job completed and was paid for: only its images may be fetched again"
    if cause == "new":
        return None if state == PENDING else f"it is {state}, not new"
    if cause == "in_doubt":
        if policy.on_in_doubt == "fail":
            return "--on-in-doubt fail"
        if in_doubt < MAX_IN_DOUBT or policy.retry_failed:
            return None
        return f"in doubt {in_doubt} times (--retry-failed sends it again)"
    if cause == "expired":
        if policy.on_expired == "fail":
            return "--on-expired fail"
        return (None if resubmits < MAX_EXPIRED_RESUBMITS
                else f"resubmitted {resubmits} times after its record expired")
    if cause == "job_failed":
        return (None if job_failures <= policy.retry_failed_jobs
                else f"its job FAILED {job_failures} times (--retry-failed-jobs "
                     f"{policy.retry_failed_jobs})")
    return None if policy.retry_failed else "it failed before (--retry-failed runs it again)"


# -- firing events -----------------------------------------------------------------------

Outcome = Literal["ok", "claimed"]
Apply = Callable[[Event, str, float, Mapping[str, Any]], Awaitable["Outcome | str | None"]]


class Lifecycle:
    """Fires events: the store's checked transaction, then this run's counters and log.

    ``apply(event, item_id, now, values)`` is the store's transaction
    (``store.items.ItemStore.transition``): it returns "ok", "claimed" when an adoption
    found its request id already held by another item, or the state the item was found
    in (None when there is no such row) when the event does not apply.
    """

    def __init__(self, apply: Apply, counters: Counters, clock: Clock) -> None:
        self._apply = apply
        self.counters = counters
        self._clock = clock

    async def fire(self, name: str, item: Item | str, *, message: str | None = None,
                   error_class: str | None = None, job: str | None = None,
                   **values: Any) -> bool:
        """Apply event ``name`` to ``item``; False only when an adoption lost its claim.
        ``job`` names the request id in the log line when the event does not store it."""
        event = EVENTS[name]
        item_id = item if isinstance(item, str) else item.id
        if message is not None:
            values["last_error"], values["error_class"] = message, error_class
        unknown = set(values) - event.fields - {"posts"}
        if unknown:
            raise ValueError(f"event {name!r} does not set {sorted(unknown)}")
        outcome = await self._apply(event, item_id, self._clock.wall(), values)
        if outcome == "claimed":
            return False
        if outcome != "ok":
            raise IllegalTransition(name, item_id, outcome)
        self._count(name, values.get("posts", 0), error_class if message else None)
        _log(event, item_id, values.get("request_id", job), message, error_class)
        return True

    def _count(self, name: str, posts: int, error_class: str | None) -> None:
        c = self.counters
        c.submit_attempts += posts
        for counter in _COUNTS.get(name, ()):
            setattr(c, counter, getattr(c, counter) + 1)
        if error_class and name in _ENDS_IN_ERROR:
            c.errors[error_class] += 1


_MESSAGES = {
    "unsent": "item %s not submitted (%s): %s",
    "rejected": "item %s failed (%s): %s",
    "doubted": "item %s: submit outcome unknown (%s): %s; looking in the history",
    "undelivered": "item %s: images not written (%s): %s",
    "lost": "item %s: images missing or changed on disk (%s): %s; fetching them again",
    "expired": "item %s: record expired, nothing in the history (%s): %s; may resubmit",
    "job_failed": "item %s: job FAILED (%s): %s",
    "failed": "item %s failed (%s): %s",
}


def _log(event: Event, item_id: str, request_id: str | None, message: str | None,
         error_class: str | None) -> None:
    if not log.isEnabledFor(event.level):
        return
    extra = {"event": f"item.{event.name}", "item_id": item_id, "request_id": request_id}
    template = _MESSAGES.get(event.name)
    if template is not None and message is not None:
        log.log(event.level, template, item_id, error_class, message, extra=extra)
    elif request_id:
        log.log(event.level, "item %s: %s (job %s)", item_id, event.name, request_id,
                extra=extra)
    else:
        log.log(event.level, "item %s: %s", item_id, event.name, extra=extra)
