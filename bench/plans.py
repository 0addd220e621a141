"""The scenarios of issue 12: as fast as the plan allows with no tuning.

batchgen is given only ``--rpm R`` (the in-flight target sizes itself) against a server
that allows R requests a minute and runs jobs of seconds on GPUs to spare. Figures:
achieved / R (submits accepted between the first and the last, per minute, over R),
429s, jobs in flight against what the rate needs, polls per job and detection delay by
rate scope, and client CPU per 1,000 items at 64 in flight against the plain aiohttp
anchor, in the same run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness as h
from bench.scenarios import Row, Sizes, delivered, row

# GPUs to spare: the provider is never what limits these runs.
WORKERS = 512
# Accepted submits are read off the server this often (the error on a 100 s run: 0.2%).
SAMPLE_S = 0.2


@dataclass(frozen=True)
class Plan:
    """A server's limit and job times, and how many items batchgen runs against it."""

    label: str
    rpm: int
    latency_s: float
    jitter: float
    items: int
    scope: str = "submits"

    @property
    def slug(self) -> str:
        return self.label.replace(" ", "-").replace(",", "")


@dataclass
class Ran:
    stats: dict[str, Any]
    summary: dict[str, Any]
    achieved: float  # accepted submits per minute over R, first to last
    measured: h.Measured


def accepted_per_s(srv: h.Server, client: h.Client) -> float:
    """Submits accepted per second from the first to the last, read off the server."""
    samples: list[tuple[float, int]] = []
    while client.running():
        samples.append((time.perf_counter(), srv.stats()["submits_accepted"]))
        time.sleep(SAMPLE_S)
    samples.append((time.perf_counter(), srv.stats()["submits_accepted"]))
    final = samples[-1][1]
    t_first, n_first = next((t, n) for t, n in samples if n >= 1)
    t_last = next(t for t, n in samples if n >= final)
    return (final - n_first) / (t_last - t_first) if t_last > t_first else 0.0


def run_plan(plan: Plan, work: Path, *flags: str) -> Ran:
    manifest = h.simple_manifest(work / f"{plan.slug}.jsonl", plan.items, plan.slug[:12])
    out = work / f"{plan.slug}-batchgen"
    with h.server("--rpm", str(plan.rpm), "--rpm-scope", plan.scope, "--jitter",
                  str(plan.jitter), workers=WORKERS, latency=plan.latency_s) as srv:
        client = h.batchgen_run(srv, manifest, out, "--rpm", str(plan.rpm), "--rate-scope",
                                plan.scope, *flags)
        rate = accepted_per_s(srv, client)
        measured = client.wait(1800)
        stats = srv.stats()
    if delivered("batchgen", out) != plan.items:
        raise RuntimeError(f"{plan.label}: not every item delivered: {client.tail()}")
    return Ran(stats, h.summary(out), rate * 60 / plan.rpm, measured)


def _plan_rows(plan: Plan, ran: Ran, goal: float) -> list[Row]:
    where = (f"server {plan.rpm} RPM, jobs {plan.latency_s:g} s +-{plan.jitter:.0%}, "
             f"{plan.items} items, only --rpm {plan.rpm}")
    limited = ran.stats["rate_limited"]
    concurrency = ran.summary["concurrency"]
    return [
        row(plan.label, "batchgen", f"achieved/R ({where})", ran.achieved, f">= {goal}",
            ran.achieved >= goal),
        row(plan.label, "batchgen", "429s", limited, "0", limited == 0),
        row(plan.label, "batchgen", "peak jobs in flight / final target",
            f"{concurrency['peak_in_flight']} / {concurrency['target']}"),
        row(plan.label, "batchgen", "in-flight target at the end", concurrency["why"]),
    ]


def big_plan(sz: Sizes, work: Path) -> list[Row]:
    """600 RPM, jobs 3 s +-50%: the run that reached 0.40 of R with 16 in flight."""
    plan = Plan("big plan", 600, 3.0, 0.5, sz.big_items)
    return _plan_rows(plan, run_plan(plan, work), 0.95)


def slow_model(sz: Sizes, work: Path) -> list[Row]:
    """1,000 RPM, jobs 10 s +-50%: about 175 jobs in flight needed, 250 at the longest."""
    plan = Plan("big plan, slow model", 1000, 10.0, 0.5, sz.slow_items)
    return _plan_rows(plan, run_plan(plan, work), 0.95)


