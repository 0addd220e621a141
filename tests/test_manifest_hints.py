"""Where a person would look: a YAML bracket left open, a model slug batchgen does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_templates import manifest, only_error, read


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("items:\n  - a\n  - prompt: [unclosed\n  - b\n  - c\n", 3, "flow sequence"),
        ("items:\n  - {prompt: x\n  - b\n", 2, "flow mapping"),
        ('defaults: {negative_prompt: "open\nitems: [a]\n', 1, "quoted scalar"),
    ],
)
def test_yaml_left_open_is_reported_where_it_opened(tmp_path: Path, text: str, line: int,
                                                    words: str) -> None:
    """A bracket or quote never closed is reported on the line that opened it."""
    _, reader = read(manifest(tmp_path, text))
    problem = only_error(reader)
    assert problem.line == line
    assert words in problem.message and "never closed" in problem.message


def test_unknown_model_is_a_warning_once_with_a_hint(tmp_path: Path) -> None:
    """A slug batchgen has no table for is one warning per slug, with a did you mean."""
    rows = [{"prompt": "a", "model": "sd15-epicrealism"}, {"prompt": "b"},
            {"prompt": "c", "model": "sd15-epicrealism"}, {"prompt": "d", "model": "flux-dev"}]
    path = manifest(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), "m.jsonl")
    items, reader = read(path)
    assert reader.valid and len(items) == 4
    found = [(p.line, p.field, p.message) for p in reader.problems]
    assert len(found) == 2
    assert found[0][:2] == (1, "model")
    assert 'no parameter table for model \'sd15-epicrealism\'' in found[0][2]
    assert 'did you mean "sd1.5-epicrealism"' in found[0][2]
    assert found[1][0] == 4 and "did you mean" not in found[1][2]


def test_unknown_manifest_model_is_warned_on_its_line(tmp_path: Path) -> None:
    """The warning for the manifest's own model points at its model line."""
    _, reader = read(manifest(tmp_path, "items: [a, b]\nmodel: sd1.5-epicrealsm\n"))
    [problem] = reader.problems
    assert (problem.line, problem.field, problem.severity) == (2, "model", "warning")
    assert 'did you mean "sd1.5-epicrealism"' in problem.message
