"use strict";
// The gallery's script (batchgen/report/gallery.py describes the data). Plain DOM
// calls; user text goes only through textContent and attributes, never through HTML.
(() => {
const MAX_FAILED = 1000, MAX_CHOICES = 200;
const data = JSON.parse(document.getElementById("gallery-data").textContent);
const meta = data.meta, keys = meta.keys, common = meta.common, PAGE = meta.page;
const el = (tag, props, ...kids) => {
  const n = Object.assign(document.createElement(tag), props || {});
  for (const k of kids) n.append(k);
  return n;
};
const show = v => v === undefined || v === null ? "-"
  : typeof v === "object" ? JSON.stringify(v) : String(v);

// Rows back from columns: ids are front-coded, columns are tables or plain lists.
const items = [];
let previous = "";
data.ids.forEach((code, n) => {
  const id = typeof code === "string" ? code : previous.slice(0, code[0]) + code[1];
  previous = id;
  const vals = {};
  for (const k of keys) {
    const col = data.cols[k];
    vals[k] = col.r ? col.r[n] : col.v[col.i[n]];
  }
  items.push({id, vals, error: data.errors[n] || null, missing: data.missing[n] || [],
              files: n in data.files ? data.files[n] : (data.errors[n] ? 0 : 1)});
});
const value = (item, key) => keys.includes(key) ? item.vals[key] : common[key];
const cards = [], failed = [];
for (const item of items) {
  const files = typeof item.files === "number"
    ? Array.from({length: item.files}, (_, k) =>
        "images/" + item.id + (item.files === 1 ? "" : "-" + (k + 1)) + ".png")
    : item.files;
  if (item.error) failed.push(item);
  if (!files.length) cards.push({item, src: null, k: 0, n: 0});
  else files.forEach((f, k) => cards.push({item, src: f, k: k + 1, n: files.length,
                                           lost: item.missing.includes(k)}));
}

// The A1111 infotext, as batchgen.metadata.infotext.format_infotext writes it into the
// image; a browser test keeps the two equal.
const spell = v => typeof v === "string" ? v
  : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v);
const quote = t => /[,:\n\r]/.test(t) || t !== t.trim() || t.startsWith('"')
  ? JSON.stringify(t) : t;
const hidden = new Set(meta.hidden), labelled = /^\w[\w \/-]+$/;
function infotext(c) {
  const it = c.item, p = {};
  for (const k of [...Object.keys(common), ...keys])
    if (k !== "model" && value(it, k) !== null && value(it, k) !== undefined) p[k] = value(it, k);
  const lines = [spell(p.prompt ?? "")];
  if (p.negative_prompt !== undefined && p.negative_prompt !== "")
    lines.push("Negative prompt: " + spell(p.negative_prompt));
  const pairs = meta.labels.filter(([name]) => name in p).map(([name, l]) => [l, spell(p[name])]);
  // As used_seed: an integer other than -1 (integers past 2^53 travel as text).
  const seed = p.seed, big = typeof seed === "string" && /^-?\d{16,}$/.test(seed);
  if ((Number.isInteger(seed) || big) && seed !== -1) pairs.push(["Seed", String(seed)]);
  if (p.img_width !== undefined && p.img_height !== undefined)
    pairs.push(["Size", spell(p.img_width) + "x" + spell(p.img_height)]);
  pairs.push(["Model", String(value(it, "model"))]);
  if (c.n > 1) pairs.push(["Batch size", String(c.n)], ["Batch pos", String(c.k - 1)]);
  for (const k of Object.keys(p).sort())
    if (!hidden.has(k) && labelled.test(k)) pairs.push([k, spell(p[k])]);
  pairs.push(["batchgen id", it.id]);
  if (pairs.length < 3) pairs.push(meta.filler);
  lines.push(pairs.map(([k, v]) => k + ": " + quote(v)).join(", "));
  return lines.join("\n");
}
async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); }
  catch (_) {  // no clipboard API (an old browser, a page that is not a secure context)
    const area = el("textarea", {value: text});
    document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
  }
  button.textContent = "copied";
  setTimeout(() => { button.textContent = "copy"; }, 1500);
}

const compare = (a, b) => typeof a === "number" && typeof b === "number" ? a - b
  : show(a).localeCompare(show(b), undefined, {numeric: true});
// A sweep reads as a grid: a block per value of "rows by" (the prompt by default), in
// it one line per combination of the other parameters, the "across" values (seeds)
// side by side in that line.
const state = {filters: {}, group: "", across: "", status: "", text: "", page: 0};
const controls = document.getElementById("controls");
const select = (label, options, initial, onchange) => {
  const s = el("select", {name: label});
  for (const [v, t] of options) s.append(el("option", {value: v, textContent: t}));
  s.value = initial;
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
  select(key, [["", "all"], ...sorted.map(([j, v]) => [j, show(v).slice(0, 60)])], "",
         v => { if (v) state.filters[key] = v; else delete state.filters[key]; });
}
const byCoarseness = [...keys].sort((a, b) => distinct[a] - distinct[b] || compare(a, b));
if (keys.includes("prompt") && distinct.prompt <= MAX_CHOICES) state.group = "prompt";
if (keys.includes("seed")) state.across = "seed";
if (keys.length) {
  select("rows by", [["", "none"], ...keys.map(k => [k, k])], state.group,
         v => { state.group = v; });
  select("across", [["", "none"], ...keys.map(k => [k, k])], state.across,
         v => { state.across = v; });
}
if (failed.length) select("status", [["", "all"], ["ok", "completed"], ["failed", "failed"]],
                          "", v => { state.status = v; });
