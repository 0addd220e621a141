"""`batchgen plan`: what a run would send and cost, checked against what the run then does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import StartServer
from test_run import run, write_manifest

from batchgen import cli
from batchgen.manifest.item import Item
from batchgen.server import FAIL_MARKER

# Teaches the price: steps, widths, heights and samples all vary.
FIRST = """
matrix: {num_inference_steps: [20, 35], img_width: [512, 1024]}
items:
  - {id: a, prompt: a lighthouse}
  - {id: b, prompt: two foxes, samples: 2, img_height: 768}
"""
# Other steps, sizes and samples than any job of FIRST.
SECOND = """
matrix: {num_inference_steps: [25, 50]}
items:
  - {id: c, prompt: a castle, samples: 3, img_width: 768, img_height: 1024}
  - {id: d, prompt: a cat, samples: 4, img_height: 1024}
  - {id: e, prompt: a boat, img_width: 1024, img_height: 1024}
"""
# The server prices GPU work (steps x pixels x samples); jitter moves times, not prices.
GPU = {"pricing": "gpu", "cost_per_image": 0.01, "latency_s": 0.005, "jitter": 0.5}


async def plan(*args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`batchgen plan ... --json`, run as the command line runs it."""
    capsys.readouterr()
    code = await anyio.to_thread.run_sync(cli.main, ["plan", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = json.loads(captured.out)
    return result


def within(expected: float, spent: float, share: float = 0.03) -> bool:
    return abs(expected - spent) <= share * spent


@pytest.mark.parametrize(("pricing", "kind"), [("gpu", "work"), ("image", "image")])
async def test_plan_after_a_run_is_within_3_percent(
        local_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, pricing: str, kind: str) -> None:
    """After a first run taught the price, plan on a manifest with other steps, sizes and
    samples is within 3% of what that run then spends, and sends nothing."""
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    server = await local_server(**(GPU | {"pricing": pricing}))
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "first.yaml", FIRST), out)
    second = write_manifest(tmp_path / "second.yaml", SECOND)
    before = server.stats()
    planned = await plan(str(second), "-o", str(out), capsys=capsys)
    assert server.stats()["submits_accepted"] == before["submits_accepted"]
    assert server.stats()["history"] == before["history"]  # OUT's jobs were enough
    price = planned["credits"]["prices"]["sd1.5-epicrealism"]
    assert (price["source"], price["jobs"], price["kind"]) == ("store", 8, kind)
    assert price["tied"] == [kind]
    assert planned["items"] | {"in_manifest": 6, "new": 6, "done": 0} == planned["items"]
    assert (planned["send"]["requests"], planned["send"]["images"]) == (6, 16)
    summary = await run(server, second, out)
    spent = summary["credits"]["spent_this_run"]
    assert summary["this_run"]["submits"] == planned["send"]["requests"]
    assert within(planned["credits"]["expected"], spent), (planned["credits"], spent)
    if pricing == "image":
        return
    # The first run's price per image would miss by far: the manifests tell models apart.
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    first = [line for line in lines if line["id"][0] in "ab"]
    per_image = (sum(line["metrics"]["cost"] for line in first)
                 / sum(len(line["files"]) for line in first))
    assert not within(per_image * 16, spent)


