"""Metadata end to end: real runs against the local server, read back with Pillow."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
from conftest import StartServer
from PIL import Image
from test_run import results, run, write_manifest

from batchgen.cli import main
from batchgen.manifest.reader import ManifestReader
from batchgen.metadata.infotext import parse_infotext
from batchgen.metadata.record import read_record
from batchgen.store.views import iter_finished

MANIFEST = """
defaults: {num_inference_steps: 20, negative_prompt: "blurry, lowres: bad"}
matrix: {seed: [7, -1]}
items:
  - id: fox
    prompt: "a red fox, snow: morning"
  - id: pair
    prompt: two owls
    samples: 2
"""


async def server_bytes(out: Path) -> dict[str, bytes]:
    """What the server sent for each image, fetched again from the stored output URLs."""
    sent = {}
    async with aiohttp.ClientSession() as session:
        for record in iter_finished(out / ".batchgen" / "state.db"):
            for entry, output in zip(record.files or [], record.result["outputs"], strict=True):
                async with session.get(output["url"]) as answer:
                    sent[entry["path"]] = await answer.read()
    return sent


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


async def test_every_png_carries_its_parameters_and_the_servers_pixels(
        local_server: StartServer, tmp_path: Path) -> None:
    """Each image: Pillow reads the infotext (seed used, never -1) and batchgen's record;
    its pixels are the server's; results.jsonl names both digests."""
    server = await local_server()
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "m.yaml", MANIFEST), out)
    sent = await server_bytes(out)
    lines = results(out)
    assert len(sent) == 6
    for line in lines:
        for k, entry in enumerate(line["files"]):
            data = (out / entry["path"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["bytes"] == len(data)
            assert entry["server_sha256"] == hashlib.sha256(sent[entry["path"]]).hexdigest()
            assert pixels(data) == pixels(sent[entry["path"]])
            with Image.open(out / entry["path"]) as image:
                text: dict[str, str] = dict(image.text)  # type: ignore[attr-defined]
            info = parse_infotext(text["parameters"])
            assert info.prompt == line["params"]["prompt"]
            assert info.negative_prompt == "blurry, lowres: bad"
            assert info.settings["Seed"] == str(line["seed"]) != "-1"
            assert info.settings["batchgen id"] == line["id"]
            record = read_record(text["batchgen"])
            assert record is not None
            assert (record.item_id, record.params, record.request_id, record.index) == (
                line["id"], line["params"], line["request_id"], k)


async def test_a_run_imports_back_to_its_manifest(local_server: StartServer,
                                                  tmp_path: Path) -> None:
    """batchgen import OUT/images gives the manifest's items back: same ids and parameters
    (--seed sent), or with the seeds the server drew (the default)."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", MANIFEST)
    await run(server, manifest, tmp_path / "out")
    wanted = {i.id: (i.model, i.params) for i in ManifestReader(str(manifest)).items()}
    target = tmp_path / "back.jsonl"
    assert main(["import", str(tmp_path / "out" / "images"), "-o", str(target),
                 "--seed", "sent"]) == 0
    assert {i.id: (i.model, i.params) for i in ManifestReader(str(target)).items()} == wanted
    assert main(["import", str(tmp_path / "out" / "images"), "-o", str(target), "--force"]) == 0
    used = {line["id"]: line["seed"] for line in results(tmp_path / "out")}
    for item in ManifestReader(str(target)).items():
        assert item.params["seed"] == used[item.id] != -1


async def test_no_embed_keeps_the_servers_bytes(local_server: StartServer,
                                                tmp_path: Path) -> None:
    """--no-embed (embed=False): every file is byte for byte what the server sent."""
    server = await local_server()
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "m.yaml", MANIFEST), out, embed=False)
    for path, data in (await server_bytes(out)).items():
        assert (out / path).read_bytes() == data


async def test_training_sidecars(local_server: StartServer, tmp_path: Path) -> None:
    """--captions txt writes <image>.txt with the prompt; images/metadata.jsonl has one
    line per image in the imagefolder layout: file_name first, then text."""
    server = await local_server()
    out = tmp_path / "out"
    await run(server, write_manifest(tmp_path / "m.yaml", MANIFEST), out, captions="txt")
    images = out / "images"
    lines: list[dict[str, Any]] = [
        json.loads(text) for text in (images / "metadata.jsonl").read_text().splitlines()]
    pngs = sorted(p.name for p in images.glob("*.png"))
    assert sorted(line["file_name"] for line in lines) == pngs
    by_id = {line["id"]: line for line in results(out)}
    for line in lines:
        assert list(line)[:2] == ["file_name", "text"]
        assert line["text"] == by_id[line["id"]]["params"]["prompt"]
        assert line["seed"] == by_id[line["id"]]["seed"] != -1
        assert line["num_inference_steps"] == 20
        caption = (images / line["file_name"]).with_suffix(".txt")
        assert caption.read_text(encoding="utf-8") == line["text"]
    (images / "fox.seed-7.txt").unlink()
    await run(server, write_manifest(tmp_path / "m.yaml", MANIFEST), out, captions="txt")
    assert (images / "fox.seed-7.txt").read_text(encoding="utf-8") == "a red fox, snow: morning"
    assert server.stats()["submits_accepted"] == 4
