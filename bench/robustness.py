"""Scenarios about scale and damage: a 1M-line manifest, faults, a SIGKILL loop."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness as h
from bench.scenarios import ANCHORS, Row, Sizes, delivered, parallel, row, run_client

FAULT_FLAGS = ("--error-500-rate", "0.03", "--drop-after-rate", "0.03",
               "--truncate-rate", "0.02", "--rng-seed", "7")


def faults(sz: Sizes, work: Path) -> list[Row]:
    """Per client: items lost, jobs paid but not delivered, duplicate paid submits."""
    manifest = h.simple_manifest(work / "faults.jsonl", sz.faults, "fault")

    def one(name: str) -> tuple[dict[str, Any], int]:
        out = work / f"faults-{name}"
        with h.server(*FAULT_FLAGS, latency=2.0) as srv:
            flags = ("--rpm", h.NO_LIMIT_RPM) if name == "batchgen" else ()
            run_client(name, srv, manifest, out, *flags).wait(1800)
            return srv.stats(), delivered(name, out)

    got = parallel({n: (lambda n=n: one(n)) for n in ("batchgen", *ANCHORS)})
    rows = []
    for name, (stats, done) in got.items():
        mine = name == "batchgen"
        lost = sz.faults - done
        unpaid = stats["jobs_completed"] - done
        dup = h.duplicate_submits(stats)
        for figure, value in (("items lost", lost), ("jobs paid, not delivered", unpaid),
                              ("duplicate paid submits", dup)):
            rows.append(row("faults", name, figure, value, "0" if mine else "",
                            value == 0 if mine else None))
    return rows


def scale(sz: Sizes, work: Path) -> list[Row]:
    """Peak RSS and time to first submit on a big JSONL, then on resuming its store."""
    manifest = work / f"scale-{sz.scale_lines}.jsonl"
    if not manifest.exists():
        subprocess.run([sys.executable, str(h.ROOT / "bench" / "gen_manifest.py"),
                        str(sz.scale_lines), str(manifest)], check=True,
                       stderr=subprocess.DEVNULL)
    out = work / "scale-batchgen"
    figures: list[tuple[float | None, h.Measured]] = []
    with h.server(latency=1.0) as srv:
        for _ in range(2):  # a fresh run, then a resume of the store it left
            client = run_client("batchgen", srv, manifest, out, "--rpm", h.NO_LIMIT_RPM,
                                "--drain-timeout", "5")
            first = h.first_submit(srv, client, limit_s=300)
            time.sleep(5)  # run a little past the first submit, then stop it
            client.proc.send_signal(signal.SIGTERM)
            figures.append((first, client.wait(120)))
    (first, fresh), (again, resumed) = figures
    rss = max(fresh.rss_mb, resumed.rss_mb)
    lines = f"{sz.scale_lines:,} lines"
    return [
        row("scale", "batchgen", f"peak RSS MB ({lines})", rss, "<= 150", rss <= 150),
        row("scale", "batchgen", "time to first submit s", first if first is not None else -1,
            "<= 5", first is not None and first <= 5),
        row("scale", "batchgen", "resume: time to first submit s",
            again if again is not None else -1, "<= 10", again is not None and again <= 10),
    ]


def completed_prompts(out: Path) -> set[str]:
    """Prompts of the items the store holds as completed (read while no run is live)."""
    db = out / ".batchgen" / "state.db"
    if not db.exists():
        return set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        bodies = conn.execute("SELECT body FROM items WHERE state = 'completed'").fetchall()
    return {json.loads(body)["prompt"] for (body,) in bodies}


def accepted_prompts(stats: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, count in stats["accepted_by_body"].items():
        prompt = json.loads(key.split(" ", 1)[1])["prompt"]
        out[prompt] = out.get(prompt, 0) + count
    return out


def crash_loop(sz: Sizes, work: Path) -> list[Row]:
    """SIGKILL at random moments with faults on, then one run to the end."""
    manifest = h.simple_manifest(work / "crash.jsonl", sz.crash_items, "crash")
    out = work / "crash-batchgen"
    chance = random.Random(5)
    kills = resubmitted = 0
    flags = ("--rpm", h.NO_LIMIT_RPM, "--drain-timeout", "5")
    with h.server(*FAULT_FLAGS, workers=8, latency=0.2) as srv:
        before = accepted_prompts(srv.stats())
        for final in [False] * sz.crash_kills + [True]:
            done = completed_prompts(out)
            client = run_client("batchgen", srv, manifest, out, *flags)
            if not final:
                target = srv.stats()["submits_accepted"] + chance.randint(1, 20)
                while client.running() and srv.stats()["submits_accepted"] < target:
                    time.sleep(0.01)
                if client.running():
                    client.proc.kill()
                    kills += 1
            client.wait(600)
            now = accepted_prompts(srv.stats())
            resubmitted += sum(1 for p, n in now.items() if p in done and n > before.get(p, 0))
            before = now
        stats = srv.stats()
    status = subprocess.run([str(h.BIN / "batchgen"), "status", str(out), "--json"],
                            capture_output=True, text=True, check=True)
    in_doubt = json.loads(status.stdout)["in_doubt_submits"]
    lost = sz.crash_items - delivered("batchgen", out)
    dup = h.duplicate_submits(stats)
    label = f"{sz.crash_items} items, {kills} SIGKILLs, faults on"
    return [
        row("crash loop", "batchgen", f"items lost ({label})", lost, "0", lost == 0),
        row("crash loop", "batchgen", "completed items resubmitted", resubmitted, "0",
            resubmitted == 0),
        row("crash loop", "batchgen", "duplicate submits / in-doubt", f"{dup} / {in_doubt}",
            "dup <= in-doubt", dup <= in_doubt),
    ]
