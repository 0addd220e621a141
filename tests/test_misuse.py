"""Ordinary misuse must not cost money or records (issue 16): each end to end."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import StartServer
from test_crash import accepted
from test_run import results, run, write_manifest

from batchgen import cli


async def test_an_unwritable_images_folder_sends_nothing(
    local_server: StartServer, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When OUT/images cannot take a file, the run says so before any submit."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").write_text("a file where the folder should be")
    monkeypatch.setenv("SEGMIND_API_KEY", server.api_key)
    argv = ["run", str(manifest), "-o", str(out), "--base-url", server.base_url,
            "--no-progress"]
    code = await anyio.to_thread.run_sync(cli.main, argv)  # it runs its own event loop
    assert code == 1
    assert "images" in capsys.readouterr().err
    assert accepted(server) == 0


async def test_a_full_disk_stops_paying_and_the_paid_jobs_resume(
    local_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images that cannot be written stop the submits after a few in a row; the paid
    jobs are delivered by the next run without being paid again."""
    from batchgen.engine import deliver

    def disk_full(temp: Path, final: Path, *args: Any, **options: Any) -> int:
        temp.unlink()
        raise OSError(errno.ENOSPC, "No space left on device", str(final))

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml",
                              "items: [" + ", ".join(f"p{n}" for n in range(20)) + "]\n")
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(deliver, "_place", disk_full)
        first = await run(server, manifest, out, concurrency=2)
    assert first["stop_reason"] == "images_unwritable"
    assert first["exit_code"] == 1
    paid = accepted(server)
    assert 3 <= paid < 20
    second = await run(server, manifest, out)
    assert second["items"]["completed"] == 20
    assert accepted(server) == 20  # the paid ones were downloaded, not sent again
    assert server.stats()["duplicate_bodies"] == 0


async def test_editing_an_item_with_an_explicit_id_generates_it_again(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A finished item whose parameters changed under the same id is generated again;
    its old image is set aside, not overwritten, and the summary counts it."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", (
        "defaults: {num_inference_steps: 25}\n"
        "items: [{id: fox, prompt: a red fox}, {id: owl, prompt: an owl}]\n"))
    out = tmp_path / "out"
    await run(server, manifest, out)
    old = (out / "images" / "fox.png").read_bytes()
    write_manifest(manifest, (
        "defaults: {num_inference_steps: 25}\n"
        "items: [{id: fox, prompt: a red fox in snow}, {id: owl, prompt: an owl}]\n"))
    summary = await run(server, manifest, out)
    assert summary["this_run"]["changed"] == 1
    assert accepted(server) == 3
    [aside] = (out / "replaced").iterdir()
    assert aside.read_bytes() == old
    fox = next(line for line in results(out) if line["id"] == "fox")
    assert fox["params"]["prompt"] == "a red fox in snow"
    assert (out / "images" / "fox.png").read_bytes() != old


