"""Sweeps (matrix, zip), their size limit, and breadth-first order on YAML and JSONL."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from test_templates import manifest, only_error, read

from batchgen.manifest.order import breadth_first
from batchgen.manifest.reader import ManifestReader


def test_zip_walks_its_lists_together(tmp_path: Path) -> None:
    """zip pairs the n-th values of its lists; with a matrix, each pair meets each value."""
    text = ("matrix: {seed: [1, 2]}\nzip:\n  scheduler: [DDIM, Euler]\n"
            "  guidance_scale: [5, 9]\nitems: [a]\n")
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid, reader.problems
    assert [(i.params["seed"], i.params["scheduler"], i.params["guidance_scale"])
            for i in items] == [(1, "DDIM", 5), (1, "Euler", 9), (2, "DDIM", 5),
                                (2, "Euler", 9)]


def test_zip_ids_of_explicit_item(tmp_path: Path) -> None:
    """An explicit id swept by zip names its values like a matrix does, keys sorted."""
    text = "zip:\n  seed: [1, 2]\n  samples: [1, 2]\nitems: [{id: fox, prompt: x}]\n"
    items, _ = read(manifest(tmp_path, text))
    assert [i.id for i in items] == ["fox.samples-1.seed-1", "fox.samples-2.seed-2"]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("zip:\n  seed: [1, 2]\n  samples: [1]\nitems: [a]\n", 3, "zip.samples",
         "has 1 values but zip.seed has 2"),
        ("matrix: {seed: [1]}\nzip: {seed: [2]}\nitems: [a]\n", 2, "zip.seed",
         "swept by both matrix and zip"),
        ("zip:\n  id: [a]\nitems: [a]\n", 2, "zip.id", "cannot be swept"),
        ("zip: [1]\nitems: [a]\n", 1, "zip", "must be a mapping of lists"),
        ("order: depth-first\nitems: [a]\n", 1, "order", "must be manifest or breadth-first"),
        ("wildcards: nowhere\nitems: [a]\n", 1, "wildcards", "no folder"),
    ],
)
def test_header_errors(tmp_path: Path, text: str, line: int, field: str, words: str) -> None:
    """A broken zip, order or wildcards is one error naming its line; nothing is yielded."""
    items, reader = read(manifest(tmp_path, text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (line, field)
    assert words in problem.message and items == []


def test_sweep_past_max_expansions_is_refused_at_once(tmp_path: Path) -> None:
    """A sweep past --max-expansions is refused from its size, no combination made."""
    seeds = ", ".join(str(n) for n in range(1001))
    steps = ", ".join(str(n) for n in range(1000))
    text = f"items: [a]\nmatrix:\n  seed: [{seeds}]\n  num_inference_steps: [{steps}]\n"
    reader = ManifestReader(manifest(tmp_path, text))
    tracemalloc.start()
    try:
        assert not reader.check()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "matrix")
    assert ("the sweep makes 1,001,000 combinations of each item, more than "
            "--max-expansions (1,000,000)") in problem.message
    assert peak < 4 << 20


def test_sweep_limit_follows_max_expansions(tmp_path: Path) -> None:
    """The same sweep passes under a larger --max-expansions."""
    text = "matrix:\n  seed: [1, 2, 3]\n  samples: [1, 2]\nitems: [a]\n"
    path = manifest(tmp_path, text)
    small = ManifestReader(path, max_expansions=5)
    assert not small.check()
    assert "makes 6 combinations of each item, more than --max-expansions (5)" in \
        only_error(small).message
    assert ManifestReader(path, max_expansions=6).check()


def test_big_sweep_is_lazy_and_announced(tmp_path: Path) -> None:
    """A 20,000-combination matrix is counted up front and never held in memory."""
    seeds = ", ".join(str(n) for n in range(250))
    steps = ", ".join(str(n) for n in range(20, 100))
    text = f"matrix:\n  seed: [{seeds}]\n  num_inference_steps: [{steps}]\nitems: [a]\n"
    heard: list[str] = []
    reader = ManifestReader(manifest(tmp_path, text), announce=heard.append)
    tracemalloc.start()
    try:
        assert sum(1 for _ in reader.items()) == 20_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert heard == [f"{reader.name}: the sweep makes 20,000 combinations of each item"]
    assert peak < 4 << 20


# -- breadth-first ---------------------------------------------------------------------

BREADTH = ("order: breadth-first\nitems:\n  - {id: a, prompt: '{1|2|3} a'}\n"
           "  - plain b\n  - {id: c, prompt: '{1|2} c'}\n")


def test_breadth_first_on_yaml(tmp_path: Path) -> None:
    """The first variant of every entry comes before the second of any."""
    items, reader = read(manifest(tmp_path, BREADTH))
    assert [i.params["prompt"] for i in items] == ["1 a", "plain b", "1 c", "2 a", "2 c",
                                                   "3 a"]
    assert reader.valid and reader.requests == 6


def test_breadth_first_keeps_the_ids_of_manifest_order(tmp_path: Path) -> None:
    """Order changes when items come, never what they are called."""
    path = manifest(tmp_path, BREADTH)
    ordered = manifest(tmp_path, BREADTH.replace("breadth-first", "manifest"), "o.yaml")
    assert sorted(i.id for i in read(path)[0]) == sorted(i.id for i in read(ordered)[0])


def test_breadth_first_on_a_streamed_jsonl(tmp_path: Path) -> None:
    """An items_file is read once per pass; each line gives its next variant per pass."""
    rows = [{"prompt": "{x|y|z} one"}, {"prompt": "two"}, {"prompt": "{x|y} three"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = "order: breadth-first\nmatrix: {seed: [1, 2]}\nitems_file: rows.jsonl\n"
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid, reader.problems
    # Within an entry the sweep is outside, the template inside: every text gets its
    # first seed before any gets its second.
    assert [(i.params["prompt"], i.params["seed"]) for i in items] == [
        ("x one", 1), ("two", 1), ("x three", 1),
        ("y one", 1), ("two", 2), ("y three", 1),
        ("z one", 1), ("x three", 2),
        ("x one", 2), ("y three", 2),
        ("y one", 2),
        ("z one", 2)]


def test_breadth_first_yields_nothing_from_an_invalid_manifest(tmp_path: Path) -> None:
    """Breadth-first order starts with a full check: a bad manifest gives no item."""
    items, reader = read(manifest(tmp_path, BREADTH + "  - {prompt: x, samples: 9}\n"))
    assert items == [] and reader.errors == 1


@pytest.mark.parametrize("live_limit", [0, 1, 2, 100])
def test_round_robin_with_few_or_many_open_entries(live_limit: int) -> None:
    """Entries kept open or read again give the same order; passes read only as needed."""
    sizes = [3, 0, 1, 4, 2]
    reads = 0

    def read_all() -> list:  # type: ignore[type-arg]
        nonlocal reads
        reads += 1
        return [lambda i=i, n=n: iter([(i, k) for k in range(n)]) for i, n in enumerate(sizes)]

    got = list(breadth_first(read_all, live_limit=live_limit))
    assert got == [(0, 0), (2, 0), (3, 0), (4, 0), (0, 1), (3, 1), (4, 1), (0, 2), (3, 2),
                   (3, 3)]
    assert reads == (1 if live_limit >= 4 else 4)


def test_bad_zip_value_is_reported_on_its_line_once(tmp_path: Path) -> None:
    """A bad value in a zip list is one error on that list's line; other pairs are kept."""
    text = "zip:\n  seed: [1, 2]\n  samples: [1, 9]\nitems: [a, b]\n"
    items, reader = read(manifest(tmp_path, text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (3, "samples")
    assert "(from zip)" in problem.message
    assert [(i.params["prompt"], i.params["seed"]) for i in items] == [("a", 1), ("b", 1)]
