"""The scenarios of issue #7. Each returns rows: scenario, client, figure, value, goal, holds.

Every client gets a fresh server with the same flags and seed, started as its own
process, so counters belong to one client and ratios compare like with like.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness as h

ANCHORS = ("sdk_pool", "aiohttp_poll")
CONCURRENCY = 16
Row = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    capacity: int
    rate_s: float
    rpm: int
    polling: int
    makespan_workers: int
    makespan_latency_s: float
    makespan_items: int
    scale_lines: int
    faults: int
    crash_items: int
    crash_kills: int
    # issue 12 (bench/plans.py)
    big_items: int
    slow_items: int
    small_items: int
    poll_items: int
    counted_items: int
    cpu_items: int


FULL = Sizes(5000, 180, 600, 500, 8, 1.0, 160, 1_000_000, 200, 500, 20,
             1200, 1200, 100, 600, 200, 3000)
QUICK = Sizes(500, 60, 300, 100, 4, 0.5, 40, 100_000, 100, 100, 5,
              300, 300, 30, 200, 60, 1000)


def row(scenario: str, client: str, figure: str, value: Any, goal: str = "",
        holds: bool | None = None) -> Row:
    if isinstance(value, float):
        value = round(value, 3)
    return {"scenario": scenario, "client": client, "figure": figure, "value": value,
            "goal": goal, "holds": holds}


def run_client(name: str, srv: h.Server, manifest: Path, out: Path,
               *flags: str) -> h.Client:
    if name == "batchgen":
        return h.batchgen_run(srv, manifest, out, "--concurrency", str(CONCURRENCY), *flags)
    return h.anchor_run(name, srv, manifest, out, CONCURRENCY)


def delivered(name: str, out: Path) -> int:
    if name == "batchgen":
        return sum(1 for r in h.results(out) if r["status"] == "completed"
                   and all((out / f["path"]).exists() for f in r["files"]))
    return int(h.anchor_report(out).get("delivered", 0))


def capacity(sz: Sizes, work: Path) -> list[Row]:
    """Items/s at zero latency, no limit; CPU and peak RSS per client (client cost)."""
    manifest = h.simple_manifest(work / "capacity.jsonl", sz.capacity, "cap")
    measured: dict[str, tuple[h.Measured, int]] = {}
    for name in ("batchgen", *ANCHORS):
        with h.server() as srv:
            flags = ("--rpm", h.NO_LIMIT_RPM) if name == "batchgen" else ()
            m = run_client(name, srv, manifest, work / f"capacity-{name}", *flags).wait(1800)
            measured[name] = (m, delivered(name, work / f"capacity-{name}"))
    rows = []
    rate = {n: got / m.wall_s for n, (m, got) in measured.items()}
    for name, (_, got) in measured.items():
        rows.append(row("capacity", name, "items/s", rate[name]))
        rows.append(row("capacity", name, "items delivered", f"{got}/{sz.capacity}"))
    for anchor in ANCHORS:
        ratio = rate["batchgen"] / rate[anchor] if rate[anchor] else float("inf")
        goal = ">= 5x" if anchor == "sdk_pool" else ""
        rows.append(row("capacity", f"batchgen/{anchor}", "items/s ratio", ratio, goal,
                        ratio >= 5 if anchor == "sdk_pool" else None))
    cpu = {n: m.cpu_s * 1000 / sz.capacity for n, (m, _) in measured.items()}
    rss = {n: m.rss_mb for n, (m, _) in measured.items()}
    for name in measured:
        mine = name == "batchgen"
        rows.append(row("client cost", name, "CPU s per 1,000 items", cpu[name],
                        "below every anchor" if mine else "",
                        all(cpu[name] < cpu[a] for a in ANCHORS) if mine else None))
        rows.append(row("client cost", name, "peak RSS MB", rss[name],
                        "below every anchor" if mine else "",
                        all(rss[name] < rss[a] for a in ANCHORS) if mine else None))
    return rows


def rate(sz: Sizes, work: Path, *, discover: bool) -> list[Row]:
    """Accepted submits in the first T s after the first one, against --rpm R."""
    label = "rate discovery" if discover else "rate"
    items = int(sz.rpm * sz.rate_s / 60 * 1.5) + 50
    manifest = h.simple_manifest(work / f"{label.replace(' ', '-')}.jsonl", items, "rate")
    flags = () if discover else ("--rpm", str(sz.rpm))
    with h.server("--rpm", str(sz.rpm)) as srv:
        out = work / f"{label.replace(' ', '-')}-batchgen"
        client = run_client("batchgen", srv, manifest, out, "--drain-timeout", "5", *flags)
        h.first_submit(srv, client, every_s=0.02)
        t0 = time.perf_counter()
        while client.running() and time.perf_counter() < t0 + sz.rate_s:
            time.sleep(0.1)
        stats = srv.stats()
        client.proc.send_signal(signal.SIGTERM)
        client.wait(120)
    accepted = stats["submits_accepted"]
    limited = stats["submits_rejected"].get("429", 0)
    achieved = accepted / (sz.rpm * sz.rate_s / 60)
    window = f"{sz.rate_s:.0f} s at server --rpm {sz.rpm}"
    if discover:
        share = 100 * limited / max(1, accepted + limited)
        return [row(label, "batchgen", f"achieved/R ({window}, no --rpm)", achieved,
                    ">= 0.85", achieved >= 0.85),
                row(label, "batchgen", "429s % of submits", share, "<= 2%", share <= 2),
                row(label, "batchgen", "429s", limited)]
    return [row(label, "batchgen", f"achieved/R ({window}, --rpm {sz.rpm})", achieved,
                ">= 0.97", achieved >= 0.97),
            row(label, "batchgen", "429s", limited, "0", limited == 0)]


def parallel(jobs: dict[str, Any]) -> dict[str, Any]:
    """Run the callables of ``jobs`` in threads; their results by key."""
    results: dict[str, Any] = {}

    def one(key: str) -> None:
        results[key] = jobs[key]()

    threads = [threading.Thread(target=one, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def polling(sz: Sizes, work: Path) -> list[Row]:
    """How the anchors poll at latency 2 s +- 50% (batchgen's own rows, by rate scope, are
    bench/plans.py's "polls free" and "polls counted")."""
    manifest = h.simple_manifest(work / "polling.jsonl", sz.polling, "poll")

    def one(name: str) -> dict[str, Any]:
        with h.server("--jitter", "0.5", latency=2.0) as srv:
            run_client(name, srv, manifest, work / f"polling-{name}").wait(1800)
            return srv.stats()

    stats = parallel({n: (lambda n=n: one(n)) for n in ANCHORS})
    rows = []
    for name, s in stats.items():
        delay = s["detection_delay_s"]
        rows.append(row("polling", name, "status polls per item",
                        s["polls"].get("status", 0) / sz.polling))
        rows.append(row("polling", name, "detection delay p50 s", delay["p50"] or 0.0))
        rows.append(row("polling", name, "detection delay p95 s", delay["p95"] or 0.0))
    return rows


def makespan(sz: Sizes, work: Path) -> list[Row]:
    """Wall time against sum(inference)/W + L, with W workers and latency L +- 50%."""
    w, lat = sz.makespan_workers, sz.makespan_latency_s
    manifest = h.simple_manifest(work / "makespan.jsonl", sz.makespan_items, "span")
    out = work / "makespan-batchgen"
    with h.server("--jitter", "0.5", workers=w, latency=lat) as srv:
        client = run_client("batchgen", srv, manifest, out, "--rpm", h.NO_LIMIT_RPM)
        first = h.first_submit(srv, client, every_s=0.02) or 0.0
        m = client.wait(1800)
    total = sum(r["metrics"]["inference_time"] for r in h.results(out))
    ideal = total / w + lat
    from_first = (m.wall_s - first) / ideal
    label = f"W={w}, L={lat} s, {sz.makespan_items} items"
    return [row("makespan", "batchgen", f"makespan/ideal, first submit to exit ({label})",
                from_first, "<= 1.10", from_first <= 1.10),
            row("makespan", "batchgen", "makespan/ideal, process start to exit",
                m.wall_s / ideal)]
