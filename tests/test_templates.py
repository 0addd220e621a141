"""Prompt templates: every syntax element expands as dynamicprompts itself expands it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
from dynamicprompts.wildcards import WildcardManager

from batchgen.errors import Problem
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader

WILDCARDS = {
    "colors.txt": "red\nblue\n# a comment\n\ngreen\n",
    "people/girls.txt": "alice\nbob\n",
    "people/boys.txt": "carl\n",
    "styles.txt": "oil painting of __people/boys__\n{watercolour|ink}\n",
    "weighted.txt": "one\ntwo\n",
}

# Each element of the syntax, alone or nested (README "Templates").
TEMPLATES = [
    "a {red|blue|green} dress",
    "{2::heavy|light} rain",
    "{2$$a|b|c}",
    "{2$$ and $$cats|dogs|owls}",
    "{1-2$$x|y|z}",
    "a __colors__ hat",
    "__people/girls__ and __people/boys__",
    "__people/*__ at noon",
    "{tall|{dark|light} short} tree",
    "{__colors__|plain} car",
    "{2$$__colors__}",
    "__styles__",
    "${c=__colors__}${c} car, ${c} door",
    "{a|b}{c|d} __colors__, __people/*__",
]


def wildcards_folder(root: Path, files: dict[str, str] = WILDCARDS) -> Path:
    folder = root / "wildcards"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def manifest(root: Path, text: str, name: str = "m.yaml") -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def one_item(template: str, expand: str = "") -> str:
    return f"{expand}items:\n  - prompt: {json.dumps(template)}\n"


def read(path: Path) -> tuple[list[Item], ManifestReader]:
    reader = ManifestReader(path)
    return list(reader.items()), reader


def only_error(reader: ManifestReader) -> Problem:
    found = [p for p in reader.problems if p.severity == "error"]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("template", TEMPLATES)
def test_all_expands_as_the_library_does(tmp_path: Path, template: str) -> None:
    """expand: all gives the library's combinatorial prompts, in its order."""
    folder = wildcards_folder(tmp_path)
    expected = CombinatorialPromptGenerator(WildcardManager(folder)).generate(
        template, max_prompts=None)
    items, reader = read(manifest(tmp_path, one_item(template)))
    assert reader.valid, reader.problems
    assert [i.params["prompt"] for i in items] == expected
    assert len(expected) > 1


@pytest.mark.parametrize("template", TEMPLATES)
def test_random_draws_as_the_library_does(tmp_path: Path, template: str) -> None:
    """expand: {random: N, seed: S} gives the library's N prompts drawn with seed S."""
    folder = wildcards_folder(tmp_path)
    expected = RandomPromptGenerator(WildcardManager(folder), seed=11).generate(template, 6)
    text = one_item(template, "expand: {random: 6, seed: 11}\n")
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid, reader.problems
    assert [i.params["prompt"] for i in items] == expected


def test_random_is_the_same_on_every_pass_and_seed_changes_it(tmp_path: Path) -> None:
    """The same manifest and wildcards draw the same prompts; another seed draws others."""
    wildcards_folder(tmp_path)
    template = "{a|b|c|d} __colors__ __people/*__"
    seven = manifest(tmp_path, one_item(template, "expand: {random: 8, seed: 7}\n"), "a.yaml")
    eight = manifest(tmp_path, one_item(template, "expand: {random: 8, seed: 8}\n"), "b.yaml")
    first = [i.params["prompt"] for i in read(seven)[0]]
    assert first == [i.params["prompt"] for i in read(seven)[0]]
    assert first != [i.params["prompt"] for i in read(eight)[0]]


def test_expand_mode_per_item_overrides_the_manifest(tmp_path: Path) -> None:
    """An item's own expand wins over the manifest's; none sends the text as written."""
    text = ("expand: {random: 2, seed: 1}\nitems:\n  - prompt: '{a|b|c} x'\n"
            "  - {prompt: '{a|b|c} y', expand: all}\n  - {prompt: '{a|b} z', expand: none}\n")
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid, reader.problems
    prompts = [i.params["prompt"] for i in items]
    assert len([p for p in prompts if p.endswith(" x")]) == 2
    assert [p for p in prompts if p.endswith(" y")] == ["a y", "b y", "c y"]
    assert [p for p in prompts if p.endswith(" z")] == ["{a|b} z"]


