"""End-to-end runs against the in-process local server."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import StartServer

import batchgen
from batchgen.errors import ManifestError, OutputLockedError
from batchgen.server import FAIL_MARKER, LocalServer
from batchgen.store.lock import hold

FAST = {"poll_first_s": 0.05, "poll_min_s": 0.02, "progress": False, "rpm": 6000,
        "history_wait_s": 0.2}


def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature and IHDR CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    chunk = data[16:16 + length]
    (crc,) = struct.unpack(">I", data[16 + length:20 + length])
    assert zlib.crc32(kind + chunk) == crc
    width, height = struct.unpack(">II", chunk[:8])
    return width, height


def results(out: Path) -> list[dict[str, Any]]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


async def run(server: LocalServer, manifest: Path, out: Path, **options: Any) -> dict[str, Any]:
    merged = {**FAST, **options}
    return await batchgen.run(manifest, out=out, base_url=server.base_url,
                              api_key=server.api_key, history_url=server.base_url, **merged)


SWEEP = """
defaults: {num_inference_steps: 20}
matrix: {seed: [1, 2]}
items:
  - id: tall
    prompt: a tall lighthouse
    img_height: 768
  - id: pair
    prompt: two foxes
    samples: 2
  - id: inline
    prompt: a base64 teapot
    base64: true
"""


async def test_sweep_with_samples_and_base64(local_server: StartServer, tmp_path: Path) -> None:
    """A sweep with samples > 1 and base64 output ends with every image valid on disk."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", SWEEP)
    summary = await run(server, manifest, tmp_path / "out")
    assert summary["exit_code"] == 0
    lines = results(tmp_path / "out")
    assert sorted(line["id"] for line in lines) == sorted(
        f"{name}.seed-{seed}" for name in ("tall", "pair", "inline") for seed in (1, 2))
    for line in lines:
        assert line["status"] == "completed"
        expected = 2 if line["id"].startswith("pair") else 1
        assert len(line["files"]) == expected
        for entry in line["files"]:
            data = (tmp_path / "out" / entry["path"]).read_bytes()
            assert len(data) == entry["bytes"]
            height = 768 if line["id"].startswith("tall") else 512
            assert png_size(data) == (512, height)
    assert server.stats()["duplicate_bodies"] == 0


async def test_second_run_submits_nothing(local_server: StartServer, tmp_path: Path) -> None:
    """Running the same manifest again into the same OUT sends no new submit."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", SWEEP)
    await run(server, manifest, tmp_path / "out")
    accepted = server.stats()["submits_accepted"]
    summary = await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == accepted
    assert summary["this_run"]["skipped_done"] == 6
    assert len(results(tmp_path / "out")) == 6


async def test_failed_job_is_recorded_with_server_message(
    local_server: StartServer, tmp_path: Path
) -> None:
    """A job the server FAILs is a failed item with the server's reason, and exit 1."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", f"items: ['fine', 'bad {FAIL_MARKER}']\n")
    summary = await run(server, manifest, tmp_path / "out")
    assert summary["exit_code"] == 1
    by_status = {line["status"]: line for line in results(tmp_path / "out")}
    assert set(by_status) == {"completed", "failed"}
    assert by_status["failed"]["error"]
    assert summary["items"]["failed"] == 1


async def test_bad_key_stops_with_exit_3(local_server: StartServer, tmp_path: Path) -> None:
    """A 401 stops the run: exit 3, nothing completed, nothing accepted."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c]\n")
    summary = await batchgen.run(manifest, out=tmp_path / "out", base_url=server.base_url,
                                 api_key="SG_wrong", **FAST)
    assert summary["exit_code"] == 3
    assert summary["items"]["completed"] == 0
    assert "401" in summary["fatal_error"]
    assert "SG_wrong" not in json.dumps(summary)
    assert server.stats()["submits_accepted"] == 0


async def test_invalid_manifest_sends_nothing(local_server: StartServer, tmp_path: Path) -> None:
    """A manifest with an error raises ManifestError and no request reaches the server."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [{prompt: x, samples: 9}]\n")
    with pytest.raises(ManifestError):
        await run(server, manifest, tmp_path / "out")
    assert server.stats()["submits_accepted"] == 0
    assert sum(server.stats()["submits_rejected"].values()) == 0


async def test_max_items_limits_new_submits(local_server: StartServer, tmp_path: Path) -> None:
    """--max-items N submits N items and leaves the rest pending with exit 0."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d, e]\n")
    summary = await run(server, manifest, tmp_path / "out", max_items=2, concurrency=1)
    assert server.stats()["submits_accepted"] == 2
    assert summary["items"]["pending"] == 3
    assert summary["stop_reason"] == "max_items"


async def test_max_cost_stops_before_passing_budget(
    local_server: StartServer, tmp_path: Path
) -> None:
    """--max-cost never lets spent plus in-flight cost pass the cap."""
    server = await local_server(cost_per_image=0.01)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c, d, e, f, g, h]\n")
    summary = await run(server, manifest, tmp_path / "out", max_cost=0.035, concurrency=4)
    assert summary["credits"]["spent_this_run"] <= 0.035
    assert summary["items"]["completed"] == 3
    assert summary["stop_reason"] == "max_cost"


async def test_second_run_on_locked_out_is_refused(
    local_server: StartServer, tmp_path: Path
) -> None:
    """While OUT is locked, a run raises OutputLockedError and sends nothing."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    out = tmp_path / "out"
    with hold(out / ".batchgen", out), pytest.raises(OutputLockedError):
        await run(server, manifest, out)
    assert server.stats()["submits_accepted"] == 0


