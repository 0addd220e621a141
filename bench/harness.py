"""Processes under measurement: the server, clients timed with ``os.wait4``, manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = "SG_local_demo_key"
MODEL = "sd1.5-epicrealism"
# A limit no scenario reaches, for batchgen runs where the server has none: without
# --rpm batchgen starts discovery at 50 RPM, which is not what "no limit" measures.
NO_LIMIT_RPM = "1000000"


@dataclass
class Server:
    """A ``batchgen serve --port 0`` subprocess and its base URL."""

    url: str
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/__stats", timeout=30) as answer:
            data: dict[str, Any] = json.load(answer)
        return data


@contextmanager
def server(*flags: str, workers: int = 64, latency: float = 0.0) -> Iterator[Server]:
    """A fresh server with ``flags``; every client gets its own, configured alike."""
    args = [str(BIN / "batchgen"), "serve", "--port", "0", "--workers", str(workers),
            "--latency", str(latency), *flags]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"server did not start: {' '.join(args)}")
        yield Server(url, proc)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Measured:
    """One client process: exit code, wall, CPU seconds, peak RSS."""

    code: int
    wall_s: float
    cpu_s: float
    rss_mb: float
    first_submit_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Client:
    """A client process whose resource usage is collected with ``os.wait4``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, cwd=ROOT,
                                         env={**os.environ, **(env or {})})
        self._done = threading.Event()
        self.result: Measured | None = None
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.perf_counter() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.result = Measured(self.proc.returncode, wall, usage.ru_utime + usage.ru_stime,
                               usage.ru_maxrss / 1024)
        self._done.set()

    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, limit_s: float) -> Measured:
        if not self._done.wait(limit_s):
            self.proc.kill()
            self._done.wait(30)
            raise TimeoutError(f"client ran past {limit_s:.0f} s: {self.log}")
        assert self.result is not None
        return self.result

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def batchgen_run(srv: Server, manifest: Path, out: Path, *flags: str) -> Client:
    """``batchgen run`` as the issue states it, key in the environment."""
    out.mkdir(parents=True, exist_ok=True)
    args = [str(BIN / "batchgen"), "run", str(manifest), "-o", str(out), "--base-url",
            srv.url, "--no-progress", *flags]
    return Client(args, out.parent / f"{out.name}.log", {"SEGMIND_API_KEY": API_KEY})


def anchor_run(name: str, srv: Server, manifest: Path, out: Path, concurrency: int) -> Client:
    """One anchor CLI (``bench.anchors.<name>``) as its own process."""
    out.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", f"bench.anchors.{name}", str(manifest), "-o", str(out),
            "--base-url", srv.url, "--concurrency", str(concurrency)]
    return Client(args, out.parent / f"{out.name}.log", {"SEGMIND_API_KEY": API_KEY})


def first_submit(srv: Server, client: Client, limit_s: float = 120.0,
                 every_s: float = 0.05) -> float | None:
    """Seconds from the client's start to the server's first submit accepted after it."""
    deadline = time.perf_counter() + limit_s
    before = srv.stats()["submits_accepted"]
    while client.running() and time.perf_counter() < deadline:
        if srv.stats()["submits_accepted"] > before:
            return time.perf_counter() - client.started
        time.sleep(every_s)
    return None


def simple_manifest(path: Path, count: int, tag: str) -> Path:
    """``count`` items with explicit ids and distinct prompts, one JSON object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            out.write(json.dumps({"id": f"{tag}-{n:07d}", "prompt": f"{tag} prompt {n}",
                                  "seed": n}) + "\n")
    return path


def results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(out: Path) -> dict[str, Any]:
    path = out / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def anchor_report(out: Path) -> dict[str, Any]:
    path = out / "report.json"
    return json.loads(path.read_text()) if path.exists() else {}


def duplicate_submits(stats: dict[str, Any]) -> int:
    """Accepted submits beyond the first of each body: paid twice (or more)."""
    return sum(n - 1 for n in stats["accepted_by_body"].values() if n > 1)
