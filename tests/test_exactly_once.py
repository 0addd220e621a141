"""Exactly once, paid once: the lifecycle's defects, each run end to end against the
local server (real processes where a signal or a kill is involved)."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import aiohttp
import anyio
import pytest
from conftest import MODEL, StartServer
from stores import TO_IN_DOUBT, records, seed
from test_crash import accepted, child_log, finish, jsonl_manifest, start_child, watch
from test_run import results, run, write_manifest

import batchgen
from batchgen.lifecycle import OUTCOME_UNKNOWN, PENDING
from batchgen.manifest.reader import ManifestReader
from batchgen.server import LocalServer

TWINS = '{"prompt": "same", "seed": -1}\n' * 3


def closed_url() -> str:
    """A URL on a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def post_directly(server: LocalServer, params: dict[str, object]) -> str:
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.base_url}/v2/{MODEL}", json=params, headers={"x-api-key": server.api_key},
    ) as answer:
        return str((await answer.json())["request_id"])


def db_of(out: Path) -> Path:
    return out / ".batchgen" / "state.db"


async def test_identical_interrupted_submits_are_adopted_and_delivered(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Three identical items whose accepted POSTs were lost are all adopted on the next
    run and delivered: no deadlock, nothing paid twice."""
    server = await local_server(drop_after_rate=1.0)
    manifest = write_manifest(tmp_path / "m.jsonl", TWINS)
    out = tmp_path / "out"
    # The connections die after each POST is accepted, and the history cannot be read:
    # the run cannot tell, and leaves all three in doubt.
    first = await batchgen.run(manifest, out=out, base_url=server.base_url,
                               api_key=server.api_key, history_url=closed_url(),
                               progress=False, rpm=6000, poll_first_s=0.05,
                               retry_base_delay_s=0.001, history_wait_s=0.2)
    assert first["exit_code"] == 1
    assert [r.state for r in await records(db_of(out))] == ["in_doubt"] * 3
    assert accepted(server) == 3
    second = await run(server, manifest, out)
    assert second["exit_code"] == 0
    assert second["adopted_from_history"] == 3
    assert second["possible_duplicate_charges"] == 0
    assert accepted(server) == 3
    assert sorted(line["request_id"] for line in results(out)) == sorted(
        r.request_id or "" for r in await records(db_of(out)))
    assert len({line["request_id"] for line in results(out)}) == 3


async def test_fewer_jobs_than_identical_doubts_resends_only_the_rest(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Three identical items in doubt and two matching jobs: two adoptions, and only the
    third is sent again, counted as a possible duplicate charge."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.jsonl", TWINS)
    items = list(ManifestReader(manifest).items())
    intent_at = server.state.clock.wall() - 5
    await seed(db_of(tmp_path / "out"), items, TO_IN_DOUBT, intent_at=intent_at)
    for _ in range(2):
        await post_directly(server, items[0].params)
    summary = await run(server, manifest, tmp_path / "out")
    assert summary["adopted_from_history"] == 2
    assert summary["possible_duplicate_charges"] == 1
    assert summary["items"]["completed"] == 3
    assert accepted(server) == 3
    assert len({line["request_id"] for line in results(tmp_path / "out")}) == 3


async def test_sigterm_at_the_rate_limit_sends_nothing_more_and_leaves_no_doubt(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Items waiting for a rate permit when SIGTERM comes are never sent and stay pending
    (not in doubt): the next run finishes them with no history look-up, no duplicate."""
    server = await local_server()
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 10)
    out = tmp_path / "out"
    child = start_child(server, manifest, out, "--rpm", "6", "--concurrency", "10",
                        "--drain-timeout", "3")
    assert await watch(child, lambda: accepted(server) >= 1)
    child.send_signal(signal.SIGTERM)
    assert await finish(child) == 143, child_log(manifest)
    assert accepted(server) == 1  # the next permit was 10 s away: nothing left after
    states = [r.state for r in await records(db_of(out))]
    assert not OUTCOME_UNKNOWN & set(states), states
    assert states.count(PENDING) == 9
    child = start_child(server, manifest, out)
    assert await finish(child) == 0, child_log(manifest)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["in_doubt_submits"] == 0
    assert server.stats()["history"] == {}
    assert server.stats()["duplicate_bodies"] == 0
    assert accepted(server) == 10