async def test_faults_deliver_every_image(local_server: StartServer, tmp_path: Path) -> None:
    """5xx, dropped connections and truncated downloads: every item still lands once."""
    server = await local_server(error_500_rate=0.05, error_503_rate=0.05,
                                drop_before_rate=0.03, drop_after_rate=0.03,
                                truncate_rate=0.1, rng_seed=7)
    lines = "\n".join(json.dumps({"prompt": f"prompt {n}"}) for n in range(60))
    manifest = write_manifest(tmp_path / "m.jsonl", lines + "\n")
    summary = await run(server, manifest, tmp_path / "out", concurrency=8)
    assert summary["items"]["completed"] == 60
    assert len(results(tmp_path / "out")) == 60
    stats = server.stats()
    assert stats["duplicate_bodies"] <= summary["possible_duplicate_charges"]


async def test_thousand_items_under_faults(local_server: StartServer, tmp_path: Path) -> None:
    """1,000 items under 3% 5xx, 1% drops and 2% truncation: 1,000 valid images, no double pay."""
    server = await local_server(error_500_rate=0.01, error_502_rate=0.01, error_503_rate=0.01,
                                drop_before_rate=0.005, drop_after_rate=0.005,
                                truncate_rate=0.02, rng_seed=1000, workers=64)
    lines = "\n".join(json.dumps({"prompt": f"scene {n}", "seed": n}) for n in range(1000))
    manifest = write_manifest(tmp_path / "m.jsonl", lines + "\n")
    summary = await run(server, manifest, tmp_path / "out", concurrency=64)
    assert summary["items"]["completed"] == 1000
    done = results(tmp_path / "out")
    assert len({line["id"] for line in done}) == 1000
    for line in done:
        entry = line["files"][0]
        data = (tmp_path / "out" / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert png_size(data) == (512, 512)
    stats = server.stats()
    assert stats["faults"].get("truncate", 0) > 0
    assert stats["duplicate_bodies"] <= summary["possible_duplicate_charges"]


async def test_api_key_never_written(local_server: StartServer, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """The key appears in no log line, state file, result or summary, even on errors."""
    secret = "SG_secret_key_0123456789"
    server = await local_server(api_key=secret, error_500_rate=0.2, drop_after_rate=0.2,
                                rng_seed=4)
    manifest = write_manifest(tmp_path / "m.yaml", f"items: [a, b, c, 'd {FAIL_MARKER}']\n")
    caplog.set_level("DEBUG")
    await run(server, manifest, tmp_path / "out")
    await batchgen.run(manifest, out=tmp_path / "out2", base_url=server.base_url,
                       api_key=secret + "x", **FAST)
    assert secret not in caplog.text
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "out2").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


async def test_crash_still_writes_the_summary(local_server: StartServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error ends the run, but summary.json says so instead of going stale."""
    async def broken_sink(ctx: Any, receive: Any, results: Any) -> None:
        receive.close()
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("batchgen.engine.pipeline.sink_stage", broken_sink)
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        await run(server, manifest, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exit_code"] == 1
    assert "disk on fire" in summary["error"]


async def test_max_cost_is_per_run(local_server: StartServer, tmp_path: Path) -> None:
    """Each run into the same OUT gets its own --max-cost, priced from the last run."""
    server = await local_server(cost_per_image=0.01)
    out = tmp_path / "out"
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b, c]\n")
    first = await run(server, manifest, out, max_cost=0.035)
    assert first["items"]["completed"] == 3
    write_manifest(manifest, "items: [a, b, c, d, e, f, g]\n")
    second = await run(server, manifest, out, max_cost=0.025, concurrency=4)
    assert second["this_run"]["completed"] == 2
    assert second["credits"]["spent_this_run"] <= 0.025
    assert second["stop_reason"] == "max_cost"
    assert second["exit_code"] == 0


async def test_a_limited_run_stops_reading_the_manifest(local_server: StartServer,
                                                        tmp_path: Path) -> None:
    """--max-items 5 on a 5,000-line manifest reads no further than it needs: the store
    holds a chunk or two, and the summary still counts the whole manifest as pending."""
    from stores import records

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.jsonl", "".join(
        json.dumps({"prompt": f"prompt {n}"}) + "\n" for n in range(5000)))
    summary = await run(server, manifest, tmp_path / "out", max_items=5)
    assert summary["items"]["in_manifest"] == 5000
    assert summary["items"]["completed"] == 5
    assert summary["items"]["pending"] == 4995
    assert len(await records(tmp_path / "out" / ".batchgen" / "state.db")) <= 2048
