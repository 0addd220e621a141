"""The compact id set used for duplicate checks."""

from __future__ import annotations

from batchgen.manifest.idset import IdSet


def test_new_id_is_accepted() -> None:
    """Adding an id not seen before returns None and counts it."""
    ids = IdSet()
    assert ids.add("a", 3) is None
    assert len(ids) == 1
    assert "a" in ids


def test_repeated_id_returns_first_line() -> None:
    """Adding an id again returns the line it was first added on and does not count it."""
    ids = IdSet()
    ids.add("a", 3)
    assert ids.add("a", 9) == 3
    assert len(ids) == 1


def test_repeat_without_line_returns_zero() -> None:
    """A repeat of an id added without a line answers 0, not None."""
    ids = IdSet()
    ids.add("a")
    assert ids.add("a", 5) == 0


def test_absent_id_is_not_contained() -> None:
    """An id never added is not in the set."""
    ids = IdSet()
    ids.add("a")
    assert "b" not in ids


def test_growing_keeps_every_id_and_line() -> None:
    """Far past its initial capacity the set still knows every id and its first line."""
    ids = IdSet(capacity=4)
    count = 5000
    for number in range(count):
        assert ids.add(f"id-{number}", number + 1) is None
    assert len(ids) == count
    assert all(ids.add(f"id-{number}", 0) == number + 1 for number in range(count))
    assert f"id-{count}" not in ids
