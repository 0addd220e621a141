"""Prompt templates in the dynamicprompts syntax, expanded by the dynamicprompts library.

``{red|blue} dress``, weights ``{2::a|b}``, counts ``{2$$a|b|c}`` with separators
``{2$$ and $$a|b|c}``, wildcards ``__name__`` and globs ``__people/*__``, nesting: the
syntax of A1111's sd-dynamic-prompts, ComfyUI and InvokeAI, parsed and expanded by the
library those tools use. Only ``prompt`` and ``negative_prompt`` are templates, and only
when they hold ``{`` or ``__``: any other text is sent as written, so the fast path
never loads the library.

Two things are added around the library, neither a grammar of its own:
- backslash escapes (``escapes.py``) for text the grammar would take as syntax;
- checks before expanding: wildcards that do not exist, empty or unreadable wildcard
  files, wildcards that refer back to themselves, each with its file and line. The
  library would yield an unknown wildcard's name forever or recurse without end.

The library re-parses every wildcard line for every combination it makes (about 600 us
an item); ``_Context`` parses each text once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from random import Random
from typing import Any

from batchgen.manifest.escapes import ESCAPABLE, hide_escapes, restore_escapes
from batchgen.manifest.ids import slug_of
from batchgen.manifest.modes import ExpandMode
from batchgen.manifest.schema import did_you_mean
from batchgen.manifest.wildcards import NoWildcardValues, WildcardFolder

TEMPLATE_FIELDS = ("prompt", "negative_prompt")
# The library's own log lines (a wildcard found through **/, an unknown one) are
# reported by the checks here instead, with file and line.
logging.getLogger("dynamicprompts").setLevel(logging.ERROR)


def is_template(text: str) -> bool:
    """True when ``text`` holds template syntax; other text is sent as written."""
    return "{" in text or "__" in text


def as_sent(line: dict[str, Any]) -> dict[str, Any]:
    """A manifest line of a prompt as it was sent: marked ``expand: none`` when its text
    would otherwise be read as a template (braces, ``__``), so reading it back gives the
    same item, id and parameters."""
    if any(isinstance(line.get(k), str) and is_template(line[k]) for k in TEMPLATE_FIELDS):
        line["expand"] = "none"
    return line


class TemplateError(Exception):
    """A template that cannot be expanded; the message says why."""


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem with a template.

    ``file`` and ``line`` when it lies in a wildcard file, else it is reported where the
    template was written; ``once`` names a problem to report once per manifest (an empty
    wildcard file is one problem, however many items draw from it).
    """

    message: str
    file: str | None = None
    line: int | None = None
    once: str | None = None