async def test_plan_learns_the_price_from_the_account_history(
        local_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An OUT with no finished job takes the price from the account's completed requests
    (each counted once, whatever its outputs) and is within 3% of the run."""
    server = await local_server(**GPU)
    await run(server, write_manifest(tmp_path / "first.yaml", FIRST), tmp_path / "other")
    monkeypatch.setenv("SEGMIND_API_KEY", server.api_key)
    second = write_manifest(tmp_path / "second.yaml", SECOND)
    out = tmp_path / "fresh"
    planned = await plan(str(second), "-o", str(out), "--base-url", server.base_url,
                         capsys=capsys)
    assert not out.exists()  # plan creates nothing
    assert server.stats()["history"]["list"] >= 1
    price = planned["credits"]["prices"]["sd1.5-epicrealism"]
    assert (price["source"], price["jobs"], price["kind"]) == ("history", 8, "work")
    summary = await run(server, second, out)
    assert within(planned["credits"]["expected"], summary["credits"]["spent_this_run"])


async def test_price_option_when_nothing_else_knows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without paid jobs and without a key, --price (credits per image) prices the plan;
    without it the credits are unknown and the plan says how to learn them."""
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    second = write_manifest(tmp_path / "second.yaml", SECOND)
    out = str(tmp_path / "out")
    priced = await plan(str(second), "-o", out, "--price", "0.5", capsys=capsys)
    assert priced["credits"]["expected"] == pytest.approx(0.5 * 16)
    assert priced["credits"]["prices"]["sd1.5-epicrealism"]["source"] == "option"
    unknown = await plan(str(second), "-o", out, capsys=capsys)
    assert unknown["credits"]["expected"] is None
    assert any("SEGMIND_API_KEY" in note for note in unknown["notes"])
    assert await anyio.to_thread.run_sync(cli.main, ["plan", str(second), "-o", out]) == 0
    assert "pass --price P" in capsys.readouterr().out


async def test_a_refused_key_is_said_and_never_shown(
        local_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The history refusing the key is a note, not a crash; --price then prices the plan,
    and the key appears nowhere in the output."""
    server = await local_server(**GPU)
    monkeypatch.setenv("SEGMIND_API_KEY", "SG_wrong_key_123")
    second = write_manifest(tmp_path / "second.yaml", SECOND)
    args = ["plan", str(second), "-o", str(tmp_path / "out"), "--base-url", server.base_url,
            "--price", "0.1"]
    assert await anyio.to_thread.run_sync(cli.main, args) == 0
    shown = capsys.readouterr()
    assert "the account history could not be read" in shown.out
    assert "from --price" in shown.out
    assert "SG_wrong_key_123" not in shown.out + shown.err


async def test_jobs_of_one_shape_plan_with_the_dearer_reading(
        local_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs all of 20 steps, 512x512, one sample cannot tell per image from per unit of
    work: a 40-step 1024x1024 manifest is planned at the dearer reading, and says so."""
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    server = await local_server(**GPU)
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "plain.yaml", "items: [a, b, c]\n"), out)
    big = write_manifest(tmp_path / "big.yaml", "defaults: {num_inference_steps: 40, "
                         "img_width: 1024, img_height: 1024}\nitems: [d, e]\n")
    planned = await plan(str(big), "-o", str(out), capsys=capsys)
    assert planned["credits"]["prices"]["sd1.5-epicrealism"]["kind"] == "work"
    assert len(planned["credits"]["prices"]["sd1.5-epicrealism"]["tied"]) == 5
    assert (planned["credits"]["expected"], planned["credits"]["low"]) == (
        pytest.approx(2 * 0.08), pytest.approx(2 * 0.01))
    assert await anyio.to_thread.run_sync(cli.main, ["plan", str(big), "-o", str(out)]) == 0
    assert "do not vary enough to tell" in capsys.readouterr().out
    summary = await run(server, big, out)
    assert within(planned["credits"]["expected"], summary["credits"]["spent_this_run"])


EDITED = """
items:
  - {id: keep, prompt: a lighthouse}
  - {id: edit, prompt: a fox, num_inference_steps: 40}
  - {id: bad, prompt: "a crash [[fail]]"}
  - {id: added, prompt: a new one, samples: 2}
"""