const search = el("input", {type: "search", placeholder: "search id or prompt"});
search.addEventListener("input", () => {
  state.text = search.value.toLowerCase(); state.page = 0; render();
});
controls.append(search);
const count = el("span", {id: "count"});
controls.append(count);

function chosen() {
  const middle = byCoarseness.filter(k => k !== state.group && k !== state.across);
  const order = [state.group, ...middle, state.across].filter(k => k);
  const list = cards.filter(c => {
    if (state.status === "ok" && c.item.error) return false;
    if (state.status === "failed" && !c.item.error) return false;
    if (state.text && !(c.item.id.toLowerCase().includes(state.text) ||
                        show(value(c.item, "prompt")).toLowerCase().includes(state.text)))
      return false;
    for (const [k, v] of Object.entries(state.filters))
      if (JSON.stringify(value(c.item, k) ?? null) !== v) return false;
    return true;
  });
  list.sort((a, b) => {
    for (const k of order) {
      const d = compare(value(a.item, k), value(b.item, k));
      if (d) return d;
    }
    return a.item.id.localeCompare(b.item.id) || a.k - b.k;
  });
  return list;
}
// An id breaks after its separators before it breaks anywhere else.
function idText(text) {
  const box = el("div", {className: "id"});
  for (const part of text.split(/(?<=[._-])/)) box.append(part, el("wbr"));
  return box;
}
function card(c) {
  const it = c.item, head = it.id + (c.n > 1 ? "  (" + c.k + "/" + c.n + ")" : "");
  const lines = [head, ...[...Object.keys(common), ...keys.filter(k => !(k in common))]
    .map(k => k + ": " + show(value(it, k)))];
  if (it.error) lines.push("error: " + it.error[0] + ": " + it.error[1]);
  const fig = el("figure", {className: "card" + (it.error ? " failed" : "")
                                       + (c.lost ? " missing" : ""), title: lines.join("\n")});
  if (c.src && !c.lost) {
    const img = el("img", {loading: "lazy", alt: it.id,
                           src: c.src.split("/").map(encodeURIComponent).join("/")});
    const w = value(it, "img_width"), h = value(it, "img_height");
    if (typeof w === "number" && typeof h === "number") { img.width = w; img.height = h; }
    fig.append(el("a", {href: img.getAttribute("src"), target: "_blank"}, img));
  } else {
    const why = it.error ? it.error[0] + ": " + it.error[1]
      : c.lost ? "image missing on disk: run the same command again to download it"
      : "no image recorded";
    fig.append(el("div", {className: "reason", textContent: why}));
  }
  const vals = keys.filter(k => k !== state.group && k !== "prompt")
    .map(k => k + " " + show(value(it, k)));
  fig.append(el("figcaption", {}, idText(head),
    el("div", {className: "vals", textContent: vals.join(" · ")}),
    el("div", {className: "prompt", textContent: show(value(it, "prompt"))})));
  if (c.src && !it.error) {
    const pre = el("pre"), button = el("button", {type: "button", textContent: "copy"});
    const info = el("details", {className: "info"},
                    el("summary", {textContent: "parameters"}), pre, button);
    info.addEventListener("toggle", () => { if (!pre.textContent) pre.textContent = infotext(c); });
    button.addEventListener("click", () => copy(infotext(c), button));
    fig.append(info);
  }
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
const lineKey = c => keys.filter(k => k !== state.group && k !== state.across)
  .map(k => JSON.stringify(value(c.item, k) ?? null)).join("\u0000");
function render() {
  const list = chosen(), pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  count.textContent = list.length + " of " + cards.length + " shown";
  const sheet = document.getElementById("sheet");
  sheet.replaceChildren();
  let grid = null, lastGroup, lastLine;
  for (const c of list.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
    const g = state.group ? JSON.stringify(value(c.item, state.group) ?? null) : "";
    const l = state.across ? lineKey(c) : "";
    if (!grid || g !== lastGroup) {
      if (state.group) sheet.append(el("div", {className: "group",
        textContent: state.group + ": " + show(value(c.item, state.group))}));
      lastLine = undefined;
    }
    if (!grid || g !== lastGroup || l !== lastLine) {
      grid = el("div", {className: "sheet"});
      if (state.across) {
        const label = keys.filter(k => k !== state.group && k !== state.across && k !== "prompt")
          .map(k => k + " " + show(value(c.item, k))).join(" · ");
        sheet.append(el("div", {className: "line"},
                        el("div", {className: "line-label", textContent: label}), grid));
      } else sheet.append(grid);
      lastGroup = g; lastLine = l;
    }
    grid.append(card(c));
  }
  pager(document.getElementById("pages-top"), pages);
  pager(document.getElementById("pages-bottom"), pages);
}
if (failed.length) {
  const body = document.querySelector("#failed tbody");
  for (const it of failed.slice(0, MAX_FAILED))
    body.append(el("tr", {}, ...[it.id, it.error[0], it.error[1], show(value(it, "prompt"))]
                               .map(t => el("td", {textContent: t}))));
  if (failed.length > MAX_FAILED)
    document.getElementById("failed-more").textContent =
      (failed.length - MAX_FAILED) + " more in failed.jsonl";
  document.getElementById("failed").hidden = false;
}
render();
})();
