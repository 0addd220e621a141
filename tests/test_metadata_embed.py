"""Embedding: chunks and EXIF added without touching the pixels, read back by Pillow."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from batchgen.metadata.embed import Written, finish_image
from batchgen.metadata.exif import decode_comment
from batchgen.metadata.infotext import parse_infotext
from batchgen.metadata.record import ImageRecord, infotext, read_record
from batchgen.server.png import ImageSpec, render

RECORD = ImageRecord(
    item_id="fox.seed-1", model="sd1.5-epicrealism",
    params={"prompt": "a red fox, snow: morning", "negative_prompt": "blurry",
            "scheduler": "DPM Multi", "num_inference_steps": 25, "guidance_scale": 7.5,
            "samples": 1, "seed": -1, "img_width": 512, "img_height": 512},
    seed=4242, request_id="0d6a1f2e-0000-4000-8000-000000000001", cost=0.0123,
    inference_time=1.5, queue_time=0.25)
USER_COMMENT, EXIF_IFD = 0x9286, 0x8769


def server_png() -> bytes:
    return render(ImageSpec("a red fox", 4242, 0, 512, 512))


def deliver(tmp_path: Path, data: bytes, record: ImageRecord = RECORD, *, name: str = "x.png",
            **kw: Any) -> Written:
    temp = tmp_path / ".tmp-x"
    temp.write_bytes(data)
    return finish_image(temp, tmp_path / name, record, server_bytes=len(data),
                        server_sha256=hashlib.sha256(data).hexdigest(), **kw)


def pixels(data: bytes | Path) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        return image.mode, image.size, image.tobytes()


def test_png_carries_infotext_and_record_with_the_servers_pixels(tmp_path: Path) -> None:
    """Pillow reads parameters and batchgen; the decoded pixels equal the server's."""
    data = server_png()
    written = deliver(tmp_path, data)
    with Image.open(written.path) as image:
        text = dict(image.text)  # type: ignore[attr-defined]
    assert text["parameters"] == infotext(RECORD)
    info = parse_infotext(text["parameters"])
    assert info.settings["Seed"] == "4242"
    assert info.prompt == "a red fox, snow: morning"
    assert read_record(text["batchgen"]) == RECORD
    assert json.loads(text["batchgen"])["request_id"] == RECORD.request_id
    assert pixels(written.path) == pixels(data)
    assert written.embedded


def test_both_digests_are_kept(tmp_path: Path) -> None:
    """The server's size and SHA-256 and the written file's, each of its own bytes."""
    data = server_png()
    written = deliver(tmp_path, data)
    on_disk = written.path.read_bytes()
    assert (written.server_bytes, written.server_sha256) == (
        len(data), hashlib.sha256(data).hexdigest())
    assert (written.bytes, written.sha256) == (len(on_disk), hashlib.sha256(on_disk).hexdigest())
    assert written.sha256 != written.server_sha256
    entry = written.entry(tmp_path, "image/png")
    assert entry["path"] == "x.png" and entry["server_sha256"] == written.server_sha256


def test_non_latin_prompt_goes_into_itxt(tmp_path: Path) -> None:
    """A prompt tEXt cannot hold is written as iTXt under the same keyword."""
    record = ImageRecord(item_id="jp", model="m", params={"prompt": "富士山の夜明け 🌄"}, seed=1)
    written = deliver(tmp_path, server_png(), record)
    raw = written.path.read_bytes()
    assert b"iTXtparameters\0" in raw and b"tEXtparameters\0" not in raw
    with Image.open(written.path) as image:
        assert parse_infotext(image.text["parameters"]).prompt == "富士山の夜明け 🌄"  # type: ignore[attr-defined]


