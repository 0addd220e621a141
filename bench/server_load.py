"""Load figure for the local server: 2,000 jobs in flight, 200 concurrent aiohttp clients.

Run: ``.venv/bin/python bench/server_load.py [--jobs N] [--clients C] [--in-process]
[--state-dir DIR]`` (``--state-dir`` makes the server write every job there, as
``run --local`` does, to show what keeping jobs across restarts costs).

By default the server runs as a subprocess (``batchgen serve --port 0``) so that it and
the clients get a core each. Phase 1 submits every job (200 submitters); the server's
``jobs_in_flight`` is read right after, to show they were all held at once. Phase 2
polls each job's status until it is terminal, fetches the result and downloads the
first image. Prints errors (must be 0) and throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from batchgen.server import DEMO_API_KEY, ServerConfig, serve_local

HEADERS = {"x-api-key": DEMO_API_KEY}
MODEL = "sd1.5-epicrealism"


@contextlib.asynccontextmanager
async def server_url(args: argparse.Namespace) -> AsyncIterator[str]:
    """The base URL of a server with enough simulated work to keep every job in flight."""
    if args.in_process:
        config = ServerConfig(workers=args.workers, latency_s=args.latency,
                              state_dir=args.state_dir)
        async with serve_local(config) as server:
            yield server.base_url
        return
    state = ["--state-dir", str(args.state_dir)] if args.state_dir else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchgen", "serve", "--port", "0",
        "--workers", str(args.workers), "--latency", str(args.latency), *state,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        yield (await proc.stdout.readline()).decode().strip()
    finally:
        proc.terminate()
        await proc.wait()


async def run_pool(count: int, work: list[Any], step: Any) -> None:
    """Run ``step(item)`` over ``work`` with ``count`` concurrent clients."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)

    async def client() -> None:
        while not queue.empty():
            await step(queue.get_nowait())

    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(client())


async def main(args: argparse.Namespace) -> int:
    errors: Counter[str] = Counter()
    requests = Counter[str]()
    ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with server_url(args) as base, aiohttp.ClientSession(connector=connector) as session:

        async def submit(i: int) -> None:
            body = {"prompt": f"load test item {i}", "seed": i}
            async with session.post(f"{base}/v2/{MODEL}", json=body, headers=HEADERS) as r:
                requests["submit"] += 1
                if r.status != 200:
                    errors[f"submit {r.status}"] += 1
                    return
                ids.append((await r.json())["request_id"])

        async def follow(rid: str) -> None:
            while True:
                async with session.get(f"{base}/v2/requests/{rid}/status", headers=HEADERS) as r:
                    requests["status"] += 1
                    status = (await r.json()).get("status")
                if status in ("COMPLETED", "FAILED"):
                    break
                await asyncio.sleep(args.poll_s)
            if status == "FAILED":
                errors["job failed"] += 1
                return
            async with session.get(f"{base}/v2/requests/{rid}", headers=HEADERS) as r:
                requests["result"] += 1
                url = (await r.json())["output"]
            async with session.get(url) as r:
                requests["download"] += 1
                data = await r.read()
                if r.status != 200 or len(data) != r.content_length:
                    errors["download"] += 1

        started = time.perf_counter()
        await run_pool(args.clients, list(range(args.jobs)), submit)
        submitted = time.perf_counter()
        async with session.get(f"{base}/__stats") as r:
            in_flight = (await r.json())["jobs_in_flight"]
        await run_pool(args.clients, list(ids), follow)
        finished = time.perf_counter()
        async with session.get(f"{base}/__stats") as r:
            stats = await r.json()

    total = sum(requests.values())
    print(f"jobs: {args.jobs}  clients: {args.clients}  server workers: {args.workers}  "
          f"latency_s: {args.latency}  mode: {'in-process' if args.in_process else 'subprocess'}"
          f"  state dir: {args.state_dir or 'none'}")
    print(f"errors: {sum(errors.values())} {dict(errors) if errors else ''}")
    print(f"in flight after submitting: {in_flight}")
    print(f"submit phase: {submitted - started:.2f} s, "
          f"{args.jobs / (submitted - started):.0f} submits/s")
    print(f"whole run: {finished - started:.2f} s, {total} requests, "
          f"{total / (finished - started):.0f} requests/s ({dict(requests)})")
    print(f"server: accepted {stats['submits_accepted']}, completed {stats['jobs_completed']}, "
          f"duplicate bodies {stats['duplicate_bodies']}")
    return 1 if errors else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", type=int, default=200, help="server's concurrent jobs")
    parser.add_argument("--latency", type=float, default=0.5, help="server latency_s")
    parser.add_argument("--poll-s", type=float, default=0.5, help="client poll interval")
    parser.add_argument("--in-process", action="store_true", help="server in this process")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the server keeps its jobs in this directory")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
