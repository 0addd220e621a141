"""The error policy end to end: each API answer that stops a run, against the local server."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MODEL, StartServer
from test_run import run, write_manifest


@pytest.mark.parametrize(
    ("server_options", "manifest_text", "status"),
    [
        ({"forbidden": (MODEL,)}, "items: [a, b]\n", 403),
        ({}, "model: no-such-model\nitems: [a, b]\n", 404),
        ({"retired": (MODEL,)}, "items: [a, b]\n", 410),
    ],
    ids=["403-forbidden", "404-unknown-model", "410-retired"],
)
async def test_model_refusals_fail_the_models_items_and_exit_3_when_nothing_ran(
    local_server: StartServer, tmp_path: Path, server_options: dict[str, object],
    manifest_text: str, status: int,
) -> None:
    """403, an unknown model's 404 and 410 fail that model's items, sending only the first;
    with no other model to run, the exit code is 3."""
    server = await local_server(**server_options)
    manifest = write_manifest(tmp_path / "m.yaml", manifest_text)
    summary = await run(server, manifest, tmp_path / "out", concurrency=1)
    assert summary["exit_code"] == 3
    [message] = summary["refused_models"].values()
    assert str(status) in message
    assert sum(server.stats()["submits_rejected"].values()) == 1
    assert summary["items"]["failed"] == 2
    assert summary["errors_by_cause"] == {"model_refused": 2}


async def test_out_of_credits_stops_submitting_and_keeps_finished(
    local_server: StartServer, tmp_path: Path
) -> None:
    """406 (credits) stops new submits; jobs already accepted are still delivered."""
    server = await local_server(credits=0.02, cost_per_image=0.01)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d]\n")
    summary = await run(server, manifest, tmp_path / "out", concurrency=1)
    assert summary["exit_code"] == 3
    assert "406" in summary["fatal_error"]
    assert summary["items"]["completed"] == 2
    assert summary["items"]["pending"] == 2


async def test_server_errors_are_retried(local_server: StartServer, tmp_path: Path) -> None:
    """500/502/503/504 answers and non-JSON error bodies are retried until the items land."""
    # 20% of answers fail: an item fails all six attempts with odds of 0.2**6 (6e-5).
    server = await local_server(error_500_rate=0.05, error_502_rate=0.05, error_503_rate=0.05,
                                error_504_rate=0.05, non_json_rate=1.0, rng_seed=3)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d, e, f]\n")
    summary = await run(server, manifest, tmp_path / "out")
    assert summary["items"]["completed"] == 6
    assert summary["this_run"]["retries"] > 0
    assert server.stats()["duplicate_bodies"] == 0


async def test_failed_job_retried_when_asked(local_server: StartServer, tmp_path: Path) -> None:
    """--retry-failed-jobs K sends a FAILED job again up to K times, then fails the item."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: ['always [[fail]]']\n")
    summary = await run(server, manifest, tmp_path / "out", retry_failed_jobs=2)
    assert server.stats()["submits_accepted"] == 3
    assert summary["items"]["failed"] == 1
    assert summary["errors_by_cause"] == {"safety_block": 1}


async def test_unreachable_api_stops_submitting(tmp_path: Path) -> None:
    """When the API cannot be reached, the run stops after a few items and exits 1."""
    import socket

    import batchgen

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d, e, f]\n")
    summary = await batchgen.run(manifest, out=tmp_path / "out",
                                 base_url=f"http://127.0.0.1:{port}", api_key="SG_x",
                                 progress=False, concurrency=1, retry_base_delay_s=0.001,
                                 rpm=6000)
    assert summary["stop_reason"] == "api_unreachable"
    assert summary["exit_code"] == 1
    assert summary["items"]["pending"] == 6
    # Attempts are counted apart from submits the API accepted: none reached it.
    assert summary["this_run"]["submits"] == 0
    assert summary["this_run"]["submit_attempts"] >= 3
    assert summary["errors_by_cause"] == {"transport": 3}


@pytest.mark.parametrize("client_rpm", [None, 4])
async def test_rate_limited_server(local_server: StartServer, tmp_path: Path,
                                   client_rpm: int | None) -> None:
    """Against a rate-limited server every item lands once; told the limit, with no 429."""
    # A 2-second window instead of the API's minute, to keep the test short. The client's
    # is 10% longer: its built-in margin (1/60 of the window, a second against a real
    # minute) would be 33 ms here, less than a loaded test machine's scheduling jitter.
    server = await local_server(rpm=4, rpm_window_s=2.0)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d, e, f, g, h]\n")
    summary = await run(server, manifest, tmp_path / "out", rpm=client_rpm,
                        start_rpm=6000, rate_window_s=2.2)
    stats = server.stats()
    assert summary["items"]["completed"] == 8
    assert stats["duplicate_bodies"] == 0
    assert stats["submits_accepted"] == 8
    if client_rpm is None:
        assert stats["rate_limited"] > 0
        assert summary["this_run"]["rate_limited_429"] == stats["rate_limited"]
    else:
        assert stats["rate_limited"] == 0
