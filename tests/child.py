"""The real ``batchgen`` command in a child process, waited for in a worker thread so that
an in-process local server keeps answering it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio

from batchgen.server import LocalServer

# Flags that make a run against the local server quick: no discovery, short polls.
FAST = ("--rpm", "6000", "--poll-first", "0.05", "--history-wait", "0.2", "--no-progress")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any key, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "SEGMIND_API_KEY"}
    return {**env, **(extra or {})}


async def batchgen(*args: str, env: Mapping[str, str] | None = None,
                   **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m batchgen ARGS`` to its end (60 s at most); output captured as text
    unless ``stdout``/``stderr`` say otherwise."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    call = partial(subprocess.run, [sys.executable, "-m", "batchgen", *args],
                   env=child_env() if env is None else dict(env), text=True, timeout=60,
                   stdin=subprocess.DEVNULL, **popen)
    done: subprocess.CompletedProcess[str] = await anyio.to_thread.run_sync(call)
    return done


def against(server: LocalServer) -> tuple[str, ...]:
    """The flags that point a run at ``server`` (its key goes through the environment)."""
    return ("--base-url", server.base_url, "--history-url", server.base_url, *FAST)