def small_plan(sz: Sizes, work: Path) -> list[Row]:
    """50 RPM, jobs 3 s: the rate needs about three jobs in flight, not sixteen."""
    plan = Plan("small plan", 50, 3.0, 0.0, sz.small_items)
    ran = run_plan(plan, work)
    rows = _plan_rows(plan, ran, 0.97)
    detection = ran.stats["detection_delay_s"]["p95"] or 0.0
    # Little's law with the longest job and detection, and the next submit waiting for
    # its permit (the spare slot).
    need = math.ceil(plan.rpm / 60 * (plan.latency_s + detection)) + 1
    peak = ran.summary["concurrency"]["peak_in_flight"]
    rows.append(row(plan.label, "batchgen",
                    f"peak in flight <= rate x (job + detection p95 {detection:.2f} s) + 1",
                    f"{peak} <= {need}", "never above what the rate needs", peak <= need))
    return rows


def polls_free(sz: Sizes, work: Path) -> list[Row]:
    """--rate-scope submits (polls free), jobs 2 s +-50%: prompt detection."""
    plan = Plan("polls free", 600, 2.0, 0.5, sz.poll_items)
    ran = run_plan(plan, work)
    return _poll_rows(plan, ran, polls_goal=3.0, detection_goal=0.1 * plan.latency_s)


def polls_counted(sz: Sizes, work: Path) -> list[Row]:
    """--rate-scope all (polls count against the limit), jobs 2 s +-50%: few polls."""
    plan = Plan("polls counted", 600, 2.0, 0.5, sz.counted_items, scope="all")
    ran = run_plan(plan, work)
    return _poll_rows(plan, ran, polls_goal=1.5, detection_goal=None)


def _poll_rows(plan: Plan, ran: Ran, *, polls_goal: float,
               detection_goal: float | None) -> list[Row]:
    per_job = ran.stats["polls"].get("status", 0) / plan.items
    p50 = ran.stats["detection_delay_s"]["p50"] or 0.0
    where = f"--rate-scope {plan.scope}, jobs {plan.latency_s:g} s +-{plan.jitter:.0%}"
    rows = [row(plan.label, "batchgen", f"status polls per job ({where})", per_job,
                f"<= {polls_goal:g}", per_job <= polls_goal)]
    if detection_goal is None:
        rows.append(row(plan.label, "batchgen", "detection delay p50 s", p50))
    else:
        rows.append(row(plan.label, "batchgen", "detection delay p50 s", p50,
                        f"<= {detection_goal:g} s (10% of the job time)", p50 <= detection_goal))
    rows.append(row(plan.label, "batchgen", "detection delay p95 s",
                    ran.stats["detection_delay_s"]["p95"] or 0.0))
    rows.append(row(plan.label, "batchgen", "achieved/R", ran.achieved))
    rows.append(row(plan.label, "batchgen", "429s", ran.stats["rate_limited"]))
    return rows


CPU_IN_FLIGHT = 64
COST = f"client cost, {CPU_IN_FLIGHT} in flight"


def client_cpu(sz: Sizes, work: Path) -> list[Row]:
    """CPU seconds per 1,000 items at 64 in flight (jobs 0.5 s +-50%, no limit): batchgen
    (fsynced checkpoint and images) against the plain aiohttp script, one after the other."""
    manifest = h.simple_manifest(work / "cpu.jsonl", sz.cpu_items, "cpu")
    cpu: dict[str, float] = {}
    rows: list[Row] = []
    for name in ("batchgen", "aiohttp_poll"):
        out = work / f"cpu-{name}"
        with h.server("--jitter", "0.5", workers=2 * CPU_IN_FLIGHT, latency=0.5) as srv:
            if name == "batchgen":
                client = h.batchgen_run(srv, manifest, out, "--concurrency",
                                        str(CPU_IN_FLIGHT), "--rpm", h.NO_LIMIT_RPM)
            else:
                client = h.anchor_run(name, srv, manifest, out, CPU_IN_FLIGHT)
            m = client.wait(1800)
            polls = srv.stats()["polls"].get("status", 0) / sz.cpu_items
        got = delivered(name, out)
        cpu[name] = m.cpu_s * 1000 / sz.cpu_items
        rows.append(row(COST, name, "CPU s per 1,000 items",
                        cpu[name]))
        rows.append(row(COST, name, "items delivered, polls per item",
                        f"{got}/{sz.cpu_items}, {polls:.2f}"))
        rows.append(row(COST, name, "peak RSS MB", m.rss_mb))
    ratio = cpu["batchgen"] / cpu["aiohttp_poll"]
    rows.append(row(COST, "batchgen/aiohttp_poll", "CPU per item ratio", ratio,
                    "<= 1.5x", ratio <= 1.5))
    return rows
