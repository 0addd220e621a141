"""The lifecycle table: every event checked in SQL, may_pay_again, and README against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stores import record, seed

from batchgen.engine.job import failure_class
from batchgen.errors import JobFailedError
from batchgen.lifecycle import (
    EVENTS,
    STATES,
    IllegalTransition,
    Lifecycle,
    PayPolicy,
    State,
    may_pay_again,
)
from batchgen.manifest.item import Item
from batchgen.store.db import Database
from batchgen.store.items import ItemStore

README = Path(__file__).resolve().parent.parent / "README.md"

# A way to reach each state from a new item, through the table's own events.
PATHS: dict[State, tuple[str, ...]] = {
    State.PENDING: (),
    State.SUBMITTING: ("intend",),
    State.IN_DOUBT: ("intend", "doubted"),
    State.SUBMITTED: ("intend", "accepted"),
    State.FETCHED: ("intend", "accepted", "fetched"),
    State.COMPLETED: ("intend", "accepted", "fetched", "delivered"),
    State.FAILED: ("intend", "rejected"),
}
VALUES = {"request_id": "r-1", "intent_at": 1.0, "submitted_at": 2.0, "files": []}


def item(state: State) -> Item:
    return Item(f"item-{state.value}", "sd1.5-epicrealism", {"prompt": state.value}, "m", 1)


def test_every_state_is_reached_by_the_table() -> None:
    """Each state is some event's target, and every path above uses legal events."""
    assert {e.target for e in EVENTS.values()} == set(STATES)
    for state, path in PATHS.items():
        current = State.PENDING
        for name in path:
            assert current in EVENTS[name].sources, (state, name)
            current = EVENTS[name].target
        assert current == state


@pytest.mark.parametrize("name", [n for n in EVENTS if n != "add"])
async def test_an_event_applies_from_its_sources_only(tmp_path: Path, name: str) -> None:
    """An event moves an item from each of its from-states to its to-state, and from any
    other state raises IllegalTransition and leaves the row as it was."""
    db_path = tmp_path / "state.db"
    for state, path in PATHS.items():
        await seed(db_path, [item(state)], path, **VALUES)
    event = EVENTS[name]
    db = await Database.open(db_path)
    try:
        store = ItemStore(db)
        from batchgen.clock import ManualClock
        from batchgen.engine.runstate import Counters

        life = Lifecycle(store.transition, Counters(), ManualClock())
        values = {k: v for k, v in VALUES.items() if k in event.fields}
        if event.claims:
            values["request_id"] = "r-unclaimed"
        for state in STATES:
            before = await store.get(item(state).id)
            if state in event.sources:
                assert await life.fire(name, item(state), **values)
                after = await store.get(item(state).id)
                assert after is not None and after.state == event.target
            else:
                with pytest.raises(IllegalTransition):
                    await life.fire(name, item(state), **values)
                assert await store.get(item(state).id) == before
    finally:
        await db.aclose()


async def test_a_request_id_is_claimed_by_one_item_only(tmp_path: Path) -> None:
    """Adopting a job another item holds is refused (False), and nothing is written."""
    db_path = tmp_path / "state.db"
    first, second = item(State.SUBMITTED), item(State.IN_DOUBT)
    await seed(db_path, [first], PATHS[State.SUBMITTED], **VALUES)
    await seed(db_path, [second], PATHS[State.IN_DOUBT], **VALUES)
    db = await Database.open(db_path)
    try:
        from batchgen.clock import ManualClock
        from batchgen.engine.runstate import Counters

        counters = Counters()
        store = ItemStore(db)
        life = Lifecycle(store.transition, counters, ManualClock())
        assert not await life.fire("adopted", second, request_id="r-1")
        assert counters.adopted == 0
    finally:
        await db.aclose()
    stored = await record(db_path, second.id)
    assert stored is not None and stored.state == State.IN_DOUBT and stored.request_id is None


POLICY = PayPolicy()