def test_servers_own_parameters_chunk_is_replaced(tmp_path: Path) -> None:
    """A PNG that came with a parameters chunk ends up with ours only."""
    buffer = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "server's text\nSteps: 1, Sampler: x, Seed: 9")
    info.add_text("Software", "server")
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG", pnginfo=info)
    written = deliver(tmp_path, buffer.getvalue())
    raw = written.path.read_bytes()
    assert raw.count(b"parameters\0") == 1
    with Image.open(written.path) as image:
        assert image.text["parameters"] == infotext(RECORD)  # type: ignore[attr-defined]
        assert image.text["Software"] == "server"  # type: ignore[attr-defined]


def jpeg(exif: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (64, 48), (200, 40, 40))
    image.save(buffer, format="JPEG", quality=90, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def test_jpeg_gets_the_infotext_as_exif_user_comment(tmp_path: Path) -> None:
    """UNICODE UserComment in the Exif IFD, as A1111 writes it; same pixels."""
    data = jpeg()
    written = deliver(tmp_path, data, name="x.jpg")
    with Image.open(written.path) as image:
        comment = image.getexif().get_ifd(EXIF_IFD)[USER_COMMENT]
    assert comment[:8] == b"UNICODE\0"
    assert comment[8:].decode("utf-16-be") == infotext(RECORD)
    assert decode_comment(comment) == infotext(RECORD)
    assert pixels(written.path) == pixels(data)
    assert written.embedded


def test_jpeg_with_exif_of_its_own_is_kept_as_it_came(tmp_path: Path) -> None:
    """EXIF already there (orientation, camera) is never merged or lost."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg(exif.tobytes())
    written = deliver(tmp_path, data, name="x.jpg")
    assert written.path.read_bytes() == data
    assert not written.embedded


@pytest.mark.parametrize("fmt", ["WEBP", "GIF"])
def test_other_formats_are_left_as_they_came(tmp_path: Path, fmt: str) -> None:
    """WebP and GIF are written byte for byte."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format=fmt)
    written = deliver(tmp_path, buffer.getvalue(), name="x.img")
    assert written.path.read_bytes() == buffer.getvalue()
    assert written.sha256 == written.server_sha256


def test_no_embed_writes_the_servers_bytes(tmp_path: Path) -> None:
    """embed=False: the file is the download, byte for byte."""
    data = server_png()
    assert deliver(tmp_path, data, embed=False).path.read_bytes() == data


def test_a_png_cut_short_is_kept_as_it_came(tmp_path: Path) -> None:
    """A structure that cannot be walked is not made worse: kept, no temp left behind."""
    data = server_png()[:-30]
    written = deliver(tmp_path, data)
    assert written.path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_chunks_keep_their_crc(tmp_path: Path) -> None:
    """Every chunk of the written PNG has a correct CRC (a strict reader accepts it)."""
    raw = deliver(tmp_path, server_png()).path.read_bytes()
    at = 8
    while at < len(raw):
        length, kind = struct.unpack(">I4s", raw[at:at + 8])
        data = raw[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", raw[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc, kind
        at += 12 + length
    assert kind == b"IEND"


def test_caption_beside_the_image(tmp_path: Path) -> None:
    """caption=True writes <image>.txt with the prompt (kohya's layout)."""
    written = deliver(tmp_path, server_png(), caption=True)
    assert (tmp_path / "x.txt").read_text(encoding="utf-8") == "a red fox, snow: morning"
    assert written.path == tmp_path / "x.png"


@pytest.mark.parametrize("embed", [True, False])
def test_an_image_kept_in_memory_is_written_once(tmp_path: Path, embed: bool) -> None:
    """An image the download kept in memory is written straight to its final name (with
    its metadata unless --no-embed), the same file as from a downloaded temp, and no
    temporary file is left behind."""
    data = server_png()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    from_file = deliver(tmp_path / "a", data, embed=embed)
    from_memory = finish_image(tmp_path / "b" / ".tmp-x", tmp_path / "b" / "x.png", RECORD,
                               server_bytes=len(data),
                               server_sha256=hashlib.sha256(data).hexdigest(), embed=embed,
                               data=data)
    assert from_memory.path.read_bytes() == from_file.path.read_bytes()
    assert (from_memory.sha256, from_memory.embedded) == (from_file.sha256, embed)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["x.png"]