async def test_sigkill_while_waiting_for_permits_leaves_no_false_doubt(
    local_server: StartServer, tmp_path: Path
) -> None:
    """kill -9 while items wait at the rate limiter: only a POST that may really have
    left can come back in doubt, and the resume pays for nothing twice."""
    server = await local_server()
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 10)
    out = tmp_path / "out"
    child = start_child(server, manifest, out, "--rpm", "6", "--concurrency", "10")
    assert await watch(child, lambda: accepted(server) >= 1)
    child.kill()
    await finish(child)
    states = [r.state for r in await records(db_of(out))]
    assert sum(s in OUTCOME_UNKNOWN for s in states) <= 1, states
    child = start_child(server, manifest, out)
    assert await finish(child) == 0, child_log(manifest)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["possible_duplicate_charges"] == 0
    assert server.stats()["duplicate_bodies"] == 0
    assert len(results(out)) == 10


async def test_no_post_leaves_after_the_deadline(local_server: StartServer,
                                                 tmp_path: Path) -> None:
    """Items already waiting at the rate limiter when the deadline passes are not sent."""
    server = await local_server()
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 10)
    deadline = time.time() + 3.0
    summary = await batchgen.run(manifest, out=tmp_path / "out", base_url=server.base_url,
                                 api_key=server.api_key, history_url=server.base_url,
                                 progress=False, rpm=30, concurrency=10, poll_first_s=0.05,
                                 submit_until_wall=deadline)
    assert summary["stop_reason"] == "deadline"
    assert summary["exit_code"] == 0
    # At 30 RPM a permit every 2 s: at t=0 and t=2, and the next would be past t=3.
    assert accepted(server) == 2
    assert summary["items"]["completed"] == 2
    assert summary["items"]["pending"] == 8


