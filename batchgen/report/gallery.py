"""``OUT/gallery.html``: a contact sheet of a run, one self-contained file.

The page links each image by a relative path (``images/...``), so it works from
``file://`` and keeps working when OUT is copied or served; it loads nothing from
elsewhere. The item data is one compact JSON blob and a small inline script renders
pages of cards from it, so the file stays small and the browser holds one page of
images at a time, even for 10,000 images.

Two streamed passes over the store: the first finds which parameters vary (a sweep's
axes: the page offers a filter and a "rows by" grouping for each), the second writes
one row per item. A row is ``[id, files, prompt, values, error]``:

- ``files``: the image count when the names are the standard ``images/<id>.png`` /
  ``images/<id>-<k>.png``, else the list of relative paths;
- ``prompt``: the text at its first use, afterwards the index of that first use among
  the distinct prompts (a sweep repeats each prompt many times);
- ``values``: the varying parameters, in the order of ``keys``; the others are shown
  once as shared parameters. ``seed`` is the seed the server used, when it said so;
- ``error``: 0, or ``[error class, message]`` for a failed item.

Everything from the manifest is user text: the header is HTML-escaped, the blob has
``<``, ``>`` and ``&`` escaped so it cannot end its script element, and the script
builds the cards with ``textContent`` only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.lifecycle import COMPLETED
from batchgen.output.files import image_name, write_atomic
from batchgen.report.morning import FAILED_FILE, error_group
from batchgen.store.items import ItemRecord
from batchgen.store.views import count_finished, iter_finished

GALLERY_FILE = "gallery.html"
# A contact sheet past this many items is more than a browser or a person wants in one
# page; the first ones by id are shown and the header says so (results.jsonl has all).
MAX_ITEMS = 20_000
# Distinct prompts remembered for back-references; past this, prompts are written in full.
_MAX_PROMPT_REFS = 100_000
_MISSING = object()


@dataclass(slots=True)
class _Survey:
    """What the first pass learns: counts, and each parameter's first value or variance."""

    completed: int = 0
    failed: int = 0
    images: int = 0
    models: set[str] = field(default_factory=set)
    first: dict[str, str] = field(default_factory=dict)  # key -> canonical JSON
    present: dict[str, int] = field(default_factory=dict)
    varying: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return self.completed + self.failed

    def add(self, record: ItemRecord) -> None:
        if record.state == COMPLETED:
            self.completed += 1
            self.images += len(record.files or [])
        else:
            self.failed += 1
        self.models.add(record.model)
        for key, value in shown_values(record).items():
            self.present[key] = self.present.get(key, 0) + 1
            spelled = _canonical(value)
            if self.first.setdefault(key, spelled) != spelled:
                self.varying.add(key)

    def keys(self) -> list[str]:
        """Varying parameters: different values, or set on some items only."""
        return sorted(k for k in self.present
                      if k in self.varying or self.present[k] < self.rows)

    def common(self) -> dict[str, Any]:
        return {k: json.loads(self.first[k]) for k in sorted(self.first)
                if k not in self.keys()}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def shown_values(record: ItemRecord) -> dict[str, Any]:
    """The parameters to show; ``seed`` is the one the server used when it reported it."""
    values = dict(record.params)
    seed = (record.result or {}).get("seed")
    if seed is not None:
        values["seed"] = seed
    return values


def _files(record: ItemRecord) -> int | list[str]:
    """The compact spelling of an item's image paths; unsafe paths are left out."""
    paths = [str(entry.get("path", "")) for entry in record.files or []]
    count = len(paths)
    standard = [f"images/{image_name(record.id, k, count, 'png')}" for k in range(count)]
    if paths == standard:
        return count
    return [p for p in paths if _relative(p)]


def _relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and ":" not in path


def _error(record: ItemRecord) -> int | list[str]:
    if record.state == COMPLETED:
        return 0
    group = error_group(record.error_class)
    label = group if record.error_class in (None, group) else f"{group} ({record.error_class})"
    return [label, record.last_error or "no message recorded"]