@pytest.mark.parametrize(
    ("state", "cause", "counts", "policy", "allowed"),
    [
        (State.PENDING, "new", {}, POLICY, True),
        (State.SUBMITTED, "new", {}, POLICY, False),
        (State.COMPLETED, "expired", {}, POLICY, False),
        (State.FETCHED, "in_doubt", {}, POLICY, False),
        (State.IN_DOUBT, "in_doubt", {"in_doubt": 1}, POLICY, True),
        (State.IN_DOUBT, "in_doubt", {"in_doubt": 3}, POLICY, False),
        (State.IN_DOUBT, "in_doubt", {"in_doubt": 1}, PayPolicy(on_in_doubt="fail"), False),
        (State.SUBMITTED, "expired", {"resubmits": 1}, POLICY, True),
        (State.SUBMITTED, "expired", {"resubmits": 2}, POLICY, False),
        (State.SUBMITTED, "expired", {}, PayPolicy(on_expired="fail"), False),
        (State.PENDING, "job_failed", {"job_failures": 1}, POLICY, False),
        (State.PENDING, "job_failed", {"job_failures": 2}, PayPolicy(retry_failed_jobs=2),
         True),
        (State.FAILED, "failed_before", {}, POLICY, False),
        (State.FAILED, "failed_before", {}, PayPolicy(retry_failed=True), True),
    ],
)
def test_may_pay_again(state: State, cause: str, counts: dict[str, int], policy: PayPolicy,
                       allowed: bool) -> None:
    """Paid jobs are never paid again; the rest follow the counts and the user's policy."""
    verdict = may_pay_again(state, cause, policy=policy, **counts)  # type: ignore[arg-type]
    assert (verdict is None) == allowed, verdict


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Content blocked by safety filter (NSFW content detected)", "safety_block"),
        ("The response was filtered due to the RAI policy", "safety_block"),
        ("output blocked", "safety_block"),
        ("constraint violated while sampling", "job_failed"),
        ("the model is not trained for this size", "job_failed"),
        ("worker draining, try again", "job_failed"),
    ],
)
def test_failure_class_matches_words_not_fragments(message: str, expected: str) -> None:
    """A FAILED job's error is a safety block only when it says so in words: "rai" in
    "constraint", "trained" or "draining" is not one."""
    assert failure_class(JobFailedError(message)) == expected


def _table(heading: str) -> list[list[str]]:
    """The rows (cells stripped of backticks) of the first table under ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([c.strip().replace("`", "") for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_readme_lifecycle_table_is_the_code() -> None:
    """README's lifecycle table lists exactly the events, from-states and to-states."""
    documented = {}
    for event, sources, target, _ in _table("### The item lifecycle"):
        froms = frozenset(State(s.strip()) for s in sources.split(",") if s.strip() != "(new)")
        documented[event] = (froms, State(target))
    assert documented == {n: (e.sources, e.target) for n, e in EVENTS.items()}


def test_readme_resume_table_covers_every_state() -> None:
    """README's resume table has a row for each state, naming events that start from it."""
    seen = set()
    for state, _, events in _table("### Resume, state by state"):
        seen.add(State(state))
        for name in re.findall(r"[a-z_]+", events):
            assert State(state) in EVENTS[name].sources, (state, name)
    assert seen == set(STATES)


def test_readme_error_policy_names_real_events() -> None:
    """Each row of README's error policy names the lifecycle events it leads to."""
    rows = _table("### Error policy")
    assert rows
    for _, _, events in rows:
        names = re.findall(r"[a-z_]+", events)
        assert names and all(name in EVENTS for name in names), events


async def test_identical_posts_go_side_by_side_and_a_lookup_goes_alone() -> None:
    """POSTs of one body overlap; a history look-up waits for them and holds new ones."""
    import anyio

    from batchgen.engine.twins import BodyLocks

    locks = BodyLocks()
    twin = item(State.PENDING)
    log: list[str] = []
    release = anyio.Event()

    async def post(name: str) -> None:
        async with locks.posting(twin):
            log.append(f"{name} in")
            await release.wait()
            log.append(f"{name} out")

    async def look() -> None:
        async with locks.looking(twin):
            log.append("look")

    async with anyio.create_task_group() as tg:
        tg.start_soon(post, "a")
        tg.start_soon(post, "b")
        await anyio.wait_all_tasks_blocked()
        assert log == ["a in", "b in"]  # side by side
        tg.start_soon(look)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(post, "c")
        await anyio.wait_all_tasks_blocked()
        assert log == ["a in", "b in"]  # the look-up waits; c waits behind it
        release.set()
    assert log.index("look") > log.index("b out") and log.index("c in") > log.index("look")
    assert locks._bodies == {}
