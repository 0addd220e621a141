"""Validation and a bare ``json.loads`` pass timed in one process, without start-up costs.

    python -m bench.validate_inprocess MANIFEST [--runs 3]

Prints one JSON object: the fastest of ``runs`` alternated timings of each, in seconds.
The "validate" scenario runs it beside the two processes it times from outside.
"""

from __future__ import annotations

import argparse
import json
import time

from batchgen.manifest.reader import ManifestReader


def bare_pass(path: str) -> None:
    with open(path, "rb") as manifest:
        for raw in manifest:
            line = raw.strip()
            if line and not line.startswith(b"#"):
                json.loads(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--runs", type=int, default=3)
    ns = parser.parse_args()
    anchor, check = [], []
    for _ in range(ns.runs):
        started = time.perf_counter()
        bare_pass(ns.manifest)
        anchor.append(time.perf_counter() - started)
        started = time.perf_counter()
        if not ManifestReader(ns.manifest).check():
            raise SystemExit("the manifest is not valid")
        check.append(time.perf_counter() - started)
    print(json.dumps({"json_loads_s": min(anchor), "check_s": min(check)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
