"""The fast lane for JSONL lines gives exactly what the long way gives, only sooner."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from batchgen.manifest.fastlane import FastLane
from batchgen.manifest.ids import canonical_json, derived_id, id_from_bytes
from batchgen.manifest.reader import ManifestReader
from batchgen.manifest.schema import EPICREALISM, SCHEDULERS

VALUES: dict[str, list[Any]] = {
    "seed": [-1, 0, 7, 2**34, 2**63 - 1, 2**63, -2, 1.5, True, "3"],
    "num_inference_steps": [20, 55, 100, 19, 101, 30.0, None],
    "guidance_scale": [0.1, 7, 7.5, 12.25, 25, 0.05, 26, 1e-5, float("nan"), "7"],
    "samples": [1, 2, 4, 0, 5],
    "img_width": [512, 768, 1024, 640, 512.0],
    "img_height": [512, 1024],
    "scheduler": [*SCHEDULERS[:3], "dpmpp_sde_ancestral", 5],
    "negative_prompt": ["blurry", "", "{a|b}", "ä\u2028\x7f\\\"quote"],
    "base64": [False, True, 0],
    "id": ["fox", "Fox", "a..b", "x" * 129, "shot-2", 5],
    "model": ["sd1.5-epicrealism", "other/x", "flux-dev"],
    "steps": [30],
}
PROMPTS = ["a red fox", "  ", "", "Ünïcode ☃ and ÅSCII", "KELVIN \u212a, İstanbul",
           "a {red|blue} fox", "snake__case", "x" * 70, "tab\tand\nnewline"]


def random_line(rng: random.Random) -> str:
    item: dict[str, Any] = {"prompt": rng.choice(PROMPTS)}
    for key in rng.sample(sorted(VALUES), rng.randrange(0, 5)):
        item[key] = rng.choice(VALUES[key])
    if rng.random() < 0.05:
        return rng.choice(["", "# a comment", "{not json", "[1, 2]", '{"prompt": NaN}'])
    return json.dumps(item)


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    def outcome() -> tuple[list[tuple[str, str, dict[str, Any], int | None]], list[Any]]:
        reader = ManifestReader(path)
        items = [(i.id, i.model, i.params, i.line) for i in reader.items()]
        return items, [*reader.problems, reader.entries, reader.requests, reader.images]

    fast = outcome()
    with monkeypatch.context() as patch:
        patch.setattr(ManifestReader, "_lane", lambda self, name: None)
        slow = outcome()
    return fast, slow


@pytest.mark.parametrize("seed", range(5))
def test_fast_lane_gives_what_the_long_way_gives(tmp_path: Path, seed: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Random lines, valid or not: the same items, ids, parameters, problems and counts."""
    rng = random.Random(seed)
    lines = [random_line(rng) for _ in range(400)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    fast, slow = read_both(path, monkeypatch)
    assert fast == slow
    lane = FastLane(EPICREALISM, {}, str(path))
    taken = sum(1 for n, line in enumerate(lines, 1) if lane.read(line.encode(), n))
    assert 50 < taken < len(fast[0])  # both ways were taken


def test_fast_lane_under_a_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An items_file under defaults takes the lane too, with the same result."""
    rng = random.Random(9)
    (tmp_path / "rows.jsonl").write_text("".join(random_line(rng) + "\n" for _ in range(300)))
    path = tmp_path / "m.yaml"
    path.write_text("defaults: {scheduler: DDIM, samples: 2}\nitems_file: rows.jsonl\n")
    fast, slow = read_both(path, monkeypatch)
    assert fast == slow and len(fast[0]) > 50


@pytest.mark.parametrize("seed", range(3))
def test_typed_body_hashes_as_canonical_json(seed: int) -> None:
    """msgspec's sorted encoding of the lane's parameters is canonical_json's, byte for byte."""
    import msgspec

    rng = random.Random(seed)
    encode = msgspec.json.Encoder(order="sorted").encode
    for _ in range(2000):
        params = {"prompt": "".join(chr(rng.randrange(0, 0x3000)) for _ in range(20)),
                  "guidance_scale": rng.choice([rng.randrange(1, 26),
                                                round(rng.uniform(0.1, 25), rng.randrange(17))]),
                  "seed": rng.randrange(-1, 2**63), "base64": rng.random() < 0.5}
        body = {"model": "sd1.5-epicrealism", "params": params}
        assert encode(body).decode() == canonical_json(body)


def test_prompt_slug_is_the_documented_one() -> None:
    """Derived ids keep the slug rule they always had: [a-z0-9] runs of the lowered prompt."""
    junk = re.compile(r"[^a-z0-9]+")
    rng = random.Random(4)
    alphabet = "aZ09 -_!.é日İßẞ\u212a\t\u00a0ΣςﬁÅ"
    for _ in range(20000):
        prompt = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
        slug = junk.sub("-", prompt[:64].lower()).strip("-")[:32].rstrip("-")
        digest = id_from_bytes(b"{}", prompt).rsplit("-", 1)[-1]
        assert id_from_bytes(b"{}", prompt) == (f"{slug}-{digest}" if slug else digest)
    assert derived_id("m", {"prompt": "A Fox!"}).startswith("a-fox-")
