"""``python -m bench``: every scenario of issues #7 and #12, a table,
``bench/results/latest.*``.

    python -m bench [--quick] [--only capacity rate ...] [--work DIR]

Servers and clients are separate processes; each client's CPU and peak RSS come from
``os.wait4``. The scenarios run one at a time (the machine's two cores are shared): the
rate plans would otherwise slow each other, and the CPU figures would count the others'
load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import manifests, plans, robustness, scenarios
from bench.scenarios import FULL, QUICK, Row, Sizes

RESULTS = Path(__file__).resolve().parent / "results"
Scenario = Callable[[Sizes, Path], list[Row]]
SEQUENTIAL: dict[str, Scenario] = {
    "capacity": scenarios.capacity,
    "polling": scenarios.polling,
    "makespan": scenarios.makespan,
    "faults": robustness.faults,
    "crash": robustness.crash_loop,
    "scale": robustness.scale,
    "validate": manifests.validate,
    "sweep": manifests.sweep,
    "rate": lambda sz, work: scenarios.rate(sz, work, discover=False),
    "discovery": lambda sz, work: scenarios.rate(sz, work, discover=True),
    # issue 12
    "big-plan": plans.big_plan,
    "slow-model": plans.slow_model,
    "small-plan": plans.small_plan,
    "polls-free": plans.polls_free,
    "polls-counted": plans.polls_counted,
    "cpu": plans.client_cpu,
}


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "cpu": model,
            "loadavg_at_start": os.getloadavg()}


def table(rows: list[Row]) -> str:
    """A Markdown table; a missed goal says MISSED."""
    lines = ["| scenario | client | figure | value | goal | holds |", "|---|---|---|---|---|---|"]
    for r in rows:
        holds = {True: "yes", False: "**MISSED**", None: ""}[r["holds"]]
        lines.append(f"| {r['scenario']} | {r['client']} | {r['figure']} | {r['value']} "
                     f"| {r['goal']} | {holds} |")
    return "\n".join(lines)


def write(rows: list[Row], meta: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    head = (f"{'Quick' if meta['quick'] else 'Full'} run, {meta['elapsed_s']:.0f} s; "
            f"{meta['machine']['nproc']} cores, {meta['machine']['cpu']}, "
            f"Python {meta['machine']['python']}")
    load = ", ".join(f"{name} {value:.1f}" for name, value in meta["load"].items())
    errors = "".join(f"\n- {name} failed: {err}" for name, err in meta["errors"].items())
    (RESULTS / "latest.md").write_text(f"{head}\n\nLoad average as each scenario started: "
                                       f"{load}\n\n{table(rows)}\n{errors}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="small versions, a few minutes")
    parser.add_argument("--only", nargs="+", choices=[*SEQUENTIAL])
    parser.add_argument("--work", type=Path, help="keep manifests and outputs here")
    ns = parser.parse_args(argv)
    sizes = QUICK if ns.quick else FULL
    chosen = set(ns.only or SEQUENTIAL)
    work = ns.work or Path(tempfile.mkdtemp(prefix="batchgen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[Row] = []
    meta: dict[str, Any] = {"quick": ns.quick, "machine": machine(), "errors": {},
                            "elapsed_s": 0.0, "load": {}}

    def run(name: str, scenario: Scenario) -> None:
        t0 = time.perf_counter()
        meta["load"][name] = os.getloadavg()[0]  # other work on the machine, as it starts
        try:
            got = scenario(sizes, work)
        except Exception as exc:  # one broken scenario must not hide the others
            traceback.print_exc()
            meta["errors"][name] = repr(exc)
            return
        rows.extend(got)
        meta["elapsed_s"] = time.perf_counter() - started
        write(rows, meta)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
        print(table(got), flush=True)

    for name, scenario in SEQUENTIAL.items():
        if name in chosen:
            run(name, scenario)
    order = [*SEQUENTIAL, "rate", "rate discovery", "client cost"]
    rows.sort(key=lambda r: order.index(r["scenario"]) if r["scenario"] in order else 99)
    meta["elapsed_s"] = time.perf_counter() - started
    write(rows, meta)
    print("\n" + table(rows))
    print(f"\nwritten: {RESULTS / 'latest.json'}, {RESULTS / 'latest.md'}"
          f" ({meta['elapsed_s']:.0f} s)")
    if not ns.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if meta["errors"] else 0