def test_negative_prompt_is_a_template_too(tmp_path: Path) -> None:
    """Both fields expand; under expand: all every pair is an item, prompt outside."""
    text = "items:\n  - prompt: '{a|b}'\n    negative_prompt: '{x|y}, blurry'\n"
    items, _ = read(manifest(tmp_path, text))
    assert [(i.params["prompt"], i.params["negative_prompt"]) for i in items] == [
        ("a", "x, blurry"), ("a", "y, blurry"), ("b", "x, blurry"), ("b", "y, blurry")]


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("a {b|c} \\{literal\\} 100\\% cotton, \\$10, \\#1", "a b {literal} 100% cotton, $10, #1"),
        ("snake\\_\\_case {x}", "snake__case x"),
        ("back\\\\slash {x}", "back\\slash x"),
        ("a \\n stays {x}", "a \\n stays x"),
    ],
)
def test_backslash_writes_a_literal(tmp_path: Path, written: str, sent: str) -> None:
    """A backslash before { } | $ # % _ or itself makes it text; other backslashes stay."""
    items, reader = read(manifest(tmp_path, f"items:\n  - prompt: '{written}'\n"))
    assert reader.valid, reader.problems
    assert items[0].params["prompt"] == sent


@pytest.mark.parametrize("prompt", ["100% cotton, $10, #1 // a, b", "C:\\path {not", "x}y"])
def test_plain_prompt_is_sent_as_written(tmp_path: Path, prompt: str) -> None:
    """Text without { or __ is no template: it is sent exactly as written."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"prompt": prompt.replace(" {not", " not")}) + "\n")
    (item,), reader = read(path)
    assert reader.valid and item.params["prompt"] == prompt.replace(" {not", " not")


def test_wildcards_folder_named_in_the_manifest(tmp_path: Path) -> None:
    """wildcards: DIR, relative to the manifest, replaces the folder beside it."""
    wildcards_folder(tmp_path / "elsewhere", {"colors.txt": "teal\n"})
    wildcards_folder(tmp_path)
    text = "wildcards: elsewhere/wildcards\nitems: ['__colors__ car']\n"
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid and [i.params["prompt"] for i in items] == ["teal car"]


def test_jsonl_uses_the_wildcards_beside_it(tmp_path: Path) -> None:
    """A JSONL manifest finds wildcards/ beside it, and a line may set its own expand."""
    wildcards_folder(tmp_path)
    lines = [{"prompt": "__people/boys__ runs"},
             {"prompt": "{a|b}", "expand": {"random": 3, "seed": 2}}]
    path = manifest(tmp_path, "".join(json.dumps(x) + "\n" for x in lines), "m.jsonl")
    items, reader = read(path)
    assert reader.valid, reader.problems
    assert items[0].params["prompt"] == "carl runs" and len(items) == 4


# -- ids ---------------------------------------------------------------------------------


def test_explicit_id_gets_a_readable_suffix_per_expansion(tmp_path: Path) -> None:
    """An explicit id becomes id.<chosen words>-<hash>, then the sweep's key-values."""
    wildcards_folder(tmp_path)
    text = ("matrix: {seed: [1]}\nitems:\n"
            "  - {id: dress, prompt: 'a {red|blue} dress worn by __people/girls__'}\n")
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid
    ids = [i.id for i in items]
    assert [i.split("-")[0] for i in ids] == ["dress.red"] * 2 + ["dress.blue"] * 2
    assert ids[0].startswith("dress.red-alice-") and ids[0].endswith(".seed-1")
    assert len(set(ids)) == 4


def test_repeated_random_draws_are_numbered(tmp_path: Path) -> None:
    """Drawing the same text twice gives two items, the repeat with -2, explicit id or not."""
    text = ("expand: {random: 4, seed: 3}\nitems:\n  - {id: coin, prompt: '{heads|tails}'}\n"
            "  - '{heads|tails} again'\n")
    items, reader = read(manifest(tmp_path, text))
    assert reader.valid, reader.problems
    coin = [i.id for i in items if i.id.startswith("coin.")]
    assert len(coin) == 4 and len(set(coin)) == 4
    assert any(i.endswith("-2") for i in coin)


def test_one_wildcard_line_edit_renames_only_the_items_that_drew_it(tmp_path: Path) -> None:
    """Editing green into teal changes only the ids of the items that used green."""
    folder = wildcards_folder(tmp_path)
    text = ("items:\n  - {id: hat, prompt: '__colors__ hat, {wool|felt}'}\n"
            "  - '__colors__ scarf'\n")
    path = manifest(tmp_path, text)
    before = {i.params["prompt"]: i.id for i in read(path)[0]}
    (folder / "colors.txt").write_text("red\nblue\n# a comment\n\nteal\n")
    after = {i.params["prompt"]: i.id for i in read(path)[0]}
    unchanged = {p for p in before if "green" not in p}
    assert {p: after[p] for p in unchanged} == {p: before[p] for p in unchanged}
    changed = set(after.values()) - set(before.values())
    assert len(changed) == 3 and len(after) == len(before) == 9
