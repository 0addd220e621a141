"""The gallery in a real browser: headless Chromium (Debian's) driven by Playwright, over
the galleries of real runs against the local server, opened from file:// as a person
opens them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

import batchgen
from batchgen.metadata.record import infotext, record_for

CHROMIUM = Path("/usr/bin/chromium")
# Known to work on these machines (no sandbox as root; no calls home on a closed network).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> a cat'
LONG_PROMPT = "x" * 5000
LONG_ID = ("an.extremely-long_identifier.made-of.many-separated_parts.to-check.that-it-"
           "breaks.only-after-separators.and-never.mid-word")
RAMEN = 230

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail("Debian's chromium is missing: .ci/run installs it", pytrace=False)
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run "
                "does it)", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def run(manifest: Path, out: Path) -> Path:
    """A real run against the embedded server, in a thread of its own (Playwright's sync
    API keeps an event loop in this one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, partial(batchgen.run, manifest, out=out, local=True,
                                       progress=False)).result()
    return out


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jobs/sweep.yaml, run for real: 2 prompts x 4 schedulers x 4 guidance x 3 seeds."""
    return run(Path("jobs/sweep.yaml"), tmp_path_factory.mktemp("sweep") / "out")


@pytest.fixture(scope="module")
def mixed_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More cards than a page, a failure, a hostile prompt, long words, two samples."""
    folder = tmp_path_factory.mktemp("mixed")
    lines: list[dict[str, Any]] = [
        {"id": f"ramen-{n:03d}", "prompt": "a bowl of ramen, steam", "seed": n}
        for n in range(RAMEN)]
    lines += [
        {"id": "refused", "prompt": "a forbidden thing [[fail]]", "seed": 1},
        {"id": "evil", "prompt": EVIL, "seed": 2,
         "negative_prompt": "blurry, deformed: bad\nhands"},
        {"id": "wide", "prompt": LONG_PROMPT, "seed": 3},
        {"id": LONG_ID, "prompt": "a fox", "seed": 4},
        {"id": "pair", "prompt": "two owls", "seed": 5, "samples": 2},
    ]
    manifest = folder / "mixed.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run(manifest, folder / "out")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def open_gallery(browser: Browser, tmp_path: Path) -> Iterator[Any]:
    """Factory: the gallery of OUT in a fresh page (its own profile and clipboard); fails
    the test on any script error."""
    contexts, errors = [], []

    def open_(out: Path) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        page.goto((out / "gallery.html").as_uri())
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def choose(page: Page, label: str, option: str) -> None:
    page.locator(f'select[name="{label}"]').select_option(label=option)


def card_ids(page: Page) -> list[str]:
    return [t.split("  (")[0] for t in page.locator("figure.card .id").all_text_contents()]


def test_sweep_reads_as_a_grid_with_seeds_across(open_gallery: Any, sweep_out: Path,
                                                 tmp_path: Path) -> None:
    """jobs/sweep.yaml: by default one block per prompt, one line per scheduler and
    guidance, the three seeds side by side; filtered to a prompt and a scheduler with
    rows by guidance_scale, guidance goes down and seeds across."""
    page = open_gallery(sweep_out)
    page.screenshot(path=tmp_path / "gallery.png", full_page=False)
    assert page.locator(".group").count() == 2
    lines = page.locator(".line")
    assert lines.count() == 32
    first = lines.first
    assert first.locator(".line-label").text_content() == "guidance_scale 4 · scheduler DDIM"
    assert [i.split(".")[-1] for i in card_ids(first)] == ["seed-11", "seed-22", "seed-33"]
    tops = {round(box["y"]) for box in
            (c.bounding_box() for c in first.locator("figure.card").all()) if box}
    assert len(tops) == 1, "the seeds of a line share one row"

    lighthouse = "a lighthouse on a cliff at dusk, long exposure, dramatic clouds, RAW photo"
    choose(page, "prompt", lighthouse[:60])  # options show 60 characters
    choose(page, "scheduler", "Euler a")
    choose(page, "rows by", "guidance_scale")
    assert page.locator("#count").text_content() == "12 of 96 shown"
    groups = page.locator(".group").all_text_contents()
    assert groups == [f"guidance_scale: {g}" for g in (4, 7, 10, 13)]
    for line in page.locator(".line").all():
        ids = card_ids(line)
        assert [i.split(".")[-1] for i in ids] == ["seed-11", "seed-22", "seed-33"]
        assert all("scheduler-Euler_a" in i for i in ids)
    assert (tmp_path / "gallery.png").stat().st_size > 0


