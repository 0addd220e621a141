"""gallery.html: relative links, every item, reasons, escaping, size at 10,000 images."""

from __future__ import annotations

import json
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from batchgen.manifest.ids import derived_id
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

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """The items as the page's script decodes them, by id."""
        return {row["id"]: row for row in decode(self.data)}


def decode(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows back from the columnar data, as gallery.js reads them."""
    rows, previous = [], ""
    for n, code in enumerate(data["ids"]):
        item_id = code if isinstance(code, str) else previous[:code[0]] + code[1]
        previous = item_id
        vals = {k: col["r"][n] if "r" in col else col["v"][col["i"][n]]
                for k, col in data["cols"].items()}
        error = data["errors"].get(str(n))
        rows.append({"id": item_id, "vals": vals, "error": error,
                     "files": data["files"].get(str(n), 0 if error else 1),
                     "missing": data["missing"].get(str(n), [])})
    return rows


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


def image_paths(row: dict[str, Any]) -> list[str]:
    """The paths a row stands for, decoded as the page's script does."""
    item_id, files = row["id"], row["files"]
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
    rows = gallery(db, tmp_path).rows
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
    assert gallery(db, tmp_path).rows["bad"]["error"] == ["safety_block", "NSFW content detected"]


def test_swept_parameters_are_the_varying_keys(tmp_path: Path) -> None:
    """Parameters that differ across items are filter keys; the rest are shared."""
    db, _ = sweep(tmp_path)
    meta = gallery(db, tmp_path).data["meta"]
    assert meta["keys"] == ["prompt", "samples", "seed"]
    assert meta["common"]["negative_prompt"] == "blurry"
    assert meta["common"]["model"] == MODEL
    assert "seed" not in meta["common"]


def test_seed_shown_is_the_one_the_server_used(tmp_path: Path) -> None:
    """A random seed (-1) is shown as the seed the result reported; seeds past 2^53
    travel as text so JavaScript cannot round them."""
    db, conn = store(tmp_path)
    add(conn, "a", used_seed=4242, seed=-1)
    add(conn, "b", used_seed=2**60 + 1, seed=-1)
    conn.close()
    rows = gallery(db, tmp_path).rows
    assert [rows["a"]["vals"]["seed"], rows["b"]["vals"]["seed"]] == [4242, str(2**60 + 1)]


def test_prompt_with_script_cannot_inject(tmp_path: Path) -> None:
    """A prompt with </script><script> stays data: no new element, same text back."""
    evil = 'x</script><script>alert(1)</script><img src=x onerror=alert(2)>'
    db, conn = store(tmp_path)
    add(conn, "evil", prompt=evil, negative_prompt="<b>bold</b> & co")
    conn.close()
    page = gallery(db, tmp_path)
    assert [tag for tag, _ in page.tags].count("script") == 2
    assert all(tag not in ("img", "b") for tag, _ in page.tags)
    assert page.data["meta"]["common"]["prompt"] == evil
    assert "<b>bold</b> & co" in "".join(page.text)


def test_unsafe_recorded_paths_are_left_out(tmp_path: Path) -> None:
    """Recorded paths that are absolute or climb out of OUT never become links."""
    db, conn = store(tmp_path)
    add(conn, "odd", files=["/etc/passwd", "../x.png", "images/odd.webp"])
    conn.close()
    assert image_paths(gallery(db, tmp_path).rows["odd"]) == ["images/odd.webp"]


def test_missing_files_are_not_counted_as_images(tmp_path: Path) -> None:
    """An image recorded but not on disk is marked missing and left out of the count."""
    db, conn = store(tmp_path)
    add(conn, "here")
    add(conn, "gone")
    add(conn, "half", samples=2, files=["images/half-1.png", "images/half-2.png"])
    conn.close()
    (tmp_path / "images").mkdir()
    for name in ("here.png", "half-2.png"):
        (tmp_path / "images" / name).write_bytes(b"x")
    page = gallery(db, tmp_path)
    assert page.rows["gone"]["missing"] == [0] and page.rows["half"]["missing"] == [0]
    assert page.rows["here"]["missing"] == []
    header = " ".join(page.text)
    assert "3 completed (2 images, 2 missing on disk" in header


def test_a_run_with_nothing_finished_says_so(tmp_path: Path) -> None:
    """Items that all wait for download: the header says how many and what to do."""
    db, conn = store(tmp_path)
    for n in range(3):
        add(conn, f"paid-{n}", "fetched")
    add(conn, "later", "pending")
    conn.close()
    header = " ".join(gallery(db, tmp_path).text)
    assert "Not finished yet: 3 wait for download, 1 not submitted yet" in header
    assert "Nothing has finished yet" in header
    assert "model ;" not in header


def test_ten_thousand_images_make_a_small_page(tmp_path: Path) -> None:
    """A 100-prompt x 100-seed run with derived ids makes a page under 300 KB (README:
    "about 250 KB for 10,000 images")."""
    db, conn = store(tmp_path)
    (tmp_path / "images").mkdir()
    conn.execute("BEGIN")  # one commit, not 10,000 fsyncs
    for p in range(100):
        prompt = f"prompt number {p}: a detailed photograph of a lighthouse on a cliff at dusk"
        for seed in range(100):
            params = {**BASE, "prompt": prompt, "seed": seed}
            item_id = derived_id(MODEL, params)
            (tmp_path / "images" / f"{item_id}.png").touch()
            add(conn, item_id, used_seed=seed, **params)
    conn.execute("COMMIT")
    conn.close()
    path = write_gallery(db, tmp_path)
    assert path.stat().st_size < 300_000
    assert len(Page(path.read_text(encoding="utf-8")).rows) == 10_000


def test_huge_runs_show_the_first_items_and_say_so(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ITEMS the page holds the first ones by id and says how many there are."""
    monkeypatch.setattr(gallery_module, "MAX_ITEMS", 5)
    db, conn = store(tmp_path)
    for n in range(8):
        add(conn, f"item-{n}", seed=n)
    conn.close()
    page = gallery(db, tmp_path)
    assert list(page.rows) == [f"item-{n}" for n in range(5)]
    assert "Showing the first 5 of 8 finished items" in " ".join(page.text)
