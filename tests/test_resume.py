"""Resume and recovery: every case where a job exists that the client lost track of."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import StartServer
from stores import TO_IN_DOUBT, TO_SUBMITTED, TO_SUBMITTING, records, seed
from test_run import results, run, write_manifest

from batchgen import cli
from batchgen.clock import ManualClock
from batchgen.errors import ManifestError
from batchgen.manifest.reader import ManifestReader
from batchgen.server import FAIL_MARKER, LocalServer


async def post_directly(server: LocalServer, params: dict[str, Any]) -> str:
    """Submit as a crashed run would have: the server has the job, the store no id."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.base_url}/v2/sd1.5-epicrealism", json=params,
        headers={"x-api-key": server.api_key},
    ) as answer:
        body = await answer.json()
    return str(body["request_id"])


async def seed_store(out: Path, manifest: Path, events: tuple[str, ...],
                     **values: Any) -> str:
    """Put the manifest's single item into OUT's store through ``events``; returns its id."""
    [item] = list(ManifestReader(manifest).items())
    await seed(out / ".batchgen" / "state.db", [item], events, **values)
    return item.id


async def run_then_lose_image(server: LocalServer, manifest: Path,
                              out: Path) -> tuple[Path, bytes]:
    """Run a one-item manifest, then delete its image; the path and the bytes it had."""
    await run(server, manifest, out)
    [line] = results(out)
    image = out / line["files"][0]["path"]
    before = image.read_bytes()
    image.unlink()
    return image, before


def item_params(manifest: Path) -> dict[str, Any]:
    [item] = list(ManifestReader(manifest).items())
    return item.params


async def test_submitted_job_is_picked_up_by_request_id(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A stored request id is polled and fetched on resume, with no new POST."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    request_id = await post_directly(server, item_params(manifest))
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTED, request_id=request_id,
                     submitted_at=time.time())
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 1
    assert summary["items"]["completed"] == 1
    assert summary["this_run"]["resumed_jobs"] == 1


async def test_in_doubt_intent_is_adopted_from_history(
    local_server: StartServer, tmp_path: Path
) -> None:
    """An intent with no request id whose job exists is adopted: no duplicate submit."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    await post_directly(server, item_params(manifest))
    intent_at = server.state.clock.wall() - 5
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTING, intent_at=intent_at)
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 1
    assert summary["adopted_from_history"] == 1
    assert summary["possible_duplicate_charges"] == 0
    assert summary["items"]["completed"] == 1


async def test_in_doubt_without_job_is_resubmitted_and_counted(
    local_server: StartServer, tmp_path: Path
) -> None:
    """An intent whose POST never arrived is sent again and counted as possible duplicate."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    await seed_store(tmp_path / "out", manifest, TO_IN_DOUBT, intent_at=1.0)
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 1
    assert summary["possible_duplicate_charges"] == 1
    assert summary["items"]["completed"] == 1


async def test_in_doubt_policy_fail(local_server: StartServer, tmp_path: Path) -> None:
    """With --on-in-doubt fail, an unreconciled intent fails instead of being resent."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    await seed_store(tmp_path / "out", manifest, TO_IN_DOUBT, intent_at=1.0)
    summary = await run(server, manifest, tmp_path / "out", on_in_doubt="fail")
    assert server.stats()["submits_accepted"] == 0
    assert summary["items"]["failed"] == 1


async def test_live_dropped_submit_is_adopted(local_server: StartServer, tmp_path: Path) -> None:
    """Submits accepted and then dropped are found in the history: nothing paid twice."""
    server = await local_server(drop_after_rate=1.0)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [one, two, three]\n")
    summary = await run(server, manifest, tmp_path / "out")
    stats = server.stats()
    assert stats["submits_accepted"] == 3
    assert stats["duplicate_bodies"] == 0
    assert summary["adopted_from_history"] == 3
    assert summary["items"]["completed"] == 3


async def test_expired_record_is_recovered_from_history(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A job whose v2 record expired is delivered from the history with no new submit."""
    clock = ManualClock(wall_start=time.time())
    server = await local_server(clock=clock)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    request_id = await post_directly(server, item_params(manifest))
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTED, request_id=request_id,
                     submitted_at=clock.wall())
    clock.advance(server.config.retention_s + 1)
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 1
    assert summary["recovered_from_history"] == 1
    assert summary["items"]["completed"] == 1
    [line] = results(tmp_path / "out")
    assert line["request_id"] == request_id
    assert (tmp_path / "out" / line["files"][0]["path"]).stat().st_size > 0


async def test_expired_without_history_follows_policy(
    local_server: StartServer, tmp_path: Path
) -> None:
    """An expired id unknown to the history is resubmitted by default, once, and counted."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTED,
                     request_id="00000000-0000-4000-8000-000000000000", submitted_at=1.0)
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 1
    assert summary["this_run"]["resubmitted_after_expiry"] == 1
    assert summary["items"]["completed"] == 1


async def test_expired_policy_fail(local_server: StartServer, tmp_path: Path) -> None:
    """With --on-expired fail, an unrecoverable expired job fails and nothing is sent."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTED,
                     request_id="00000000-0000-4000-8000-000000000000", submitted_at=1.0)
    summary = await run(server, manifest, tmp_path / "out", on_expired="fail")
    assert server.stats()["submits_accepted"] == 0
    assert summary["items"]["failed"] == 1