def test_pages_and_search(open_gallery: Any, mixed_out: Path) -> None:
    """More cards than a page: two pages, next and previous; search narrows to ids and
    prompts and goes back to page one."""
    page = open_gallery(mixed_out)
    total = RAMEN + 6  # four more items, and the pair has two cards
    assert page.locator("#count").text_content() == f"{total} of {total} shown"
    assert page.locator("figure.card").count() == 200
    assert page.locator("#pages-top span").text_content() == "page 1 of 2"
    page.locator("#pages-top button", has_text="next").click()
    assert page.locator("figure.card").count() == total - 200
    assert page.locator("#pages-top span").text_content() == "page 2 of 2"
    page.locator("input[type=search]").fill("ramen-12")
    assert sorted(card_ids(page)) == [f"ramen-{n}" for n in range(120, 130)]
    page.locator("input[type=search]").fill("TWO OWLS")
    assert card_ids(page) == ["pair", "pair"]
    assert page.locator("#pages-top span").count() == 0


def test_failed_card_in_place_and_by_status(open_gallery: Any, mixed_out: Path) -> None:
    """A failed item is a red card with its reason; the status filter shows only those,
    and the table at the bottom lists it."""
    page = open_gallery(mixed_out)
    choose(page, "status", "failed")
    card = page.locator("figure.card")
    assert card.count() == 1
    assert "failed" in (card.get_attribute("class") or "")
    assert "safety_block" in (card.locator(".reason").text_content() or "")
    row = page.locator("#failed tbody tr")
    assert row.locator("td").first.text_content() == "refused"
    assert page.locator("#failed").is_visible()


def test_a_script_in_a_prompt_is_shown_as_text(open_gallery: Any, mixed_out: Path) -> None:
    """The prompt is displayed character for character and nothing of it runs."""
    page = open_gallery(mixed_out)
    page.locator("input[type=search]").fill("evil")
    assert page.locator("figure.card .prompt").text_content() == EVIL
    assert page.evaluate("window.pwned") is None
    assert page.locator("figure.card img[src='x']").count() == 0


def test_infotext_copy_gives_what_the_image_carries(open_gallery: Any,
                                                    mixed_out: Path) -> None:
    """The copy button puts the A1111 infotext on the clipboard, exactly as batchgen
    writes it into the image (quoting, the seed used, two samples' batch position)."""
    results = {}
    for text in (mixed_out / "results.jsonl").read_text().splitlines():
        line = json.loads(text)
        results[line["id"]] = line
    page = open_gallery(mixed_out)
    for item_id, sample in (("evil", 1), ("pair", 2), ("ramen-007", 1)):
        page.locator("input[type=search]").fill(item_id)
        card = page.locator("figure.card").nth(sample - 1)
        card.locator("details.info summary").click()
        card.locator("details.info button").click()
        page.wait_for_function("b => b.textContent === 'copied'",
                               arg=card.locator("details.info button").element_handle())
        copied = page.evaluate("navigator.clipboard.readText()")
        line = results[item_id]
        count = len(line["files"])
        expected = infotext(record_for(
            item_id=item_id, model=line["model"], params=line["params"],
            result={"seed": line["seed"]}, request_id=line["request_id"], cost=None,
            index=sample - 1, count=count))
        with Image.open(mixed_out / line["files"][sample - 1]["path"]) as image:
            embedded = image.text["parameters"]  # type: ignore[attr-defined]
        assert copied == embedded == expected
        assert card.locator("details.info pre").text_content() == expected


def test_long_words_stay_in_their_box(open_gallery: Any, mixed_out: Path) -> None:
    """A 5,000-character prompt without spaces widens nothing, in a card, as a row
    heading and in the failed table; a long id breaks only after . - _."""
    page = open_gallery(mixed_out)
    width = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(width)
    page.locator("input[type=search]").fill("wide")
    assert page.locator(".group").text_content() == f"prompt: {LONG_PROMPT}"
    assert page.evaluate(width)
    choose(page, "rows by", "none")
    assert page.evaluate(width)
    page.locator("input[type=search]").fill("an.extremely")
    breaks = page.evaluate("""() => {
      const box = document.querySelector("figure.card .id"), text = box.textContent;
      const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
      const chars = [];
      for (let node; (node = walker.nextNode());)
        for (let i = 0; i < node.length; i++) {
          const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
          chars.push(r.getBoundingClientRect().top);
        }
      const after = [];
      for (let i = 1; i < chars.length; i++)
        if (chars[i] > chars[i - 1] + 2) after.push(text[i - 1]);
      return after;
    }""")
    assert breaks, "the long id wraps"
    assert set(breaks) <= {".", "-", "_"}