def _script_json(value: Any) -> str:
    """JSON that cannot close or open a tag inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _rows(db: Path, keys: list[str]) -> Iterator[str]:
    prompts: dict[str, int] = {}
    first = True
    for record in iter_finished(db, limit=MAX_ITEMS):
        values = shown_values(record)
        text = str(values.pop("prompt", ""))
        ref: str | int = prompts.get(text, text)
        if isinstance(ref, str) and len(prompts) < _MAX_PROMPT_REFS:
            prompts[text] = len(prompts)
        row = [record.id, _files(record), ref,
               [values.get(k) for k in keys if k != "prompt"], _error(record)]
        yield ("" if first else ",\n") + _script_json(row)
        first = False


def _header(out: Path, survey: _Survey, common: dict[str, Any], total: int) -> str:
    e = html.escape
    title = f"batchgen gallery: {out.resolve().name}"
    failed = (f', <a href="{FAILED_FILE}">{survey.failed} failed</a>' if survey.failed
              else ", 0 failed")
    shared = "".join(f"<dt>{e(k)}</dt><dd>{e(v if isinstance(v, str) else _canonical(v))}</dd>"
                     for k, v in common.items())
    return _HEAD.format(title=e(title)) + (
        f'<header><h1>{e(title)}</h1><p class="counts">{survey.completed} completed '
        f"({survey.images} images){failed}; model {e(', '.join(sorted(survey.models)))}; "
        f'<a href="results.jsonl">results.jsonl</a></p>'
        + (f'<p class="counts">Showing the first {MAX_ITEMS:,} of {total:,} finished items '
           f'by id; <a href="results.jsonl">results.jsonl</a> and '
           f'<a href="{FAILED_FILE}">{FAILED_FILE}</a> list them all.</p>'
           if total > MAX_ITEMS else "")
        + f"<details><summary>Parameters shared by every item</summary><dl>{shared}</dl>"
        "</details></header>\n"
    )


def gallery_lines(db: Path, out: Path) -> Iterator[str]:
    """The gallery page in pieces, streamed from the store. Blocking."""
    survey = _Survey()
    for record in iter_finished(db, limit=MAX_ITEMS):
        survey.add(record)
    keys = survey.keys()
    common = survey.common()
    yield _header(out, survey, common, count_finished(db))
    yield _BODY
    meta = {"keys": keys, "common": common}
    yield f'<script type="application/json" id="gallery-data">{{"meta":{_script_json(meta)},'
    yield '"rows":[\n'
    yield from _rows(db, keys)
    yield "]}</script>\n"
    yield f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"


def write_gallery(db: Path, out: Path) -> Path:
    """Write ``OUT/gallery.html`` atomically and return its path. Blocking."""
    target = out / GALLERY_FILE
    write_atomic(target, gallery_lines(db, out))
    return target


_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0 1.5rem 2rem;color:#222;background:#fafafa}}
h1{{font-size:1.3rem;margin:1rem 0 .2rem}} h2{{font-size:1.1rem;margin:1.2rem 0 .4rem}}
.counts{{margin:.2rem 0;color:#555}} dl{{display:grid;grid-template-columns:max-content 1fr;
gap:.1rem .8rem;margin:.4rem 0}} dt{{font-weight:600}} dd{{margin:0;word-break:break-word}}
#controls{{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin:.8rem 0;
position:sticky;top:0;background:#fafafa;padding:.4rem 0;border-bottom:1px solid #ddd;z-index:1}}
#controls select,#controls input{{max-width:16rem}}
.group{{margin:.6rem 0 .2rem;font-weight:600}}
.sheet{{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.6rem}}
.card{{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:.3rem;
font-size:12px;overflow:hidden}}
.card img{{display:block;width:100%;height:auto;background:#eee}}
.card.failed{{border-color:#c33;background:#fff4f4}}
.reason{{color:#a00;padding:.4rem 0;word-break:break-word}}
.id{{font-weight:600;word-break:break-all}} .vals{{color:#555}}
.prompt{{color:#333;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;
overflow:hidden}}
.pages{{margin:.8rem 0;display:flex;gap:.6rem;align-items:center}}
table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}}
</style>
</head>
<body>
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

# The page's script: plain DOM calls, user text only through textContent and attributes.
_SCRIPT = r"""
"use strict";
(() => {
const PAGE = 200, MAX_FAILED = 1000, MAX_CHOICES = 200;
const data = JSON.parse(document.getElementById("gallery-data").textContent);
const keys = data.meta.keys, common = data.meta.common, prompts = [];
const axes = keys.filter(k => k !== "prompt");
const el = (tag, props, ...kids) => {
  const n = Object.assign(document.createElement(tag), props || {});
  for (const k of kids) n.append(k);
  return n;
};
const show = v => v === undefined || v === null ? "-"
  : typeof v === "object" ? JSON.stringify(v) : String(v);
const cards = [], failed = [];
for (const r of data.rows) {
  const p = typeof r[2] === "string" ? r[2] : prompts[r[2]];
  if (typeof r[2] === "string") prompts.push(r[2]);
  const item = {id: r[0], prompt: p, vals: r[3], error: r[4]};
  const files = typeof r[1] === "number"
    ? Array.from({length: r[1]},
                 (_, k) => "images/" + r[0] + (r[1] === 1 ? "" : "-" + (k + 1)) + ".png")
    : r[1];
  if (item.error) { failed.push(item); cards.push({item, src: null, k: 0, n: 0}); }
  else if (!files.length) cards.push({item, src: null, k: 0, n: 0});
  else files.forEach((f, k) => cards.push({item, src: f, k: k + 1, n: files.length}));
}
const value = (item, key) => key === "prompt" ? item.prompt
  : axes.includes(key) ? item.vals[axes.indexOf(key)] : common[key];
const compare = (a, b) => typeof a === "number" && typeof b === "number" ? a - b
  : show(a).localeCompare(show(b), undefined, {numeric: true});
// A sweep reads as a grid: one row per prompt, the finest axis (most values) last.
const state = {filters: {}, group: "", status: "", text: "", page: 0};
const controls = document.getElementById("controls");
const select = (label, options, onchange) => {
  const s = el("select");
  for (const [v, t] of options) s.append(el("option", {value: v, textContent: t}));
  s.addEventListener("change", () => { onchange(s.value); state.page = 0; render(); });
  controls.append(el("label", {}, label + " ", s));
};
const distinct = {};
for (const key of keys) {
  const seen = new Map();
  for (const c of cards) { const v = value(c.item, key); seen.set(JSON.stringify(v ?? null), v); }
  distinct[key] = seen.size;
  if (seen.size > MAX_CHOICES) continue;
  const sorted = [...seen.entries()].sort((a, b) => compare(a[1], b[1]));
  select(key, [["", "all"], ...sorted.map(([j, v]) => [j, show(v).slice(0, 60)])],
         v => { if (v) state.filters[key] = v; else delete state.filters[key]; });
}
const byCoarseness = [...keys].sort((a, b) => distinct[a] - distinct[b] || compare(a, b));
if (keys.includes("prompt") && distinct.prompt <= MAX_CHOICES) state.group = "prompt";
if (keys.length) {
  select("rows by", [["", "none"], ...keys.map(k => [k, k])], v => { state.group = v; });
  controls.lastChild.querySelector("select").value = state.group;
}
if (failed.length) select("status", [["", "all"], ["ok", "completed"], ["failed", "failed"]],
                          v => { state.status = v; });
const search = el("input", {type: "search", placeholder: "search id or prompt"});
search.addEventListener("input", () => {
  state.text = search.value.toLowerCase(); state.page = 0; render();
});
controls.append(search);
const count = el("span");
controls.append(count);
function chosen() {
  const order = [state.group, ...byCoarseness.filter(k => k !== state.group)].filter(k => k);
  const list = cards.filter(c => {
    if (state.status === "ok" && c.item.error) return false;
    if (state.status === "failed" && !c.item.error) return false;
    if (state.text && !(c.item.id.toLowerCase().includes(state.text) ||
                        show(c.item.prompt).toLowerCase().includes(state.text))) return false;
    for (const [k, v] of Object.entries(state.filters))
      if (JSON.stringify(value(c.item, k) ?? null) !== v) return false;
    return true;
  });
  list.sort((a, b) => {
    for (const k of order) {
      const d = compare(value(a.item, k), value(b.item, k));
      if (d) return d;
    }
    return a.k - b.k;
  });
  return list;
}
function card(c) {
  const it = c.item, lines = [it.id + (c.n > 1 ? "  (" + c.k + "/" + c.n + ")" : "")];
  lines.push("prompt: " + show(it.prompt));
  for (const k of Object.keys(common)) if (k !== "prompt") lines.push(k + ": " + show(common[k]));
  axes.forEach((k, i) => lines.push(k + ": " + show(it.vals[i])));
  if (it.error) lines.push("error: " + it.error[0] + ": " + it.error[1]);
  const fig = el("figure", {className: "card" + (it.error ? " failed" : ""),
                            title: lines.join("\n")});
  if (c.src) {
    const img = el("img", {loading: "lazy", alt: it.id,
                           src: c.src.split("/").map(encodeURIComponent).join("/")});
    const w = value(it, "img_width"), h = value(it, "img_height");
    if (typeof w === "number" && typeof h === "number") { img.width = w; img.height = h; }
    fig.append(el("a", {href: img.getAttribute("src"), target: "_blank"}, img));
  } else {
    const why = it.error ? it.error[0] + ": " + it.error[1] : "no image recorded";
    fig.append(el("div", {className: "reason", textContent: why}));
  }
  const vals = axes.filter(k => k !== state.group).map((k, i) => k + " " + show(value(it, k)));
  fig.append(el("figcaption", {},
    el("div", {className: "id", textContent: lines[0]}),
    el("div", {className: "vals", textContent: vals.join(" · ")}),
    el("div", {className: "prompt", textContent: show(it.prompt)})));
  return fig;
}
function pager(box, pages) {
  box.replaceChildren();
  if (pages < 2) return;
  const go = p => el("button", {textContent: p < state.page ? "previous" : "next",
    onclick: () => { state.page = p; render(); window.scrollTo(0, 0); }});
  if (state.page > 0) box.append(go(state.page - 1));
  box.append(el("span", {textContent: "page " + (state.page + 1) + " of " + pages}));
  if (state.page < pages - 1) box.append(go(state.page + 1));
}
function render() {
  const list = chosen(), pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  count.textContent = list.length + " of " + cards.length + " shown";
  const sheet = document.getElementById("sheet");
  sheet.replaceChildren();
  let grid = null, last;
  for (const c of list.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
    const g = state.group ? JSON.stringify(value(c.item, state.group) ?? null) : "";
    if (!grid || g !== last) {
      if (state.group) sheet.append(el("div", {className: "group",
        textContent: state.group + ": " + show(value(c.item, state.group))}));
      grid = el("div", {className: "sheet"});
      sheet.append(grid);
      last = g;
    }
    grid.append(card(c));
  }
  pager(document.getElementById("pages-top"), pages);
  pager(document.getElementById("pages-bottom"), pages);
}
if (failed.length) {
  const body = document.querySelector("#failed tbody");
  for (const it of failed.slice(0, MAX_FAILED))
    body.append(el("tr", {}, ...[it.id, it.error[0], it.error[1], show(it.prompt)]
                               .map(t => el("td", {textContent: t}))));
  if (failed.length > MAX_FAILED)
    document.getElementById("failed-more").textContent =
      (failed.length - MAX_FAILED) + " more in failed.jsonl";
  document.getElementById("failed").hidden = false;
}
render();
})();
"""
