"""gallery.html: relative links, every item, reasons, escaping, size at 10,000 images."""

from __future__ import annotations

import json
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from batchgen.report import gallery as gallery_module
from batchgen.report.gallery import write_gallery
from batchgen.store.db import connect

MODEL = "sd1.5-epicrealism"
BASE = {"negative_prompt": "blurry", "num_inference_steps": 25, "guidance_scale": 7.5,
        "samples": 1, "seed": 1, "img_width": 512, "img_height": 512}


class Page(HTMLParser):
    """The tags of a page, the texts of its scripts and its JSON data blob."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    @property
    def data(self) -> Any:
        kinds = [attrs.get("type") for tag, attrs in self.tags if tag == "script"]
        return json.loads(self.scripts[kinds.index("application/json")])


def add(conn: sqlite3.Connection, item_id: str, state: str = "completed", *,
        files: list[str] | None = None, used_seed: int | None = None,
        error_class: str | None = None,
        last_error: str | None = None, **params: Any) -> None:
    body = {**BASE, "prompt": "a red fox", **params}
    if files is None:
        files = [f"images/{item_id}.png"] if state == "completed" else []
    entries = [{"path": path, "bytes": 1} for path in files]
    result = {"seed": used_seed} if used_seed is not None else None
    conn.execute(
        "INSERT INTO items (id, model, body, state, files, result, error_class, last_error,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (item_id, MODEL, json.dumps(body), state, json.dumps(entries),
         json.dumps(result) if result else None, error_class, last_error),
    )


def store(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    db = tmp_path / ".batchgen" / "state.db"
    return db, connect(db)


def gallery(db: Path, out: Path) -> Page:
    return Page(write_gallery(db, out).read_text(encoding="utf-8"))


def image_paths(row: list[Any]) -> list[str]:
    """The paths a row stands for, decoded as the page's script does."""
    item_id, files = row[0], row[1]
    if isinstance(files, int):
        return [f"images/{item_id}.png" if files == 1 else f"images/{item_id}-{k + 1}.png"
                for k in range(files)]
    return list(files)


def sweep(tmp_path: Path) -> tuple[Path, list[str]]:
    """Two prompts x two seeds, one item with two samples, one failed item."""
    db, conn = store(tmp_path)
    ids = []
    for prompt in ("fox", "owl"):
        for seed in (1, 2):
            item_id = f"{prompt}.seed-{seed}"
            add(conn, item_id, prompt=f"a {prompt}", seed=seed)
            ids.append(item_id)
    add(conn, "pair", prompt="a pair", samples=2, files=["images/pair-1.png", "images/pair-2.png"])
    add(conn, "bad", "failed", prompt="a bad one", error_class="safety_block",
        last_error="NSFW content detected")
    conn.close()
    return db, [*ids, "pair"]


def test_every_completed_item_appears_with_relative_images(tmp_path: Path) -> None:
    """Each completed item is in the page's data, its images under images/."""
    db, ids = sweep(tmp_path)
    rows = {row[0]: row for row in gallery(db, tmp_path).data["rows"]}
    assert set(ids) <= set(rows)
    for item_id in ids:
        for path in image_paths(rows[item_id]):
            assert path.startswith("images/")
            assert (tmp_path / path).parent == tmp_path / "images"
    assert image_paths(rows["pair"]) == ["images/pair-1.png", "images/pair-2.png"]


def test_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    """No external script, style or image: every link in the page is relative."""
    db, _ = sweep(tmp_path)
    page = gallery(db, tmp_path)
    for tag, attrs in page.tags:
        assert tag != "link"
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or ("//" not in value and not value.startswith("/")), value
    assert 'loading: "lazy"' in page.scripts[-1]


def test_failed_items_carry_their_reason(tmp_path: Path) -> None:
    """A failed item is in the data with its error class and message."""
    db, _ = sweep(tmp_path)
    rows = {row[0]: row for row in gallery(db, tmp_path).data["rows"]}
    assert rows["bad"][4] == ["safety_block", "NSFW content detected"]


def test_swept_parameters_are_the_varying_keys(tmp_path: Path) -> None:
    """Parameters that differ across items are filter keys; the rest are shared."""
    db, _ = sweep(tmp_path)
    meta = gallery(db, tmp_path).data["meta"]
    assert meta["keys"] == ["prompt", "samples", "seed"]
    assert meta["common"]["negative_prompt"] == "blurry"
    assert "seed" not in meta["common"]


def test_seed_shown_is_the_one_the_server_used(tmp_path: Path) -> None:
    """A random seed (-1) is shown as the seed the result reported."""
    db, conn = store(tmp_path)
    add(conn, "a", used_seed=4242, seed=-1)
    add(conn, "b", used_seed=77, seed=-1)
    conn.close()
    data = gallery(db, tmp_path).data
    seeds = [row[3][data["meta"]["keys"].index("seed")] for row in data["rows"]]
    assert seeds == [4242, 77]


def test_prompt_with_script_cannot_inject(tmp_path: Path) -> None:
    """A prompt with </script><script> stays data: no new element, same text back."""
    evil = 'x</script><script>alert(1)</script><img src=x onerror=alert(2)>'
    db, conn = store(tmp_path)
    add(conn, "evil", prompt=evil, negative_prompt="<b>bold</b> & co")
    conn.close()
    page = gallery(db, tmp_path)
    assert [tag for tag, _ in page.tags].count("script") == 2
    assert all(tag not in ("img", "b") for tag, _ in page.tags)
    assert page.data["rows"][0][2] == evil
    assert "<b>bold</b> & co" in "".join(page.text)


def test_unsafe_recorded_paths_are_left_out(tmp_path: Path) -> None:
    """Recorded paths that are absolute or climb out of OUT never become links."""
    db, conn = store(tmp_path)
    add(conn, "odd", files=["/etc/passwd", "../x.png", "images/odd.webp"])
    conn.close()
    row = gallery(db, tmp_path).data["rows"][0]
    assert image_paths(row) == ["images/odd.webp"]


def test_ten_thousand_images_make_a_small_page(tmp_path: Path) -> None:
    """A 100-prompt x 100-seed sweep makes a page under 1 MB."""
    db, conn = store(tmp_path)
    conn.execute("BEGIN")  # one commit, not 10,000 fsyncs
    for p in range(100):
        prompt = f"prompt number {p}: a detailed photograph of a lighthouse on a cliff at dusk"
        for seed in range(100):
            add(conn, f"p{p:03d}.seed-{seed}", prompt=prompt, seed=seed)
    conn.execute("COMMIT")
    conn.close()
    path = write_gallery(db, tmp_path)
    assert path.stat().st_size < 1_000_000
    assert len(Page(path.read_text(encoding="utf-8")).data["rows"]) == 10_000


def test_huge_runs_show_the_first_items_and_say_so(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ITEMS the page holds the first ones by id and says how many there are."""
    monkeypatch.setattr(gallery_module, "MAX_ITEMS", 5)
    db, conn = store(tmp_path)
    for n in range(8):
        add(conn, f"item-{n}", seed=n)
    conn.close()
    page = gallery(db, tmp_path)
    assert [row[0] for row in page.data["rows"]] == [f"item-{n}" for n in range(5)]
    assert "Showing the first 5 of 8 finished items" in " ".join(page.text)
