"""The CLI shape the anchors share: manifest in, images and ``report.json`` out."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def parse(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("manifest", type=Path, help="JSONL: id and parameters per line")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", default="sd1.5-epicrealism")
    ns = parser.parse_args()
    ns.api_key = os.environ["SEGMIND_API_KEY"]
    (ns.out / "images").mkdir(parents=True, exist_ok=True)
    return ns


def items(manifest: Path) -> list[tuple[str, dict[str, Any]]]:
    """(id, params) per line; what an ad-hoc script reads."""
    out = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            params = json.loads(line)
            out.append((str(params.pop("id")), params))
    return out


def is_complete_png(data: bytes, expected: int | None) -> bool:
    return data.startswith(b"\x89PNG") and (expected is None or len(data) == expected)


def write_report(out: Path, total: int, delivered: int, errors: dict[str, int]) -> None:
    report = {"items": total, "delivered": delivered, "lost": total - delivered,
              "errors": errors}
    (out / "report.json").write_text(json.dumps(report, indent=1))
