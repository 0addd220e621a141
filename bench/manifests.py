"""Scenarios of the manifest side (issue 12): validation speed and lazy expansion.

- validate: ``batchgen validate`` of the 1M-line JSONL of "scale", against a bare
  ``json.loads`` pass over the same file (``bench/anchors/json_loads.py``), each as its
  own process, alternated and the fastest of three runs taken (the machine is shared);
  and the same two timed inside one process (``bench/validate_inprocess.py``), which
  leaves out the start-up of the ``batchgen`` command.
- sweep: peak RSS of ``batchgen validate`` and of ``batchgen expand`` (a validation
  pass, then every item written out) on a one-million-combination ``matrix:`` and on a
  template expanding to a million items; and the time a ten-million-combination matrix
  takes to be refused (issue 16: it used to validate for minutes in 2.3 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import harness as h
from bench.scenarios import Row, Sizes, row

RUNS = 3


def scale_manifest(sz: Sizes, work: Path) -> Path:
    """The JSONL of the "scale" scenario (bench/gen_manifest.py), made once."""
    manifest = work / f"scale-{sz.scale_lines}.jsonl"
    if not manifest.exists():
        subprocess.run([sys.executable, str(h.ROOT / "bench" / "gen_manifest.py"),
                        str(sz.scale_lines), str(manifest)], check=True,
                       stderr=subprocess.DEVNULL)
    return manifest


def measured(args: list[str], log: Path, limit_s: float = 900) -> h.Measured:
    result = h.Client(args, log).wait(limit_s)
    if result.code != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.code}: {log}")
    return result


def validate(sz: Sizes, work: Path) -> list[Row]:
    """Full validation of every line against the cost of merely decoding them."""
    manifest = scale_manifest(sz, work)
    anchor: list[h.Measured] = []
    mine: list[h.Measured] = []
    for _ in range(RUNS):
        anchor.append(measured([sys.executable, "-m", "bench.anchors.json_loads",
                                str(manifest)], work / "validate-anchor.log"))
        mine.append(measured([str(h.BIN / "batchgen"), "validate", str(manifest)],
                             work / "validate-batchgen.log"))
    floor = min(m.wall_s for m in anchor)
    best = min(m.wall_s for m in mine)
    inside = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.validate_inprocess", str(manifest), "--runs", str(RUNS)],
        check=True, capture_output=True, text=True, cwd=h.ROOT).stdout)
    lines = f"{sz.scale_lines:,} lines"
    return [
        row("validate", "json_loads", f"wall s ({lines})", floor),
        row("validate", "batchgen", f"wall s ({lines})", best),
        row("validate", "batchgen/json_loads", "validate time / json.loads time", best / floor,
            "<= 2", best / floor <= 2),
        row("validate", "batchgen/json_loads", "the same in one process (no start-up)",
            inside["check_s"] / inside["json_loads_s"]),
        row("validate", "batchgen", "peak RSS MB", max(m.rss_mb for m in mine)),
    ]


def sweep(sz: Sizes, work: Path) -> list[Row]:
    """Peak RSS of a million-item sweep and template, and a ten-million sweep refused."""
    size = 1000 if sz.scale_lines >= 1_000_000 else 300  # a million, or 90,000 quick
    folder = work / "sweep"
    (folder / "wildcards").mkdir(parents=True, exist_ok=True)
    seeds = ", ".join(str(n) for n in range(size))
    guidance = ", ".join(f"{1 + n * 24 / size:.3f}" for n in range(size))
    matrix = folder / "matrix.yaml"
    matrix.write_text(f"matrix:\n  seed: [{seeds}]\n  guidance_scale: [{guidance}]\n"
                      "items: ['a lighthouse at dusk']\n")
    side = round(size ** (2 / 3))  # three wildcards of side lines: side**3 items
    for name in "abc":
        (folder / "wildcards" / f"{name}.txt").write_text(
            "".join(f"{name} word {n}\n" for n in range(side)))
    template = folder / "template.yaml"
    template.write_text("items: ['a __a__ by __b__ in __c__']\n")
    too_big = folder / "too-big.yaml"
    too_big.write_text(f"matrix:\n  seed: [{', '.join(str(n) for n in range(10_000))}]\n"
                       f"  num_inference_steps: [{', '.join(str(n) for n in range(1000))}]\n"
                       "items: [a]\n")
    rows: list[Row] = []
    for label, path, count in (("matrix", matrix, size * size),
                               ("template", template, side ** 3)):
        for command in ("validate", "expand"):
            args = [str(h.BIN / "batchgen"), command, str(path)]
            if command == "expand":
                args = ["/bin/sh", "-c", "exec " + " ".join(args) + " > /dev/null"]
            got = measured(args, work / f"sweep-{label}-{command}.log")
            rows.append(row("sweep", "batchgen", f"{label} of {count:,} items, {command}: "
                            "peak RSS MB", got.rss_mb, "<= 150", got.rss_mb <= 150))
            rows.append(row("sweep", "batchgen", f"{label} of {count:,} items, {command}: "
                            "wall s", got.wall_s))
    refused = h.Client([str(h.BIN / "batchgen"), "validate", str(too_big)],
                       work / "sweep-too-big.log").wait(300)
    rows.append(row("sweep", "batchgen", "10,000,000-combination matrix: refused after s",
                    refused.wall_s, "exit 2", refused.code == 2))
    return rows
