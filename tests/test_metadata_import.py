"""batchgen import: images back into a manifest, batchgen's exactly, others by A1111's map."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from batchgen.cli import main
from batchgen.manifest.reader import ManifestReader
from batchgen.metadata.embed import finish_image
from batchgen.metadata.importer import Imported, Skipped, import_images
from batchgen.metadata.record import record_for
from batchgen.output.files import image_name
from batchgen.server.png import ImageSpec, render

A1111 = ("masterpiece, a castle on a hill, (golden hour:1.2)\n"
         "Negative prompt: lowres, bad anatomy\n"
         "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, "
         "Seed: 123456789, Size: 768x1024, Model hash: 6ce0161689, Model: epicrealism_v5, "
         'Lora hashes: "detail: 0123abcd", Version: v1.10.1')


def write_run(folder: Path, manifest: Path, *, used: dict[str, int] | None = None) -> list:
    """Images as a run writes them: every item's samples, server PNGs with metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    items = list(ManifestReader(str(manifest)).items())
    for item in items:
        seed = (used or {}).get(item.id, item.params.get("seed", 1))
        for k in range(item.samples):
            data = render(ImageSpec(item.params["prompt"], seed, k, 64, 64))
            temp = folder / f".tmp-{item.id}-{k}"
            temp.write_bytes(data)
            record = record_for(item_id=item.id, model=item.model, params=item.params,
                                result={"seed": seed}, request_id=f"req-{item.id}",
                                cost=0.01, index=k, count=item.samples)
            finish_image(temp, folder / image_name(item.id, k, item.samples, "png"), record,
                         server_bytes=len(data), server_sha256=hashlib.sha256(data).hexdigest())
    return items


def imported_items(tmp_path: Path, *args: str) -> list:
    target = tmp_path / "imported.jsonl"
    assert main(["import", *args, "-o", str(target)]) == 0
    return list(ManifestReader(str(target)).items())


def test_a_batchgen_run_imports_to_the_same_items(tmp_path: Path) -> None:
    """Every item of jobs/demo.yaml comes back with its id, model and parameters; the two
    samples of one item are one item."""
    items = write_run(tmp_path / "images", Path("jobs/demo.yaml"))
    back = imported_items(tmp_path, str(tmp_path / "images"))
    assert {(i.id, i.model, json.dumps(i.params, sort_keys=True)) for i in back} == {
        (i.id, i.model, json.dumps(i.params, sort_keys=True)) for i in items}


def test_a_random_seed_comes_back_as_the_seed_used(tmp_path: Path) -> None:
    """seed -1 imports as the server's seed (the same image again); --seed sent keeps -1,
    --seed random asks for new ones."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "r", "prompt": "a lighthouse", "seed": -1}\n')
    write_run(tmp_path / "images", manifest, used={"r": 987654321})
    assert imported_items(tmp_path, str(tmp_path / "images"))[0].params["seed"] == 987654321
    for mode, seed in (("sent", -1), ("random", -1)):
        (tmp_path / "imported.jsonl").unlink()
        items = imported_items(tmp_path, str(tmp_path / "images"), "--seed", mode)
        assert items[0].params["seed"] == seed


def test_infotext_alone_gives_back_id_and_parameters(tmp_path: Path) -> None:
    """A batchgen PNG whose record chunk was stripped (an editor kept only parameters)
    still imports to its id and parameters through the infotext."""
    items = write_run(tmp_path / "images", Path("jobs/demo.yaml"))
    fox = next(i for i in items if i.id == "fox.seed-101")
    with Image.open(tmp_path / "images" / "fox.seed-101.png") as image:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", image.text["parameters"])  # type: ignore[attr-defined]
        image.save(tmp_path / "stripped.png", pnginfo=info)
    [result] = import_images([tmp_path / "stripped.png"])
    assert isinstance(result, Imported) and result.source == "infotext"
    assert result.unmapped == {}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(result.line) + "\n")
    [back] = ManifestReader(str(manifest)).items()  # defaults (samples 1) filled in
    assert (back.id, back.model, back.params) == (fox.id, fox.model, fox.params)


def test_a1111_png_maps_its_labels(tmp_path: Path) -> None:
    """An A1111 image: prompt, negative, steps, sampler, CFG, seed, size; its checkpoint
    and other settings are listed as not mapped, the model is --model's."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", (8, 8)).save(tmp_path / "00001-123456789.png", pnginfo=info)
    [result] = import_images([tmp_path])
    assert isinstance(result, Imported)
    assert result.line == {
        "model": "sd1.5-epicrealism",
        "prompt": "masterpiece, a castle on a hill, (golden hour:1.2)",
        "negative_prompt": "lowres, bad anatomy", "num_inference_steps": 30,
        "scheduler": "DPM++ 2M", "guidance_scale": 6.5, "seed": 123456789,
        "img_width": 768, "img_height": 1024}
    assert result.unmapped == {"Schedule type": "Karras", "Model hash": "6ce0161689",
                               "Model": "epicrealism_v5", "Lora hashes": "detail: 0123abcd",
                               "Version": "v1.10.1"}


