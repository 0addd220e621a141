"""Hostile or odd inputs: devices, FIFOs, huge lines, JSON lines by content, open brackets."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_templates import manifest, only_error, read

from batchgen.cli import main
from batchgen.manifest.files import MAX_LINE_BYTES, manifest_format


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_as_items_file_is_refused(tmp_path: Path, device: str) -> None:
    """items_file: /dev/zero is refused on its line: no endless read, no MemoryError."""
    items, reader = read(manifest(tmp_path, f"items: [a]\nitems_file: {device}\n"))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "items_file")
    assert "it is a device" in problem.message and len(items) == 1


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_device_as_manifest_is_refused(device: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A device named as the manifest is a usage problem (exit 2), whatever it would give."""
    assert main(["validate", device]) == 2
    assert "it is a device" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["manifest", "items_file"])
def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, where: str) -> None:
    """A FIFO would block its reader until a writer comes: it is refused at once."""
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    path = fifo if where == "manifest" else manifest(tmp_path, "items_file: pipe.jsonl\n")
    done = threading.Event()
    found: list[str] = []

    def validate() -> None:
        _, reader = read(path)
        found.extend(p.message for p in reader.problems)
        done.set()

    threading.Thread(target=validate, daemon=True).start()
    if not done.wait(20):  # unblock the reader before failing, so the test ends
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert any("it is a FIFO" in message for message in found)


@pytest.mark.parametrize("name", ["m.jsonl", "m.yaml"])
def test_line_past_the_cap_is_an_error_on_its_line(tmp_path: Path, name: str) -> None:
    """A line longer than 1 MB is one error on that line and is never held whole."""
    huge = "x" * (MAX_LINE_BYTES + 10)
    if name.endswith(".jsonl"):
        text = f'{{"prompt": "a"}}\n{{"prompt": "{huge}"}}\n{{"prompt": "b"}}\n'
    else:
        text = f"items:\n  - a\n  - {huge}\n"
    items, reader = read(manifest(tmp_path, text, name))
    problem = only_error(reader)
    assert problem.line == (2 if name.endswith(".jsonl") else 3)
    assert "longer than 1 MB" in problem.message
    assert len(items) == (2 if name.endswith(".jsonl") else 0)


def test_json_lines_are_known_by_their_content(tmp_path: Path) -> None:
    """prompts.txt holding one object per line is read as JSONL, not as broken YAML."""
    rows = [{"prompt": "a fox"}, {"prompt": "a hare", "seed": 3}]
    path = manifest(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), "prompts.txt")
    items, reader = read(path)
    assert reader.valid and [i.params["prompt"] for i in items] == ["a fox", "a hare"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.yml", '{"prompt": "x"}\n', "yaml"),
        ("m.ndjson", "items: [a]\n", "jsonl"),
        ("m.txt", "# a comment\n\n{\"prompt\": \"x\"}\n", "jsonl"),
        ("m.txt", '{"items": ["a"], "model": "sd1.5-epicrealism"}\n', "yaml"),
        ("m.txt", "items: [a]\n", "yaml"),
        ("m", "[1, 2]\n", "yaml"),
    ],
)
def test_format_by_suffix_then_content(tmp_path: Path, name: str, text: str,
                                       expected: str) -> None:
    """A known suffix decides; otherwise a first line that is an item makes JSON lines."""
    assert manifest_format(manifest(tmp_path, text, name)) == expected


def test_broken_json_lines_say_which_suffix_to_use(tmp_path: Path) -> None:
    """JSON lines that do not parse, under another suffix, get a hint about .jsonl."""
    path = manifest(tmp_path, '{"prompt": "a",}\n{"prompt": "b"}\n', "prompts.txt")
    _, reader = read(path)
    assert "name the file .jsonl or .ndjson" in only_error(reader).message


def test_wildcard_files_are_listed_for_a_digest(tmp_path: Path) -> None:
    """The files a JSONL beside wildcards/ may read are listed, subfolders and all."""
    from test_templates import wildcards_folder

    from batchgen.manifest.files import wildcard_files

    assert wildcard_files(tmp_path / "wildcards") == []
    folder = wildcards_folder(tmp_path, {"b.txt": "x\n", "people/a.txt": "y\n",
                                         "notes.md": "z\n", ".hidden/c.txt": "w\n"})
    assert [p.relative_to(folder).as_posix() for p in wildcard_files(folder)] == [
        "b.txt", "people/a.txt"]
