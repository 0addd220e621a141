"""Every way a template can be wrong is an error with file, line and, where it helps, a hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_templates import manifest, only_error, read, wildcards_folder

from batchgen.manifest.files import MAX_LINE_BYTES


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("a {red|blue dress", "syntax error at column 3"),
        ("$10 {a|b}", "a literal $ is written \\$"),
        ("{a|b} 100% cotton", "a literal % is written \\%"),
        ("__colours__ hat", 'unknown wildcard __colours__ (did you mean "colors"?)'),
        ("__people/gils__", 'did you mean "people/girls"?'),
        ("{~a|b}", "use expand: {random: N, seed: S}"),
        ("{2$$a|a}", "the template expands to nothing"),
        ("__loop__", "refers back to itself (__loop__ -> __loop__)"),
    ],
)
def test_template_error_names_its_line(tmp_path: Path, prompt: str, words: str) -> None:
    """A broken template is one error on the prompt's own line, field prompt."""
    wildcards_folder(tmp_path, {"colors.txt": "red\n", "people/girls.txt": "ann\n",
                                "loop.txt": "again __loop__\n"})
    path = manifest(tmp_path, f"items:\n  - plain one\n  - id: x\n    prompt: '{prompt}'\n")
    items, reader = read(path)
    problem = only_error(reader)
    if "refers back" in words:  # the fault is in the wildcard file, on its line
        assert (problem.file, problem.line) == (str(tmp_path / "wildcards" / "loop.txt"), 1)
    else:
        assert (problem.file, problem.line, problem.field) == (str(path), 4, "prompt")
    assert words in problem.message
    assert [i.params["prompt"] for i in items] == ["plain one"]


def test_no_wildcards_folder_says_where_it_looked(tmp_path: Path) -> None:
    """An unknown wildcard with no folder at all says where one would be."""
    _, reader = read(manifest(tmp_path, "items: ['__colors__']\n"))
    assert "no wildcards folder (wildcards/ beside the manifest" in only_error(reader).message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"# only a comment\n\n", "is empty"),
        (b"red\ncaf\xe9\n", "not UTF-8 text (line 2)"),
        (b"x" * (MAX_LINE_BYTES + 1), "longer than 1 MB"),
    ],
)
def test_unusable_wildcard_file_is_reported_once(tmp_path: Path, content: bytes,
                                                 words: str) -> None:
    """An empty or unreadable wildcard file is one error at the first item drawing on it."""
    folder = wildcards_folder(tmp_path, {})
    folder.mkdir()
    (folder / "colors.txt").write_bytes(content)
    path = manifest(tmp_path, "items:\n  - '__colors__ hat'\n  - '__colors__ scarf'\n  - ok\n")
    items, reader = read(path)
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "prompt")
    assert words in problem.message and "__colors__" in problem.message
    assert [i.params["prompt"] for i in items] == ["ok"]


def test_wildcard_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO in the wildcards folder is refused; nothing waits for a writer."""
    folder = wildcards_folder(tmp_path, {})
    folder.mkdir()
    os.mkfifo(folder / "colors.txt")
    _, reader = read(manifest(tmp_path, "items: ['__colors__ hat']\n"))
    assert "it is a FIFO" in only_error(reader).message


def test_syntax_error_inside_a_wildcard_file_names_that_line(tmp_path: Path) -> None:
    """A wildcard line that is a broken template is an error on its own file and line."""
    wildcards_folder(tmp_path, {"styles.txt": "ink\n{oil|water\n"})
    _, reader = read(manifest(tmp_path, "items: ['__styles__ of a fox']\n"))
    problem = only_error(reader)
    assert (problem.file, problem.line) == (str(tmp_path / "wildcards" / "styles.txt"), 2)
    assert "in wildcard __styles__: template syntax error" in problem.message


@pytest.mark.parametrize(
    ("expand", "words"),
    [
        ("randm", 'did you mean "random"?'),
        ("{random: 0}", "at least 1"),
        ("{random: 3, sead: 1}", "unknown key 'sead' (did you mean \"seed\"?)"),
        ("{random: 3, seed: x}", "seed must be a whole number"),
        ("{random: 2000000}", "more than --max-expansions (1,000,000)"),
        ("7", "must be all, none or {random: N, seed: S}"),
    ],
)
def test_bad_expand_mode(tmp_path: Path, expand: str, words: str) -> None:
    """A bad expand, on the manifest or an item, is an error on its line."""
    for text, line in ((f"expand: {expand}\nitems: ['{{a|b}}']\n", 1),
                       (f"items:\n  - prompt: '{{a|b}}'\n    expand: {expand}\n", 3)):
        _, reader = read(manifest(tmp_path, text))
        problem = only_error(reader)
        assert (problem.line, problem.field) == (line, "expand")
        assert words in problem.message


def test_past_max_expansions_is_an_error(tmp_path: Path) -> None:
    """An entry expanding to more than max_expansions items is an error on its line."""
    text = "items:\n  - ok\n  - '{a|b|c} {d|e|f}'\n"
    reader = read(manifest(tmp_path, text))[1]
    assert reader.valid and reader.requests == 10
    from batchgen.manifest.reader import ManifestReader

    limited = ManifestReader(tmp_path / "m.yaml", max_expansions=8)
    assert not limited.check()
    problem = only_error(limited)
    assert problem.line == 3 and "more than 8 items (--max-expansions)" in problem.message


def test_template_from_defaults_is_reported_once(tmp_path: Path) -> None:
    """A broken template in defaults is one error on the defaults line, not one per item."""
    text = "defaults:\n  negative_prompt: '{blurry'\nitems: [a, b, c]\n"
    items, reader = read(manifest(tmp_path, text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "negative_prompt")
    assert "from defaults" in problem.message and items == []
