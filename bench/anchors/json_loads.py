"""Anchor: a bare ``json.loads`` pass over a JSONL file, the floor of reading it at all.

    python -m bench.anchors.json_loads MANIFEST

Each line is stripped and decoded, blank and ``#`` lines skipped; nothing is checked and
nothing kept. Issue 12 asks batchgen's full validation of the same file to take at most
twice this long.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    count = 0
    with open(sys.argv[1], "rb") as manifest:
        for raw in manifest:
            line = raw.strip()
            if line and not line.startswith(b"#"):
                json.loads(line)
                count += 1
    print(f"{count} lines decoded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