async def test_plan_counts_what_the_run_then_does(
        local_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Done, failed, new and changed items as the run then finds them: the edited item is
    generated again, the failed one left alone (or sent with --retry-failed)."""
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    server = await local_server(**GPU)
    out = tmp_path / "out"
    first = "items:\n  - {id: keep, prompt: a lighthouse}\n  - {id: edit, prompt: a fox}\n" \
            f"  - {{id: bad, prompt: \"a crash {FAIL_MARKER}\"}}\n"
    await run(server, write_manifest(tmp_path / "m.yaml", first), out)
    manifest = write_manifest(tmp_path / "m.yaml", EDITED)
    planned = await plan(str(manifest), "-o", str(out), "--rpm", "30", capsys=capsys)
    assert planned["items"] == {"in_manifest": 4, "new": 1, "pending": 0, "done": 2,
                                "failed": 1, "in_flight": 0, "changed": 1, "changed_kept": 0}
    assert planned["send"] == {"requests": 2, "images": 3, "failed_left": 1,
                               "jobs_in_flight_unpaid": 0}
    retried = await plan(str(manifest), "-o", str(out), "--retry-failed", capsys=capsys)
    assert (retried["send"]["requests"], retried["send"]["failed_left"]) == (3, 0)
    kept = await plan(str(manifest), "-o", str(out), "--keep-changed", capsys=capsys)
    assert (kept["items"]["changed"], kept["items"]["changed_kept"]) == (0, 1)
    assert kept["send"]["requests"] == 1
    summary = await run(server, manifest, out)
    assert summary["this_run"]["changed"] == planned["items"]["changed"]
    assert summary["this_run"]["submits"] == planned["send"]["requests"]
    assert within(planned["credits"]["expected"], summary["credits"]["spent_this_run"])


async def test_jobs_in_flight_are_counted_and_priced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs a killed run left submitted or in doubt will be billed: their stored bodies
    are priced; a paid job whose images are missing is not billed again."""
    from stores import TO_IN_DOUBT, TO_SUBMITTED, seed

    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    out = tmp_path / "out"
    db = out / ".batchgen" / "state.db"
    big = {"prompt": "x", "samples": 2, "img_width": 1024, "img_height": 512}
    await seed(db, [Item("s", "sd1.5-epicrealism", big, "m", 1)], TO_SUBMITTED,
               request_id="r1")
    await seed(db, [Item("d", "sd1.5-epicrealism", {"prompt": "y"}, "m", 2)], TO_IN_DOUBT)
    await seed(db, [Item("f", "sd1.5-epicrealism", {"prompt": "z"}, "m", 3)],
               (*TO_SUBMITTED, "fetched"), request_id="r3", cost=0.25)
    lines = [{"id": i, "prompt": p} for i, p in (("s", "x"), ("d", "y"), ("f", "z"))]
    manifest = write_manifest(tmp_path / "m.jsonl", "".join(json.dumps(x) + "\n"
                                                            for x in lines))
    planned = await plan(str(manifest), "-o", str(out), "--price", "1", capsys=capsys)
    assert planned["items"]["in_flight"] == 3
    assert planned["send"] == {"requests": 0, "images": 0, "failed_left": 0,
                               "jobs_in_flight_unpaid": 2}
    # The fetched job told the price (0.25 a reference image); "s" was sent with its stored
    # body (2 images of twice the pixels), not the manifest's.
    price = planned["credits"]["prices"]["sd1.5-epicrealism"]
    assert (price["source"], price["jobs"]) == ("store", 1)
    assert planned["credits"]["in_flight"] == pytest.approx(0.25 * (4 + 1))


def test_invalid_manifest_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest with errors is refused as by `run`, with file and line."""
    manifest = write_manifest(tmp_path / "m.yaml", "items:\n  - {prompt: a, samples: 9}\n")
    assert cli.main(["plan", str(manifest), "-o", str(tmp_path / "out")]) == 2
    assert "samples" in capsys.readouterr().err


async def test_plan_beside_a_live_run_takes_its_rate(tmp_path: Path) -> None:
    """A run still going has no summary yet: plan takes the --rpm it was given."""
    from batchgen.report.plan import rate
    from batchgen.store.db import Database
    from batchgen.store.planning import PlanStore
    from batchgen.store.runs import start_run

    db_path = tmp_path / "out" / ".batchgen" / "state.db"
    db = await Database.open(db_path)
    try:
        await start_run(db, manifest="m", manifest_hash="h", now=0.0, pid=1,
                        options={"rpm": 1_000_000})
    finally:
        await db.aclose()
    with PlanStore(db_path) as store:
        found = rate(rpm=None, scope="submits", summaries=store.summaries(5))
    assert found.rpm == 1_000_000 and "--rpm" in found.rpm_source