async def test_failed_items_wait_for_retry_failed(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Failed items are left alone on resume, and run again with --retry-failed."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", f"items: ['x {FAIL_MARKER}', fine]\n")
    await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 2
    again = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 2
    assert again["this_run"]["skipped_failed"] == 1
    await run(server, manifest, tmp_path / "out", retry_failed=True)
    assert server.stats()["submits_accepted"] == 3


async def test_missing_image_is_downloaded_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A completed item whose file was deleted is downloaded again, not resubmitted."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    image, _ = await run_then_lose_image(server, manifest, tmp_path / "out")
    summary = await run(server, manifest, tmp_path / "out")
    assert image.exists()
    assert server.stats()["submits_accepted"] == 1
    assert summary["this_run"]["redownloads"] == 1


async def test_removed_items_are_reported_not_deleted(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Items dropped from the manifest stay in the store and are counted."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [one, two]\n")
    await run(server, manifest, tmp_path / "out")
    write_manifest(manifest, "items: [one]\n")
    summary = await run(server, manifest, tmp_path / "out")
    assert summary["items"]["not_in_manifest"] == 1
    assert len(results(tmp_path / "out")) == 2


async def test_status_json(local_server: StartServer, tmp_path: Path,
                           capsys: Any) -> None:
    """`batchgen status OUT --json` reports counts, images and credits of the store."""
    server = await local_server(cost_per_image=0.5)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [one, two]\n")
    await run(server, manifest, tmp_path / "out")
    capsys.readouterr()
    assert cli.main(["status", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"]["completed"] == 2
    assert report["images_on_disk"] == 2
    assert report["credits_spent"] == 1.0
    assert report["live"] is False
    assert report["last_run"]["exit_code"] == 0


async def test_unchanged_jsonl_is_not_validated_twice(
    local_server: StartServer, tmp_path: Path, monkeypatch: Any
) -> None:
    """Resuming an unchanged JSONL skips the separate validation pass; a changed one does not."""
    from batchgen.engine import prepare

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.jsonl", '{"prompt": "one"}\n{"prompt": "two"}\n')
    await run(server, manifest, tmp_path / "out")
    passes: list[Path] = []
    real = prepare.validate
    monkeypatch.setattr(prepare, "validate", lambda cfg: passes.append(cfg.manifest) or real(cfg))
    await run(server, manifest, tmp_path / "out")
    assert passes == []
    write_manifest(manifest, '{"prompt": "one"}\n{"prompt": "two", "samples": 9}\n')
    with pytest.raises(ManifestError):
        await run(server, manifest, tmp_path / "out")
    assert passes == [manifest]
    assert server.stats()["submits_accepted"] == 2


async def test_missing_base64_image_is_fetched_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A lost image of a base64 result is written again with no new submit."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [{prompt: inline, base64: true}]\n")
    image, before = await run_then_lose_image(server, manifest, tmp_path / "out")
    summary = await run(server, manifest, tmp_path / "out")
    assert image.read_bytes() == before
    assert server.stats()["submits_accepted"] == 1
    # From the stored image URL when the result listed one, else by fetching the result.
    assert summary["this_run"]["redownloads"] + summary["this_run"]["resumed_jobs"] == 1


async def test_expired_with_unreadable_history_is_not_paid_twice(
    local_server: StartServer, tmp_path: Path
) -> None:
    """When the history cannot be read, an expired job is left for later, never resent."""
    import socket

    import batchgen

    clock = ManualClock(wall_start=time.time())
    server = await local_server(clock=clock)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    request_id = await post_directly(server, item_params(manifest))
    await seed_store(tmp_path / "out", manifest, TO_SUBMITTED, request_id=request_id,
                     submitted_at=clock.wall())
    clock.advance(server.config.retention_s + 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    summary = await batchgen.run(manifest, out=tmp_path / "out", base_url=server.base_url,
                                 api_key=server.api_key, history_url=closed, progress=False,
                                 rpm=6000, poll_first_s=0.05, retry_base_delay_s=0.001)
    assert server.stats()["submits_accepted"] == 1
    assert summary["items"]["unfinished"] == 1
    assert summary["exit_code"] == 1
    record = await stored(tmp_path / "out", "a-lone-tree")
    assert record.request_id == request_id


async def stored(out: Path, prefix: str) -> Any:
    return next(r for r in await records(out / ".batchgen" / "state.db")
                if r.id.startswith(prefix))


async def test_leftover_temporary_files_are_removed(local_server: StartServer,
                                                    tmp_path: Path) -> None:
    """Temporary files a killed run left in OUT are cleared by the next run."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a lone tree]\n")
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    stale = [out / "images" / ".tmp-a-0-deadbeef", out / ".tmp-results.jsonl-cafe"]
    for path in stale:
        path.write_bytes(b"half")
    await run(server, manifest, out)
    assert not any(path.exists() for path in stale)
    assert list((out / "images").glob(".tmp-*")) == []


async def test_a_resume_that_changes_nothing_leaves_the_files_alone(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A resume with nothing to do does not rewrite results.jsonl, metadata.jsonl or the
    gallery (a million lines each, on a big OUT); one that delivers something does."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [one, two]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    files = [out / "results.jsonl", out / "images" / "metadata.jsonl", out / "gallery.html"]
    before = [path.stat().st_ino for path in files]
    await run(server, manifest, out)
    assert [path.stat().st_ino for path in files] == before
    (out / results(out)[0]["files"][0]["path"]).unlink()
    await run(server, manifest, out)
    assert all(path.stat().st_ino != ino for path, ino in zip(files, before, strict=True))
