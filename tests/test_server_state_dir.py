"""A state directory keeps jobs, history, files and balance across a server restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchgen.server import FAIL_MARKER, ServerConfig, StateDirError, start_server

DAY = 86_400.0


def _journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("jobs-*.jsonl"))


async def _restart(local_server, server, **fields):
    """Close ``server`` and start another on the same state directory and clock."""
    await server.close()
    return await local_server(server.config, clock=server.state.clock, **fields)


async def test_jobs_survive_a_restart(local_server, api, clock, tmp_path: Path) -> None:
    """Finished, failed and running jobs answer the same after a restart, files included."""
    first = await local_server(clock=clock, state_dir=tmp_path, workers=1, latency_s=10.0)
    client = api(first)
    done = (await client.submit({"prompt": "done", "seed": -1, "samples": 2})).json()
    failed = (await client.submit({"prompt": f"bad {FAIL_MARKER}"})).json()
    running = (await client.submit({"prompt": "running"})).json()
    clock.advance(35)
    before = (await client.result(done["request_id"])).json()
    image = (await client.download(before["images"][1]["url"]))[1]
    second = await _restart(local_server, first)
    client = api(second)
    assert second.base_url != first.base_url
    after = (await client.result(done["request_id"])).json()
    assert after["seed"] == before["seed"]
    assert after["metrics"] == before["metrics"]
    assert after["images"][1]["url"] == before["images"][1]["url"].replace(
        first.base_url, second.base_url)
    assert (await client.download(after["images"][1]["url"]))[1] == image
    assert (await client.status(failed["request_id"])).status == 422
    assert (await client.status(running["request_id"])).json()["status"] == "PROCESSING"
    clock.advance(5)
    assert (await client.status(running["request_id"])).json()["status"] == "COMPLETED"
    assert second.stats()["jobs_completed"] == 2


async def test_history_and_counters_after_a_restart(local_server, api, clock, tmp_path) -> None:
    """History rows and accepted_by_body cover the jobs of the previous process."""
    first = await local_server(clock=clock, state_dir=tmp_path, latency_s=0.0)
    rid = (await api(first).submit({"prompt": "kept", "seed": 3})).json()["request_id"]
    second = await _restart(local_server, first)
    (row,) = (await api(second).history()).json()["data"]
    assert (row["request_id"], row["request_body"]) == (rid, {"prompt": "kept", "seed": 3})
    assert row["generation_url"].startswith(second.base_url)
    assert second.stats()["accepted_by_body"] == {
        'sd1.5-epicrealism {"prompt":"kept","seed":3}': 1
    }


async def test_retention_counts_by_the_wall_clock(local_server, api, clock, tmp_path) -> None:
    """Time passed while stopped counts: the v2 record expires, then history, then the file."""
    config = {"clock": clock, "state_dir": tmp_path, "retention_s": 3600.0,
              "history_retention_s": DAY}
    first = await local_server(**config)
    old = (await api(first).submit({"prompt": "old"})).json()["request_id"]
    await first.close()
    clock.advance(3600)
    second = await local_server(**config)
    assert (await api(second).status(old)).status == 404
    path = f"/inference-request/request-history/{old}"
    assert (await api(second).request("GET", path)).status == 200
    clock.advance(2 * DAY)
    await api(second).submit({"prompt": "new"})
    third = await _restart(local_server, second)
    assert (await api(third).request("GET", path)).status == 404
    assert len(_journal_files(tmp_path)) == 1


async def test_balance_continues(local_server, api, clock, tmp_path: Path) -> None:
    """The balance is the directory's: a restart with other credits does not reset it."""
    first = await local_server(clock=clock, state_dir=tmp_path, credits=3.0,
                               cost_per_image=1.0, pricing="gpu", workers=2, latency_s=1.0)
    await api(first).submit({"prompt": "a", "num_inference_steps": 40})
    quick = (await api(first).submit({"prompt": "b"})).json()["request_id"]
    second = await _restart(local_server, first, credits=1000.0)
    client = api(second)
    assert (await client.submit({"prompt": "c"})).status == 406
    clock.advance(1)
    assert (await client.status(quick)).json()["metrics"]["remaining_credits"] == 2.0


async def test_workers_stay_busy_across_a_restart(local_server, api, clock, tmp_path) -> None:
    """A job accepted after a restart queues behind the jobs still running."""
    first = await local_server(clock=clock, state_dir=tmp_path, workers=1, latency_s=10.0)
    await api(first).submit({"prompt": "long"})
    clock.advance(1)
    second = await _restart(local_server, first)
    rid = (await api(second).submit({"prompt": "next"})).json()["request_id"]
    assert (await api(second).status(rid)).json()["status"] == "QUEUED"
    clock.advance(9)
    assert (await api(second).status(rid)).json()["status"] == "PROCESSING"


async def test_one_server_per_directory(local_server, tmp_path: Path) -> None:
    """A second server on a directory in use is refused, and saying so names it."""
    await local_server(state_dir=tmp_path)
    with pytest.raises(StateDirError, match=str(tmp_path)) as info:
        await start_server(ServerConfig(state_dir=tmp_path))
    assert info.value.busy


async def test_a_torn_line_is_skipped(local_server, api, clock, tmp_path: Path) -> None:
    """A line cut short by a crash is skipped; jobs before and after it load."""
    first = await local_server(clock=clock, state_dir=tmp_path)
    before = (await api(first).submit({"prompt": "before"})).json()["request_id"]
    await first.close()
    (journal,) = _journal_files(tmp_path)
    with journal.open("ab") as out:
        out.write(b'{"id": "torn", "slug": "sd1.5-epi')
    second = await local_server(clock=clock, state_dir=tmp_path)
    after = (await api(second).submit({"prompt": "after"})).json()["request_id"]
    third = await _restart(local_server, second)
    rows = (await api(third).history()).json()["data"]
    assert [r["request_id"] for r in rows] == [after, before]


async def test_unwritable_journal_accepts_nothing(local_server, api, clock, tmp_path) -> None:
    """When the job cannot be written the submit answers 500 and no job exists."""
    today = datetime.fromtimestamp(clock.wall(), UTC).date().isoformat()
    (tmp_path / f"jobs-{today}.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    server = await local_server(clock=clock, state_dir=tmp_path)
    answer = await api(server).submit()
    assert answer.status == 500
    assert (server.stats()["submits_accepted"], len(server.state.book)) == (0, 0)