def test_a1111_jpeg_exif_is_read(tmp_path: Path) -> None:
    """A JPEG whose UserComment holds the infotext (A1111's JPEG and WebP saving)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")
    for fmt, name in (("JPEG", "a.jpg"), ("WEBP", "b.webp")):
        Image.new("RGB", (8, 8)).save(tmp_path / name, format=fmt, exif=exif.tobytes())
    results = list(import_images([tmp_path]))
    assert [r.line["seed"] for r in results if isinstance(r, Imported)] == [123456789] * 2


def test_unreadable_files_are_listed_not_fatal(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A text file named .png, a cut-off PNG, a PNG without parameters, a missing path:
    each listed with its reason; the good image is imported, exit 0."""
    write_run(tmp_path / "in", Path("jobs/demo.yaml"))
    good = tmp_path / "in" / "fox.seed-101.png"
    (tmp_path / "in" / "notes.png").write_text("not an image")
    (tmp_path / "in" / "cut.png").write_bytes(good.read_bytes()[:40])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    (tmp_path / "in" / "plain.png").write_bytes(buffer.getvalue())
    target = tmp_path / "out.jsonl"
    args = [str(tmp_path / "in"), str(tmp_path / "gone.png"), "-o", str(target)]
    assert main(["import", *args]) == 0
    err = capsys.readouterr().err
    for name, why in (("notes.png", "not a PNG, JPEG or WebP"), ("cut.png", "cut off"),
                      ("plain.png", "no parameters"), ("gone.png", "No such file")):
        assert any(name in line and why in line for line in err.splitlines()), (name, err)
    assert len(list(ManifestReader(str(target)).items())) == 18  # jobs/demo.yaml: 18 requests


def test_nothing_to_import_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    """No image with parameters: exit 1, no manifest left behind."""
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert main(["import", str(tmp_path), "-o", str(tmp_path / "m.jsonl")]) == 1
    assert not (tmp_path / "m.jsonl").exists()


def test_an_existing_manifest_is_not_overwritten(tmp_path: Path) -> None:
    """-o naming an existing file is a usage error (exit 2) unless --force."""
    write_run(tmp_path / "in", Path("jobs/demo.yaml"))
    target = tmp_path / "m.jsonl"
    target.write_text("# mine\n")
    assert main(["import", str(tmp_path / "in"), "-o", str(target)]) == 2
    assert target.read_text() == "# mine\n"
    assert main(["import", str(tmp_path / "in"), "-o", str(target), "--force"]) == 0
    assert "fox.seed-101" in target.read_text()


def test_each_item_names_its_file(tmp_path: Path) -> None:
    """A comment above each line says which file it came from."""
    write_run(tmp_path / "in", Path("jobs/demo.yaml"))
    target = tmp_path / "m.jsonl"
    main(["import", str(tmp_path / "in" / "fox.seed-101.png"), "-o", str(target)])
    first, second = target.read_text().splitlines()
    assert first == f"# from {tmp_path / 'in' / 'fox.seed-101.png'}"
    assert json.loads(second)["id"] == "fox.seed-101"
    assert isinstance(next(iter(import_images([tmp_path / "nope"]))), Skipped)
