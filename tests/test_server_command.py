"""``batchgen serve`` as a process: URL on the first line, clean exit on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request


def test_serve_prints_url_and_stops_on_sigterm() -> None:
    """The first line is the base URL with the picked port; SIGTERM exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert not url.endswith(":0")
        with urllib.request.urlopen(f"{url}/__stats", timeout=10) as answer:
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
