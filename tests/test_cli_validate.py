"""`batchgen validate`: exit codes, the summary, --json, and problems printed as file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.cli import MAX_PROBLEMS_SHOWN, main

JSON_KEYS = {"manifest", "valid", "entries", "items", "requests", "images", "models",
             "errors", "warnings", "problems"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_manifest_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid manifest exits 0 and prints the counts per model and in total."""
    text = "matrix:\n  seed: [1, 2]\nitems:\n  - {prompt: a, samples: 2}\n"
    path = write(tmp_path, "m.yaml", text)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sd1.5-epicrealism: 2 requests, 4 images" in out
    assert (f"{path}: valid: 1 entries expand to 2 items (2 requests, 4 images); 0 errors, "
            "0 warnings") in out


def test_invalid_manifest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest with an error exits 2 and says INVALID."""
    path = write(tmp_path, "m.jsonl", '{"prompt": "a", "samples": true}\n')
    assert main(["validate", str(path)]) == 2
    assert "INVALID" in capsys.readouterr().out


def test_problems_printed_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each problem goes to stderr as file:line, then item, field and message."""
    path = write(tmp_path, "m.yaml", "items:\n  - id: fox\n    prompt: x\n    samples: 9\n")
    main(["validate", str(path)])
    err = capsys.readouterr().err
    assert f"{path}:4: item fox: field samples: error: must be at most 4, got 9" in err


def test_missing_manifest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest that does not exist exits 2 with its path in the problem."""
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err


def test_warnings_alone_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings (an undocumented scheduler) are printed but the manifest is valid."""
    path = write(tmp_path, "m.jsonl", '{"prompt": "a", "scheduler": "dpmpp_sde_ancestral"}\n')
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}:1: " in captured.err and "warning" in captured.err
    assert "1 warnings" in captured.out


def test_allow_unknown_params_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--allow-unknown-params turns an unknown parameter from an error into a warning."""
    path = write(tmp_path, "m.jsonl", '{"prompt": "a", "num_steps": 30}\n')
    assert main(["validate", str(path)]) == 2
    assert 'did you mean "num_inference_steps"' in capsys.readouterr().err
    assert main(["validate", "--allow-unknown-params", str(path)]) == 0


def test_json_output_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with the documented keys and the counts."""
    text = '{"prompt": "a", "samples": 3}\n{"prompt": "b", "model": "x"}\n'
    path = write(tmp_path, "m.jsonl", text)
    assert main(["validate", "--json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == JSON_KEYS
    assert (report["manifest"], report["valid"], report["entries"]) == (str(path), True, 2)
    assert (report["requests"], report["images"], report["errors"]) == (2, 4, 0)
    assert report["models"] == {"sd1.5-epicrealism": {"requests": 1, "images": 3},
                                "x": {"requests": 1, "images": 1}}


def test_json_output_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json lists each problem with file, line, item, field, severity and message."""
    path = write(tmp_path, "m.jsonl", '{"prompt": "a"}\n{"prompt": "b", "id": "../x"}\n')
    assert main(["validate", "--json", str(path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["errors"] == 1
    (problem,) = report["problems"]
    assert problem["file"] == str(path) and problem["line"] == 2
    assert (problem["field"], problem["severity"]) == ("id", "error")
    assert set(problem) == {"file", "line", "item", "field", "severity", "message"}


def test_printout_is_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past the cap, problems are summed up in one line, and all are counted."""
    total = MAX_PROBLEMS_SHOWN + 7
    path = write(tmp_path, "m.jsonl", '{"prompt": ""}\n' * total)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("must not be empty") == MAX_PROBLEMS_SHOWN
    assert "... and 7 more problems not shown" in captured.err
    assert f"{total} errors" in captured.out