async def test_keep_changed_keeps_the_old_result(local_server: StartServer,
                                                 tmp_path: Path) -> None:
    """With --keep-changed an edited finished item is left as it was, and counted."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [{id: fox, prompt: a fox}]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    write_manifest(manifest, "items: [{id: fox, prompt: a fox, seed: 3}]\n")
    summary = await run(server, manifest, out, keep_changed=True)
    assert summary["this_run"]["changed_kept"] == 1
    assert accepted(server) == 1


async def test_counts_are_this_manifests(local_server: StartServer, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """An OUT reused for another manifest counts only this manifest's items as done,
    the rest as not in the manifest, and says so."""
    server = await local_server()
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "a.yaml", "items: [one, two, three]\n"), out)
    summary = await run(server, write_manifest(tmp_path / "b.yaml", "items: [one, four]\n"),
                        out)
    assert summary["items"]["in_manifest"] == 2
    assert summary["items"]["completed"] == 2
    assert summary["items"]["not_in_manifest"] == 2
    assert "was last run with" in caplog.text


@pytest.mark.parametrize("damage", ["removed", "emptied"])
async def test_a_lost_checkpoint_is_rebuilt_and_nothing_is_paid_again(
    local_server: StartServer, tmp_path: Path, damage: str
) -> None:
    """With OUT/.batchgen removed or state.db emptied, the run rebuilds the checkpoint
    from results.jsonl and the images: no new submit, and results.jsonl keeps every line."""
    import shutil

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml",
                              "items: [" + ", ".join(f"p{n}" for n in range(12)) + "]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    before = {line["id"]: line["files"] for line in results(out)}
    if damage == "removed":
        shutil.rmtree(out / ".batchgen")
    else:
        (out / ".batchgen" / "state.db").write_bytes(b"")
        for extra in (out / ".batchgen").glob("state.db-*"):
            extra.unlink()
    write_manifest(manifest, "items: [" + ", ".join(f"p{n}" for n in range(14)) + "]\n")
    summary = await run(server, manifest, out)
    assert accepted(server) == 14  # only the two new items
    assert summary["this_run"]["skipped_done"] == 12
    after = {line["id"]: line["files"] for line in results(out)}
    assert set(before) <= set(after) and len(after) == 14


async def test_images_alone_rebuild_the_checkpoint(local_server: StartServer,
                                                   tmp_path: Path) -> None:
    """Without the checkpoint and without results.jsonl, the record embedded in each image
    tells which items are done: nothing is paid for again."""
    import shutil

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [{prompt: a, samples: 2}, b]\n")
    out = tmp_path / "out"
    await run(server, manifest, out)
    shutil.rmtree(out / ".batchgen")
    (out / "results.jsonl").unlink()
    summary = await run(server, manifest, out)
    assert accepted(server) == 2
    assert summary["items"]["completed"] == 2
    assert len(results(out)) == 2


async def test_a_damaged_checkpoint_says_how_to_recover(
    local_server: StartServer, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state.db that is not a database stops the run before any submit, with the
    remedy in the message."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    out = tmp_path / "out"
    (out / ".batchgen").mkdir(parents=True)
    (out / ".batchgen" / "state.db").write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("SEGMIND_API_KEY", server.api_key)
    argv = ["run", str(manifest), "-o", str(out), "--base-url", server.base_url,
            "--no-progress"]
    code = await anyio.to_thread.run_sync(cli.main, argv)
    assert code == 1
    assert "move it aside" in capsys.readouterr().err
    assert accepted(server) == 0


async def test_a_checkpoint_lost_with_jobs_in_flight_pays_for_none_twice(
    local_server: StartServer, tmp_path: Path
) -> None:
    """kill -9 with jobs in flight, then `rm -rf OUT/.batchgen`: the rebuilt checkpoint
    finds the killed run's jobs in the account history and adopts them."""
    import shutil

    from test_crash import finish, jsonl_manifest, start_child, watch

    server = await local_server(latency_s=2.0, workers=32)
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 40)
    out = tmp_path / "out"
    child = start_child(server, manifest, out, "--concurrency", "16")
    images = out / "images"
    assert await watch(child, lambda: accepted(server) >= 20 and any(images.glob("*.png")))
    child.kill()
    await finish(child)
    shutil.rmtree(out / ".batchgen")
    child = start_child(server, manifest, out)
    assert await finish(child) == 0, (tmp_path / "child.log").read_text()[-3000:]
    stats = server.stats()
    assert stats["duplicate_bodies"] == 0
    assert stats["submits_accepted"] == 40
    assert len(results(out)) == 40


async def test_literal_braces_survive_failed_jsonl_and_import(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A prompt with escaped template characters is written to failed.jsonl and read back
    by `import` as it was sent (expand: none): the same ids, the same prompts."""
    from batchgen.cli import images
    from batchgen.manifest.reader import ManifestReader

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", (
        "items:\n"
        "  - {id: lit, prompt: 'a still life, \\{studio light\\}, \\_\\_init\\_\\_ [[fail]]'}\n"
        "  - {id: two, prompt: 'a still life, \\{studio light\\}, 100\\% \\{a\\|b\\}'}\n"))
    out = tmp_path / "out"
    await run(server, manifest, out)
    sent = {line["id"]: line["params"]["prompt"] for line in results(out)}
    failed = list(ManifestReader(out / "failed.jsonl").items())
    assert [(i.id, i.params["prompt"]) for i in failed] == [
        (key, sent[key]) for key in sent if key.startswith("lit")]
    parser = __import__("argparse").ArgumentParser()
    images.register(parser.add_subparsers())
    imported = tmp_path / "imported.jsonl"
    ns = parser.parse_args(["import", str(out / "images"), "-o", str(imported)])
    assert ns.handler(ns) == 0
    back = list(ManifestReader(imported).items())
    done = {key: value for key, value in sent.items() if not key.startswith("lit")}
    assert {i.id: i.params["prompt"] for i in back} == done
