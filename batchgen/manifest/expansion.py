"""One entry into its items: defaults, sweep, templates, checks and ids.

An entry is first opened (its id, model and expand mode checked, once), then yields
candidates lazily: the item's keys over the defaults, for each combination of the
sweep, for each expansion of its templates. A candidate becomes an item when its
parameters pass the model's schema. Candidates cost little and say nothing, so a pass
that skips some (breadth-first order) reports nothing twice.

Problems are reported where their value was written: the item's own line, or once for
the whole manifest when the value came from ``defaults``, the sweep or a wildcard file.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batchgen.manifest.header import Header
from batchgen.manifest.ids import (
    MODEL_PATTERN,
    STRICT_JSON,
    expansion_id,
    id_from_body,
    id_problem,
    kind_of,
    template_id,
)
from batchgen.manifest.item import Item
from batchgen.manifest.modes import ExpandMode, parse_expand
from batchgen.manifest.schema import ModelSchema, did_you_mean, known_models, schema_for
from batchgen.manifest.sources import Entry, Report
from batchgen.manifest.templates import (
    TEMPLATE_FIELDS,
    Issue,
    TemplateError,
    Templates,
    is_template,
)

_MISSING: Any = object()


@dataclass(slots=True)
class Plan:
    """An opened entry: what it asks for, checked once."""

    entry: Entry
    own: dict[str, Any]
    explicit_id: str | None
    label: str | None
    model: str
    schema: ModelSchema
    mode: ExpandMode
    ok: bool
    seen: set[tuple[str, str]] = field(default_factory=set)  # its own problems, once each


@dataclass(slots=True)
class Candidate:
    """One combination of one entry: its keys before model defaults, and expanded texts."""

    params: dict[str, Any]
    combo: dict[str, Any]
    texts: dict[str, str] = field(default_factory=dict)  # field -> expanded text
    sources: dict[str, str] = field(default_factory=dict)  # field -> its template


class Expander:
    """Opens entries and turns their candidates into items, reporting what is wrong."""

    def __init__(self, header: Header, templates: Templates, report: Report, *,
                 allow_unknown_params: bool, max_expansions: int) -> None:
        self.header = header
        self.templates = templates
        self.report = report
        self.allow_unknown_params = allow_unknown_params
        self.max_expansions = max_expansions
        self.shared: set[tuple[Any, ...]] = set()  # problems reported once per manifest

    def open(self, entry: Entry) -> Plan:
        own = entry.fields  # built by the reader for this entry alone: ours to change
        header = self.header
        explicit = own.pop("id", _MISSING)
        item_model = "model" in own
        model = own.pop("model", header.model)
        label = explicit if isinstance(explicit, str) else None
        plan = Plan(entry, own, None, label, model, schema_for(""), header.expand, entry.ok)
        if explicit is not _MISSING:
            why = id_problem(explicit)
            if why:
                self._own(plan, "id", why)
                plan.ok = False
            else:
                plan.explicit_id = explicit
        if model is not header.model and (not isinstance(model, str)
                                          or not MODEL_PATTERN.fullmatch(model)):
            if model != "":  # "" is a broken manifest-level model, already reported
                self._own(plan, "model", f"not a model slug: {model!r}")
            plan.ok = False
        elif isinstance(model, str) and model:
            plan.schema = schema_for(model)
            self._warn_unknown_model(plan, item_model)
        if "expand" in own:
            mode = parse_expand(own.pop("expand"), self.max_expansions)
            if isinstance(mode, str):
                self._own(plan, "expand", mode)
                plan.ok = False
            else:
                plan.mode = mode
        for key in header.sweep.keys:
            if key in own:
                section = "matrix" if key in header.sweep.matrix else "zip"
                self._own(plan, key, f"set on the item and swept by {section}: the {section} "
                          "values are used", "warning")
        return plan

    def candidates(self, plan: Plan) -> Iterator[Candidate]:
        """Every combination of the entry, lazily, at most ``max_expansions``."""
        defaults, own = self.header.defaults, plan.own
        count = 0
        for combo in self.header.sweep:
            params = {**defaults, **own, **combo} if defaults or combo else own
            for candidate in self._expand_texts(plan, params, combo):
                count += 1
                if count > self.max_expansions:
                    self._own(plan, None, f"expands to more than {self.max_expansions:,} "
                              "items (--max-expansions): split it or raise the limit")
                    plan.ok = False
                    return
                yield candidate

    def item(self, plan: Plan, candidate: Candidate) -> tuple[Item, bool] | None:
        """The item of a candidate and whether its id was derived; None when invalid."""
        params = plan.schema.with_defaults(candidate.params)
        findings = plan.schema.check(params, allow_unknown=self.allow_unknown_params)
        ok = plan.ok and not any(f.severity == "error" for f in findings)
        try:
            body: str | None = STRICT_JSON.encode({"model": plan.model, "params": params})
        except (TypeError, ValueError):
            body, ok = None, False
        if findings or body is None:
            if plan.label is None and body is not None:
                plan.label = id_from_body(body, params)
            for finding in findings:
                self.finding(plan, candidate, finding.field, finding.message, finding.severity)
            if body is None:
                flagged = {f.field for f in findings if f.severity == "error"}
                for key, value in params.items():
                    if key not in flagged and not _is_json(value):
                        self.finding(plan, candidate, key,
                                     "must be JSON data (text, numbers, true/false, null, "
                                     f"lists, mappings), got {kind_of(value)}", "error")
        if not ok or body is None:
            return None
        if plan.explicit_id is None:
            return Item(id_from_body(body, params), plan.model, params, plan.entry.file,
                        plan.entry.line), True
        base = plan.explicit_id
        if candidate.texts:
            fixed = frozenset().union(*(self.templates.fixed_words(text)
                                        for text in candidate.sources.values()))
            base = template_id(base, candidate.texts, fixed)
        item_id = expansion_id(base, candidate.combo) if candidate.combo else base
        # Repeats of one template expansion (drawn twice at random) are numbered, as
        # identical derived items are.
        return Item(item_id, plan.model, params, plan.entry.file, plan.entry.line), \
            bool(candidate.texts)

    # -- templates ---------------------------------------------------------------------

    def _expand_texts(self, plan: Plan, params: dict[str, Any], combo: dict[str, Any]
                      ) -> Iterator[Candidate]:
        mode = plan.mode
        fields = [] if mode.kind == "none" else [
            f for f in TEMPLATE_FIELDS if isinstance(params.get(f), str) and is_template(params[f])]
        if not fields:
            yield Candidate(params, combo)
            return
        templates = self.templates
        broken = False
        for name in fields:
            for issue in templates.check(params[name], mode):
                self._issue(plan, combo, name, issue)
                broken = True
        if broken:
            plan.ok = False
            return
        sources = {name: params[name] for name in fields}
        empty = True
        try:
            for texts in self._texts(plan.mode, sources):
                empty = False
                yield Candidate({**params, **texts}, combo, texts, sources)
        except TemplateError as exc:
            self.finding(plan, Candidate(params, combo), fields[0], str(exc), "error")
            plan.ok = False
        if empty:
            self.finding(plan, Candidate(params, combo), fields[0],
                         "the template expands to nothing", "error")
            plan.ok = False

    def _texts(self, mode: ExpandMode, sources: dict[str, str]) -> Iterator[dict[str, str]]:
        """Each field's expansions: every pair (prompt outside), or the draws side by side."""
        expand = self.templates.expand
        names = list(sources)
        if mode.kind == "random":
            draws = [expand(sources[name], mode) for name in names]
            for texts in itertools.zip_longest(*draws, fillvalue=""):
                yield dict(zip(names, texts, strict=True))
            return
        for combination in _product(expand, mode, [sources[name] for name in names]):
            yield dict(zip(names, combination, strict=True))

    def _issue(self, plan: Plan, combo: dict[str, Any], name: str, issue: Issue) -> None:
        key = ("issue", issue.once or issue.file, issue.line, issue.message)
        if issue.once or issue.file:
            if key in self.shared:
                return
            self.shared.add(key)
        if issue.file is None:
            self.finding(plan, Candidate({}, combo), name, issue.message, "error")
        else:
            self.report(issue.line, None, None, issue.message, "error", issue.file)

    # -- problems ----------------------------------------------------------------------

    def finding(self, plan: Plan, candidate: Candidate, fld: str, message: str,
                severity: str) -> None:
        """Point a problem at the line its value came from; report shared ones once."""
        header, entry = self.header, plan.entry
        if fld in candidate.combo:
            line, shared = header.sweep_lines.get(fld), True
            section = "matrix" if fld in header.sweep.matrix else "zip"
            message = f"{message} (from {section})"
        elif fld in plan.own:
            line, shared = entry.field_lines.get(fld, entry.line), False
        elif fld in header.defaults:
            line, shared = header.default_lines.get(fld), True
            message = f"{message} (from defaults)"
        else:
            line, shared = entry.line, False
        if shared:
            key = (line, fld, message)
            if key in self.shared:
                return
            self.shared.add(key)
            self.report(line, None, fld, message, severity)
            return
        if (fld, message) not in plan.seen:
            plan.seen.add((fld, message))
            self.report(line, plan.label, fld, message, severity, entry.file)

    def _own(self, plan: Plan, fld: str | None, message: str,
             severity: str = "error") -> None:
        entry = plan.entry
        line = entry.field_lines.get(fld, entry.line) if fld else entry.line
        self.report(line, plan.label, fld, message, severity, entry.file)

    def _warn_unknown_model(self, plan: Plan, item_model: bool) -> None:
        """Say once per slug that a model has no table (a typo would pass unchecked)."""
        known = known_models()
        if plan.model in known or ("model", plan.model) in self.shared:
            return
        self.shared.add(("model", plan.model))
        entry = plan.entry
        message = (f"no parameter table for model {plan.model!r}: only the prompt is "
                   f"checked, other parameters are sent as given"
                   f"{did_you_mean(plan.model, known)}")
        if item_model:
            self.report(entry.field_lines.get("model", entry.line), plan.label, "model",
                        message, "warning", entry.file)
        else:
            self.report(self.header.model_line, None, "model", message, "warning")


def _product(expand: Callable[[str, ExpandMode], Iterator[str]], mode: ExpandMode,
             sources: list[str]) -> Iterator[tuple[str, ...]]:
    """The cartesian product of the expansions, the inner ones made again for each outer."""
    if not sources:
        yield ()
        return
    for text in expand(sources[0], mode):
        for rest in _product(expand, mode, sources[1:]):
            yield (text, *rest)


def _is_json(value: Any) -> bool:
    try:
        STRICT_JSON.encode(value)
    except (TypeError, ValueError):
        return False
    return True