class Templates:
    """Checks and expands the templates of one manifest, with its wildcard folder."""

    def __init__(self, wildcards: WildcardFolder) -> None:
        self.wildcards = wildcards
        self._checked: dict[tuple[str, str], tuple[Issue, ...]] = {}

    def check(self, text: str, mode: ExpandMode) -> tuple[Issue, ...]:
        """Every problem of ``text`` under ``mode``, found without expanding it."""
        key = (text, mode.kind)
        found = self._checked.get(key)
        if found is None:
            found = tuple(self._check(text, mode))
            if len(self._checked) > 4096:  # a bound for a million distinct templates
                self._checked.clear()
            self._checked[key] = found
        return found

    def expand(self, text: str, mode: ExpandMode) -> Iterator[str]:
        """The texts ``text`` expands to: all of them in order, or ``mode.count`` drawn."""
        command = _parse(hide_escapes(text))
        if mode.kind == "random":
            context = self._context("RANDOM", Random(mode.seed))
            results = context.sample_prompts(command, mode.count)
        else:
            # Random parts nested in an `all` expansion draw from a seeded generator too,
            # so that every run gives the same items (the library's default is unseeded).
            results = self._context("COMBINATORIAL", Random(0)).sample_prompts(command)
        try:
            for result in results:
                yield restore_escapes(str(result))
        except NoWildcardValues as exc:
            raise TemplateError(f"wildcard __{exc.name}__ has no values") from None
        except (KeyError, ValueError, RecursionError) as exc:
            raise TemplateError(f"cannot expand the template: {exc}") from None

    def _context(self, method: str, rand: Random) -> Any:
        from dynamicprompts.enums import SamplingMethod

        return _context_class()(wildcard_manager=self.wildcards.manager,
                                default_sampling_method=SamplingMethod[method], rand=rand)

    def _check(self, text: str, mode: ExpandMode) -> Iterator[Issue]:
        try:
            command = _parse(hide_escapes(text))
        except TemplateError as exc:
            yield Issue(str(exc))
            return
        if mode.kind == "all" and _endless(command):
            yield Issue("a template whose whole text is drawn at random ({~...}, {@...}) "
                        "has no end under expand: all; use expand: {random: N, seed: S}")
        yield from self._check_wildcards(command, ())

    def _check_wildcards(self, command: Any, stack: tuple[str, ...]) -> Iterator[Issue]:
        from dynamicprompts.commands import WildcardCommand

        for node in _walk(command):
            if isinstance(node, WildcardCommand) and isinstance(node.wildcard, str):
                yield from self._check_reference(node.wildcard, stack)

    def _check_reference(self, name: str, stack: tuple[str, ...]) -> Iterator[Issue]:
        folder = self.wildcards
        if folder.root is None:
            yield Issue(f"unknown wildcard __{name}__: there is no wildcards folder "
                        "(wildcards/ beside the manifest, or wildcards: DIR)")
            return
        files = folder.resolve(name)
        if not files:
            hint = did_you_mean(name, sorted(folder.files))
            yield Issue(f"unknown wildcard __{name}__{hint} ({len(folder.files)} wildcard "
                        f"files in {folder.root})")
            return
        for found in files:
            if found.problem:
                text = (f"wildcard file {found.path} {found.problem}"
                        if found.problem.startswith("is ") else found.problem)
                yield Issue(f"__{name}__: {text}", once=str(found.path))
            elif found.name in stack:
                path = " -> ".join(f"__{n}__" for n in (*stack, found.name))
                yield Issue(f"wildcard __{found.name}__ refers back to itself ({path})")
            else:
                yield from self._check_lines(found.name, found.path, found.lines, stack)

    def _check_lines(self, name: str, path: Any, lines: list[tuple[int, str]],
                     stack: tuple[str, ...]) -> Iterator[Issue]:
        for number, value in lines:
            if not is_template(value):
                continue
            try:
                nested = _parse(hide_escapes(value))
            except TemplateError as exc:
                yield Issue(f"in wildcard __{name}__: {exc}", str(path), number)
                continue
            for issue in self._check_wildcards(nested, (*stack, name)):
                yield issue if issue.file else dataclasses.replace(
                    issue, file=str(path), line=number)

    def fixed_words(self, text: str) -> frozenset[str]:
        """The slug words of the template's own literal text (not of its variants)."""
        from dynamicprompts.commands import LiteralCommand, SequenceCommand

        command = _parse(hide_escapes(text))
        parts = command.tokens if isinstance(command, SequenceCommand) else [command]
        literal = " ".join(p.literal for p in parts if isinstance(p, LiteralCommand))
        return frozenset(slug_of(restore_escapes(literal)).split("-"))


@functools.lru_cache(maxsize=8192)
def _parse(text: str) -> Any:
    """The library's parse of ``text`` (escapes already hidden), once per text."""
    import pyparsing
    from dynamicprompts.parser.parse import parse

    try:
        return parse(text)
    except pyparsing.ParseBaseException as exc:
        column = exc.col
        found = text[exc.loc:exc.loc + 1]
        hint = (f"; a literal {found} is written \\{found}"
                if found and found in ESCAPABLE and found != "\\" else "")
        raise TemplateError(f"template syntax error at column {column}: {exc.msg}"
                            f"{hint}") from None
    except ValueError as exc:
        raise TemplateError(f"template syntax error: {exc}") from None


def _walk(command: Any) -> Iterator[Any]:
    """Every command in a parsed template, the given one first."""
    from dynamicprompts.commands import Command

    pending = [command]
    while pending:
        node = pending.pop()
        yield node
        if not dataclasses.is_dataclass(node):
            continue
        for item in dataclasses.fields(node):
            value = getattr(node, item.name)
            values = (value.values() if isinstance(value, dict) else
                      value if isinstance(value, list | tuple) else [value])
            for child in values:
                if isinstance(child, Command) or (dataclasses.is_dataclass(child)
                                                  and not isinstance(child, type)):
                    pending.append(child)


def _endless(command: Any) -> bool:
    from dynamicprompts.enums import SamplingMethod

    return getattr(command, "sampling_method", None) in (SamplingMethod.RANDOM,
                                                         SamplingMethod.CYCLICAL)


@functools.cache
def _context_class() -> type:
    from dynamicprompts.sampling_context import SamplingContext

    @dataclass(frozen=True)
    class Context(SamplingContext):
        """The library's context, parsing each text once (wildcard lines included)."""

        def sample_prompts(self, prompt: Any, num_prompts: int | None = None) -> Any:
            if isinstance(prompt, str) and prompt:
                prompt = _parse(prompt)
            return super().sample_prompts(prompt, num_prompts)

    return Context