async def test_a_failed_redownload_is_not_reported_completed(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A finished item whose image is gone and cannot be fetched again is no longer
    "completed" in results.jsonl or the summary, and the run exits 1."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree, a red fox]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    lost = out / results(out)[0]["files"][0]["path"]
    lost.unlink()
    await server.close()  # its image host is gone with it
    summary = await run(server, manifest, out, retry_base_delay_s=0.001)
    assert summary["exit_code"] == 1
    assert summary["items"]["completed"] == 1
    assert summary["items"]["unfinished"] == 1
    lines = results(out)
    assert [line["status"] for line in lines] == ["completed"]
    assert (out / lines[0]["files"][0]["path"]).exists()


async def test_same_size_overwrite_is_found_and_downloaded_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """An image with 100 bytes overwritten in place (same size) is noticed on resume and
    downloaded again from its stored URL, with no new submit."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    image = out / results(out)[0]["files"][0]["path"]
    good = image.read_bytes()
    with image.open("r+b") as handle:
        handle.seek(len(good) // 2)
        handle.write(b"\0" * 100)
    assert image.stat().st_size == len(good) and image.read_bytes() != good
    summary = await run(server, manifest, out)
    assert image.read_bytes() == good
    assert summary["this_run"]["redownloads"] == 1
    assert accepted(server) == 1
    untouched = await run(server, manifest, out)  # a file left alone is not hashed again
    assert untouched["this_run"]["redownloads"] == 0


async def test_a_refused_model_fails_its_items_and_the_others_run(
    local_server: StartServer, tmp_path: Path
) -> None:
    """One misspelled model slug (404) fails that model's items, sending only one of
    them even with many in flight; the other model's items all complete, exit 1."""
    server = await local_server()
    lines = [json.dumps({"prompt": f"p{n}", **({"model": "sd15-epicrealsim"} if n % 3 == 0
                                                 else {})}) for n in range(30)]
    manifest = write_manifest(tmp_path / "m.jsonl", "\n".join(lines) + "\n")
    summary = await run(server, manifest, tmp_path / "out", concurrency=16)
    assert summary["exit_code"] == 1
    assert summary["items"]["completed"] == 20
    assert summary["items"]["failed"] == 10
    assert summary["errors_by_cause"] == {"model_refused": 10}
    assert server.stats()["submits_rejected"] == {"404": 1}
    failed = [line for line in results(tmp_path / "out") if line["status"] == "failed"]
    assert all("404" in line["error"] for line in failed)


async def test_another_outs_identical_job_is_not_a_reason_to_pay_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """The same body sent into another OUT a minute before: a lost submit here is
    matched by the server's clock to its own job only, adopted, and nothing is resent."""
    from batchgen.clock import ManualClock

    clock = ManualClock(wall_start=time.time())
    server = await local_server(clock=clock, latency_s=0.0, drop_after_submits=(2,))
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    first = await run(server, manifest, tmp_path / "out-a")
    assert first["items"]["completed"] == 1
    clock.advance(60.0)  # the server's clock: its Date headers say so
    second = await run(server, manifest, tmp_path / "out-b")
    assert second["in_doubt_submits"] == 1
    assert second["adopted_from_history"] == 1
    assert second["possible_duplicate_charges"] == 0
    assert second["items"]["completed"] == 1
    assert accepted(server) == 2


async def test_an_unreadable_result_keeps_the_job_for_the_next_run(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A 200 result that is not JSON is retried like a 5xx and then left with its request
    id (not failed, so --retry-failed cannot pay for it again); once the server answers
    properly, the next run delivers it with no new submit."""
    state = tmp_path / "server-state"
    broken = await local_server(garbled_result_rate=1.0, state_dir=state)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    out = tmp_path / "out"
    first = await run(broken, manifest, out, retry_base_delay_s=0.001)
    assert first["exit_code"] == 1
    assert first["items"]["failed"] == 0 and first["items"]["unfinished"] == 1
    [row] = await records(db_of(out))
    assert row.state == "submitted" and row.request_id
    await broken.close()
    mended = await local_server(state_dir=state)  # the same jobs, a new port
    second = await run(mended, manifest, out, rebase_stored_urls=True, retry_failed=True)
    assert second["items"]["completed"] == 1
    assert second["this_run"]["submits"] == 0
    assert results(out)[0]["request_id"] == row.request_id


async def test_a_result_for_another_request_is_not_delivered(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A server that answers another job's result under our request id (a reused id)
    does not get its images delivered as ours: the items fail as bad results."""
    server = await local_server(wrong_result_rate=1.0)
    await post_directly(server, {"prompt": "somebody else's request"})
    manifest = write_manifest(tmp_path / "m.yaml", "items: [one, two, three]\n")
    summary = await run(server, manifest, tmp_path / "out", concurrency=1)
    assert summary["exit_code"] == 1
    assert summary["items"]["completed"] == 0
    assert summary["errors_by_cause"] == {"bad_result": 3}
    assert list((tmp_path / "out" / "images").glob("*.png")) == []


async def test_remaining_credits_are_the_newest(local_server: StartServer,
                                                tmp_path: Path) -> None:
    """The balance reported is the one after the last job to finish, not the last one
    read (results fetched out of order carry older balances)."""
    server = await local_server(credits=100.0, cost_per_image=1.0, latency_s=0.05,
                                jitter=0.9, workers=16)
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 24)
    summary = await run(server, manifest, tmp_path / "out", concurrency=16)
    assert summary["items"]["completed"] == 24
    assert summary["credits"]["remaining"] == pytest.approx(100.0 - 24.0)


async def test_a_bad_key_with_a_lost_first_submit_exits_3(local_server: StartServer,
                                                          tmp_path: Path) -> None:
    """A submit lost on the way, then the history refusing the key (401): the same fatal
    answer as a submit's 401, exit 3, not a retry-later exit 1."""
    # Seed 2 drops the first request (the submit) and lets the next (the history) in.
    server = await local_server(drop_before_rate=0.5, rng_seed=2)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    summary = await batchgen.run(manifest, out=tmp_path / "out", base_url=server.base_url,
                                 api_key="SG_wrong_key", history_url=server.base_url,
                                 progress=False, rpm=6000, history_wait_s=0.2,
                                 poll_first_s=0.05)
    assert summary["exit_code"] == 3
    assert "401" in (summary["fatal_error"] or "")


async def test_max_cost_holds_when_the_price_depends_on_the_parameters(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Cheap jobs first, then jobs eight times the work: --max-cost prices each job by
    its own parameters and stops before the cap, not five times past it."""
    server = await local_server(pricing="gpu", cost_per_image=0.01)
    small = [{"prompt": f"small {n}"} for n in range(20)]
    big = [{"prompt": f"big {n}", "img_width": 1024, "img_height": 1024,
            "num_inference_steps": 40, "samples": 2} for n in range(20)]
    manifest = write_manifest(tmp_path / "m.jsonl",
                              "".join(json.dumps(line) + "\n" for line in small + big))
    summary = await run(server, manifest, tmp_path / "out", max_cost=0.5, concurrency=4)
    assert summary["stop_reason"] == "max_cost"
    assert summary["credits"]["spent_this_run"] <= 0.5
    assert summary["items"]["completed"] > 20  # the budget bought big jobs too


async def test_retry_failed_asks_the_history_before_paying_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """An item that failed in doubt (--on-in-doubt fail) and is retried with
    --retry-failed adopts the job its lost submit created: nothing is paid twice."""
    from batchgen.clock import ManualClock

    clock = ManualClock(wall_start=time.time())  # the server's: its history lags by it
    server = await local_server(clock=clock, latency_s=0.0, drop_after_submits=(1,),
                                history_lag_s=1.0)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    out = tmp_path / "out"
    first = await run(server, manifest, out, on_in_doubt="fail", history_wait_s=0.1)
    assert first["items"]["failed"] == 1
    assert "may pay twice" in (out / "failed.jsonl").read_text()
    clock.advance(1.5)  # the history catches up
    second = await run(server, manifest, out, on_in_doubt="fail", retry_failed=True)
    assert second["items"]["completed"] == 1
    assert second["adopted_from_history"] == 1
    assert accepted(server) == 1


async def test_a_duplicate_charge_is_counted_in_the_credits(local_server: StartServer,
                                                            tmp_path: Path) -> None:
    """A lost submit whose job the lagging history did not show in time is sent again;
    the job found afterwards is counted as paid in the summary's credits."""
    from conftest import until

    from batchgen.clock import ManualClock

    clock = ManualClock(wall_start=time.time())  # the server's: its history lags by it
    server = await local_server(clock=clock, latency_s=0.0, drop_after_submits=(1,),
                                history_lag_s=1.0, cost_per_image=0.25)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")

    async def catch_up() -> None:
        await until(lambda: accepted(server) >= 2, turns=10_000_000)
        clock.advance(1.5)  # once the item was sent again, the history shows the first

    async with anyio.create_task_group() as tg:
        tg.start_soon(catch_up)
        summary = await run(server, manifest, tmp_path / "out", history_wait_s=0.2)
    assert summary["possible_duplicate_charges"] == 1
    assert summary["duplicate_charges_found"] == 1
    assert summary["credits"]["spent_this_run"] == pytest.approx(0.5)
    assert summary["credits"]["duplicates"] == pytest.approx(0.25)
    assert accepted(server) == 2
    from batchgen.report.status import read_status

    assert read_status(tmp_path / "out")["credits_spent"] == pytest.approx(0.5)
