"""The gallery's HTML: head and styles, the header with the run's counts, the data block
and the script (``gallery.js``, shipped beside this module).

Long words (a prompt without spaces, a long id) wrap inside their box instead of
widening the page: every text box may break anywhere as a last resort, ids prefer to
break after ``.``, ``-`` and ``_`` (the script puts break opportunities there).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from batchgen.metadata.infotext import spell
from batchgen.report.morning import FAILED_FILE

# States of items that are not finished yet, as a person reads them.
WAITING = (("fetched", "wait for download"), ("submitted", "in flight"),
           ("submitting", "being submitted"), ("in_doubt", "in doubt"),
           ("pending", "not submitted yet"))


@dataclass(slots=True)
class Counts:
    """What the header says about the run."""

    completed: int = 0
    failed: int = 0
    images: int = 0  # on disk
    missing: int = 0  # recorded, not on disk
    total: int = 0  # finished items in the store, shown or not
    shown_max: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


def script_json(value: Any) -> str:
    """JSON that cannot close or open a tag inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _header(out: Path, counts: Counts, common: dict[str, Any]) -> str:
    e = html.escape
    title = f"batchgen gallery: {out.resolve().name}"
    failed = (f'<a href="{FAILED_FILE}">{counts.failed} failed</a>' if counts.failed
              else "0 failed")
    images = f"{counts.images} images"
    if counts.missing:
        images += (f", {counts.missing} missing on disk: run the same command again to "
                   "download them")
    waiting = [f"{counts.by_state[state]} {words}" for state, words in WAITING
               if counts.by_state.get(state)]
    lines = [f"{counts.completed} completed ({images}), {failed}; "
             '<a href="results.jsonl">results.jsonl</a>']
    if waiting:
        lines.append("Not finished yet: " + ", ".join(waiting)
                     + ". Run the same command again to finish them.")
    if counts.total > counts.shown_max:
        lines.append(f"Showing the first {counts.shown_max:,} of {counts.total:,} finished "
                     f'items by id; <a href="results.jsonl">results.jsonl</a> and '
                     f'<a href="{FAILED_FILE}">{FAILED_FILE}</a> list them all.')
    if not counts.completed + counts.failed:
        lines.append("Nothing has finished yet: no image to show.")
    return (f'<header><h1>{e(title)}</h1>'
            + "".join(f'<p class="counts">{line}</p>' for line in lines)
            + '<details id="shared"><summary>Parameters shared by every item</summary><dl>'
            + "".join(f"<dt>{e(k)}</dt><dd>{e(spell(v))}</dd>" for k, v in common.items())
            + "</dl></details></header>\n")


def page(out: Path, data: dict[str, Any], counts: Counts) -> Iterator[str]:
    """The page in pieces: head, header, body, data, script."""
    title = html.escape(f"batchgen gallery: {out.resolve().name}")
    yield _HEAD.format(title=title, style=_STYLE)
    yield _header(out, counts, data["meta"]["common"])
    yield _BODY
    yield f'<script type="application/json" id="gallery-data">{script_json(data)}</script>\n'
    script = resources.files("batchgen.report").joinpath("gallery.js").read_text("utf-8")
    yield f"<script>{script}</script>\n</body>\n</html>\n"


_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
"""

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5rem 2rem;color:#222;background:#fafafa;
overflow-wrap:anywhere}
h1{font-size:1.3rem;margin:1rem 0 .2rem} h2{font-size:1.1rem;margin:1.2rem 0 .4rem}
.counts{margin:.2rem 0;color:#555} dl{display:grid;grid-template-columns:max-content 1fr;
gap:.1rem .8rem;margin:.4rem 0} dt{font-weight:600} dd{margin:0}
#controls{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin:.8rem 0;
position:sticky;top:0;background:#fafafa;padding:.4rem 0;border-bottom:1px solid #ddd;z-index:1}
#controls select,#controls input{max-width:16rem}
.group{margin:.8rem 0 .2rem;font-weight:600}
.line{margin:.3rem 0 .6rem} .line-label{color:#555;font-size:12px;margin:.1rem 0}
.sheet{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.6rem}
.card{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:.3rem;
font-size:12px;min-width:0}
.card img{display:block;width:100%;height:auto;background:#eee}
.card.failed{border-color:#c33;background:#fff4f4} .card.missing{border-style:dashed}
.reason{color:#a00;padding:.4rem 0}
.id{font-weight:600} .vals{color:#555}
.prompt{color:#333;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;
overflow:hidden}
.info summary{cursor:pointer;color:#555} .info pre{white-space:pre-wrap;font-size:11px;
margin:.2rem 0;max-height:14rem;overflow:auto;background:#f4f4f4;padding:.2rem}
.pages{margin:.8rem 0;display:flex;gap:.6rem;align-items:center}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{border-bottom:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
"""

_BODY = """<nav id="controls" aria-label="filters"></nav>
<div class="pages" id="pages-top"></div>
<main id="sheet"></main>
<div class="pages" id="pages-bottom"></div>
<section id="failed" hidden><h2>Failed items</h2><table><thead><tr><th>id</th><th>error</th>
<th>message</th><th>prompt</th></tr></thead><tbody></tbody></table><p id="failed-more"></p>
</section>
<noscript>The contact sheet needs JavaScript; results.jsonl lists every item.</noscript>
"""
