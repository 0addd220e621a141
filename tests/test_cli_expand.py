"""`batchgen expand`, and `-` (standard input) and --max-expansions for validate and expand."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_templates import manifest, wildcards_folder

from batchgen.cli import main
from batchgen.manifest.reader import ManifestReader

TEMPLATE = ("order: breadth-first\nmatrix: {seed: [1, 2]}\nitems:\n"
            "  - {id: hat, prompt: '__colors__ hat'}\n  - 'a {red|blue} scarf'\n"
            "  - plain coat\n")


def expanded(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_expand_prints_every_item_with_its_id(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """One JSON line per item, in the run's order: id, model, then every parameter."""
    wildcards_folder(tmp_path, {"colors.txt": "red\nblue\n"})
    path = manifest(tmp_path, TEMPLATE)
    assert main(["expand", str(path)]) == 0
    lines = expanded(capsys)
    reader = ManifestReader(path)
    assert [line["id"] for line in lines] == [i.id for i in reader.items()]
    assert len(lines) == reader.requests == 10
    assert lines[0]["model"] == "sd1.5-epicrealism" and lines[0]["num_inference_steps"] == 20
    assert [line["prompt"] for line in lines[:3]] == ["blue hat", "a red scarf", "plain coat"]


def test_expand_output_is_a_manifest_of_the_same_items(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run as a manifest, the output gives the same ids and parameters, braces and all."""
    wildcards_folder(tmp_path, {"colors.txt": "red\n\\{blue\\}\n"})
    path = manifest(tmp_path, TEMPLATE)
    assert main(["expand", str(path)]) == 0
    lines = expanded(capsys)
    braced = [line for line in lines if line["prompt"] == "{blue} hat"]
    assert len(braced) == 2 and all(line["expand"] == "none" for line in braced)
    again = tmp_path / "again.jsonl"
    again.write_text("".join(json.dumps(line) + "\n" for line in lines))
    original = {i.id: i.params for i in ManifestReader(path).items()}
    assert {i.id: i.params for i in ManifestReader(again).items()} == original


def test_expand_of_a_bad_manifest_prints_no_item(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid manifest exits 2 with its problems on stderr and nothing on stdout."""
    path = manifest(tmp_path, "items:\n  - ok\n  - '{broken'\n")
    assert main(["expand", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:3: field prompt: error: template syntax error" in captured.err


def test_expand_into_a_closed_pipe_exits_0(tmp_path: Path) -> None:
    """`batchgen expand m.yaml | head -1` is not an error."""
    rows = "".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(20000))
    path = manifest(tmp_path, rows, "m.jsonl")
    with subprocess.Popen([sys.executable, "-m", "batchgen", "expand", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as expand:
        assert expand.stdout is not None and expand.stderr is not None
        assert expand.stdout.readline().startswith(b'{"id": "p0-')
        expand.stdout.close()
        assert expand.wait(60) == 0
        assert expand.stderr.read() == b""


def feed_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_validate_reads_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`-` reads the manifest from stdin; its wildcards are those of the current folder."""
    wildcards_folder(tmp_path, {"colors.txt": "red\nblue\n"})
    monkeypatch.chdir(tmp_path)
    feed_stdin(monkeypatch, TEMPLATE)
    assert main(["validate", "-"]) == 0
    assert "<stdin>: valid: 3 entries expand to 10 items" in capsys.readouterr().out


def test_jsonl_on_standard_input_is_known_by_its_content(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON lines on stdin have no suffix: they are recognised, and problems say <stdin>."""
    feed_stdin(monkeypatch, '{"prompt": "a"}\n{"prompt": "b", "samples": 9}\n')
    assert main(["expand", "-"]) == 2
    assert "<stdin>:2: item " in capsys.readouterr().err


def test_max_expansions_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-expansions lowers the limit; a value below 1 is a usage error."""
    path = manifest(tmp_path, "items: ['{a|b|c}']\n")
    assert main(["validate", str(path), "--max-expansions", "2"]) == 2
    assert "more than 2 items (--max-expansions)" in capsys.readouterr().err
    assert main(["validate", str(path), "--max-expansions", "3"]) == 0
    assert main(["expand", str(path), "--max-expansions", "0"]) == 2
