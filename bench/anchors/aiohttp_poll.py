"""Anchor: the common asyncio + aiohttp batch script (semaphore, submit, poll, download).

    python -m bench.anchors.aiohttp_poll MANIFEST -o OUT --base-url URL [--concurrency N]

The shape of the well-known parallel request processors: a semaphore of N, each item
submitted, its status polled every second, the result fetched and the image downloaded;
a failed step (exception or 5xx) is retried whole up to three attempts, as those scripts
do. A retried submit after a lost answer pays twice: there is no idempotency key.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

import aiohttp

from bench.anchors.common import is_complete_png, items, parse, write_report

ATTEMPTS = 3
POLL_S = 1.0


class StepError(Exception):
    """A non-success answer worth retrying."""


async def main_async() -> int:
    ns = parse(__doc__.splitlines()[0])
    work = items(ns.manifest)
    headers = {"x-api-key": ns.api_key}
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(ns.concurrency)

    async def attempt(session: aiohttp.ClientSession, item_id: str,
                      params: dict[str, Any]) -> None:
        async with session.post(f"{ns.base_url}/v2/{ns.model}", json=params,
                                headers=headers) as r:
            if r.status != 200:
                raise StepError(f"submit {r.status}")
            job = await r.json()
        while True:
            async with session.get(job["status_url"], headers=headers) as r:
                status = (await r.json(content_type=None)).get("status")
            if status == "COMPLETED":
                break
            if status == "FAILED":
                raise StepError("job failed")
            await asyncio.sleep(POLL_S)
        async with session.get(job["response_url"], headers=headers) as r:
            if r.status != 200:
                raise StepError(f"result {r.status}")
            url = (await r.json())["output"]
        async with session.get(url) as r:
            data = await r.read()
            if r.status != 200 or not is_complete_png(data, r.content_length):
                raise StepError("download")
        (ns.out / "images" / f"{item_id}.png").write_bytes(data)

    async def one(session: aiohttp.ClientSession, item_id: str,
                  params: dict[str, Any]) -> bool:
        async with gate:
            for _ in range(ATTEMPTS):
                try:
                    await attempt(session, item_id, params)
                    return True
                except (TimeoutError, aiohttp.ClientError, StepError, KeyError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
            return False

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        done = await asyncio.gather(*(one(session, i, p) for i, p in work))
    write_report(ns.out, len(work), sum(done), dict(errors))
    return 0


def main() -> int:
    return asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
