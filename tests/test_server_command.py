"""``batchgen serve`` as a process: URL on the first line, clean exit on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchgen.server import DEMO_API_KEY


@contextmanager
def serve(*flags: str) -> Iterator[str]:
    """A ``batchgen serve --port 0`` process; yields its URL, then checks SIGTERM exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "serve", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0


def _call(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        "x-api-key": DEMO_API_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def test_serve_prints_url_and_stops_on_sigterm() -> None:
    """The first line is the base URL with the picked port; SIGTERM exits 0."""
    with serve() as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert not url.endswith(":0")
        with urllib.request.urlopen(f"{url}/__stats", timeout=10) as answer:
            assert answer.status == 200


def test_serve_state_dir_survives_a_restart(tmp_path: Path) -> None:
    """A job accepted before SIGTERM answers after a restart on the same --state-dir."""
    with serve("--state-dir", str(tmp_path), "--latency", "0") as url:
        rid = _call(f"{url}/v2/sd1.5-epicrealism", {"prompt": "kept"})["request_id"]
    with serve("--state-dir", str(tmp_path)) as url:
        assert _call(f"{url}/v2/requests/{rid}/status")["status"] == "COMPLETED"
