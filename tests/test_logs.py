"""--log-format json: one JSON object per line on stderr, each with a stable ``event``."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from child import against, batchgen, child_env
from conftest import StartServer
from test_run import write_manifest

from batchgen import cli
from batchgen.report.logs import JsonFormatter, event_name, fields, setup_logging
from batchgen.server import FAIL_MARKER


def record(msg: str, *args: Any, name: str = "batchgen.engine.submit",
           extra: dict[str, Any] | None = None) -> logging.LogRecord:
    logger = logging.getLogger(name)
    made = logger.makeRecord(name, logging.WARNING, __file__, 1, msg, args, None,
                             extra=extra)
    return made


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object with an ``event`` (or fail)."""
    objects = []
    for line in text.splitlines():
        if not line.strip():
            continue
        value = json.loads(line)
        assert isinstance(value, dict), line
        assert isinstance(value.get("event"), str) and value["event"], line
        objects.append(value)
    return objects


def test_fallback_event_is_stable_across_arguments() -> None:
    """Without ``event``, the name comes from the logger and template, not the values."""
    one = record("item %s not submitted (%s): %s", "fox-1", "rejected", "bad steps")
    two = record("item %s not submitted (%s): %s", "owl-9", "transport", "reset")
    assert event_name(one) == event_name(two) == "engine.submit.item_not_submitted"
    assert event_name(record("%s", "a manifest problem", name="batchgen")) == "log"


def test_json_line_carries_event_subjects_and_time() -> None:
    """An event's item_id and request_id become keys; time, level and message are there."""
    made = record("item %s failed", "fox-1",
                  extra=fields("item_failed", item_id="fox-1", request_id="r-1"))
    line = json.loads(JsonFormatter().format(made))
    assert line["event"] == "item_failed"
    assert (line["item_id"], line["request_id"]) == ("fox-1", "r-1")
    assert line["level"] == "warning" and line["message"] == "item fox-1 failed"
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_json_line_is_valid_json_whatever_the_values() -> None:
    """NaN, objects and multi-line errors still make one parseable line."""
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        made = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "boom", (), __import__("sys").exc_info(),
            extra={"ratio": float("nan"), "path": Path("/tmp/a"), "states": {"a": 1}})
    text = JsonFormatter().format(made)
    assert "\n" not in text
    line = json.loads(text)
    assert line["ratio"] is None and line["path"] == "/tmp/a" and line["states"] == {"a": 1}
    assert "second line" in line["error"]


@pytest.mark.parametrize("key", ["name", "msg", "args", "levelname"])
def test_fields_refuse_record_attributes(key: str) -> None:
    """A field that would overwrite a LogRecord attribute is refused at the call site."""
    with pytest.raises(ValueError, match=key):
        fields("item_failed", **{key: "x"})


def test_setup_logging_replaces_its_own_handler() -> None:
    """Setting up twice leaves one console handler, writing in the last format asked."""
    first, second = io.StringIO(), io.StringIO()
    setup_logging(0, "text", first)
    handler = setup_logging(0, "json", second)
    try:
        logging.getLogger("batchgen.test").warning("hello %s", "you")
        assert first.getvalue() == ""
        assert json_lines(second.getvalue())[0]["message"] == "hello you"
    finally:
        logging.getLogger().removeHandler(handler)


async def test_run_logs_only_json_objects(local_server: StartServer, tmp_path: Path) -> None:
    """A real run with a failure, progress and -v: every stderr line is a JSON event, the
    failure with its item and request id."""
    server = await local_server(latency_s=0.3)
    manifest = write_manifest(tmp_path / "m.yaml", f"items: [a, b, c, 'bad {FAIL_MARKER}']\n")
    env = child_env({"SEGMIND_API_KEY": server.api_key})
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *against(server),
                          "--log-every", "0.05", "--log-format", "json", "-v", env=env)
    assert done.returncode == 1, done.stderr  # one item failed
    events = json_lines(done.stderr)
    progress = [e for e in events if e["event"] == "run.progress"]
    assert progress and all(p["total"] == 4 and "eta_s" in p for p in progress)
    failed = [e for e in events if e["event"] == "item.failed"]
    assert len(failed) == 1 and failed[0]["item_id"].startswith("bad")
    assert failed[0]["level"] == "warning" and "request_id" in failed[0]


async def test_usage_and_manifest_errors_are_json_too(tmp_path: Path) -> None:
    """A bad flag and a bad manifest, with --log-format json: JSON lines, exit 2."""
    manifest = write_manifest(tmp_path / "m.yaml", "items:\n  - {prompt: a, samples: 9}\n")
    bad_flag = await batchgen("run", str(manifest), "--local", "--concurency", "3",
                              "--log-format", "json")
    assert bad_flag.returncode == 2
    assert [e["event"] for e in json_lines(bad_flag.stderr)] == ["cli.usage_error"]
    bad_manifest = await batchgen("run", str(manifest), "--local", "-o", str(tmp_path / "o"),
                                  "--log-format=json")
    assert bad_manifest.returncode == 2
    events = json_lines(bad_manifest.stderr)
    assert events[0]["event"] == "manifest.problem" and events[0]["line"] == 2
    assert events[0]["field"] == "samples"
    assert events[-1]["event"] == "manifest.invalid"


def test_text_stays_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --log-format, errors are plain sentences, not JSON."""
    manifest = write_manifest(tmp_path / "m.yaml", "items:\n  - {prompt: a, samples: 9}\n")
    assert cli.main(["run", str(manifest), "--local", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:2:" in err and not err.lstrip().startswith("{")
