"""Anchor: the official SDK batched as its users do, a thread pool over ``client.run``.

    python -m bench.anchors.sdk_pool MANIFEST -o OUT --base-url URL [--concurrency N]

One ``SegmindClient`` (the SDK's httpx client is thread-safe) mapped over the items by a
``ThreadPoolExecutor`` of N threads; each output URL is then downloaded with httpx. An
exception loses the item: ``run`` retries nothing, and neither does a typical caller.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from segmind import SegmindClient

from bench.anchors.common import is_complete_png, items, parse, write_report


def main() -> int:
    ns = parse(__doc__.splitlines()[0])
    work = items(ns.manifest)
    client = SegmindClient(api_key=ns.api_key, base_url=f"{ns.base_url}/v1")
    http = httpx.Client(timeout=60)
    errors: Counter[str] = Counter()

    def one(entry: tuple[str, dict[str, Any]]) -> bool:
        item_id, params = entry
        try:
            result = client.run(ns.model, **params)
            answer = http.get(result["output"])
            expected = answer.headers.get("content-length")
            if answer.status_code != 200 or not is_complete_png(
                    answer.content, int(expected) if expected else None):
                errors["download"] += 1
                return False
            (ns.out / "images" / f"{item_id}.png").write_bytes(answer.content)
            return True
        except Exception as exc:  # the item is lost: what a thread-pool caller sees
            errors[type(exc).__name__] += 1
            return False

    with ThreadPoolExecutor(max_workers=ns.concurrency) as pool:
        delivered = sum(pool.map(one, work))
    http.close()
    write_report(ns.out, len(work), delivered, dict(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
