"""Reading, expanding and validating manifests through ManifestReader."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from batchgen.errors import Problem
from batchgen.manifest.ids import canonical_json, derived_id
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader
from batchgen.manifest.schema import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: Any) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def read(path: Path, **kwargs: Any) -> tuple[list[Item], ManifestReader]:
    reader = ManifestReader(path, **kwargs)
    return list(reader.items()), reader


def errors(reader: ManifestReader) -> list[Problem]:
    return [p for p in reader.problems if p.severity == "error"]


def warnings(reader: ManifestReader) -> list[Problem]:
    return [p for p in reader.problems if p.severity == "warning"]


def only_error(reader: ManifestReader) -> Problem:
    found = errors(reader)
    assert len(found) == 1, found
    return found[0]


# -- YAML structure ------------------------------------------------------------------


def test_model_defaults_to_epicrealism(tmp_path: Path) -> None:
    """Without `model`, items go to sd1.5-epicrealism with its defaults filled in."""
    (item,), _ = read(write(tmp_path, "m.yaml", "items:\n  - a fox\n"))
    assert item.model == DEFAULT_MODEL
    assert item.params == {"prompt": "a fox", "num_inference_steps": 20, "guidance_scale": 7.5,
                           "samples": 1, "seed": -1, "img_width": 512, "img_height": 512,
                           "base64": False}


def test_bare_string_item_is_a_prompt(tmp_path: Path) -> None:
    """A bare string in `items` is an item with that prompt and a derived id."""
    (item,), reader = read(write(tmp_path, "m.yaml", "items:\n  - a fox in snow\n"))
    assert item.params["prompt"] == "a fox in snow"
    assert item.id == derived_id(DEFAULT_MODEL, item.params)
    assert reader.valid


def test_item_keys_override_defaults(tmp_path: Path) -> None:
    """An item's own keys win over `defaults`, which win over the model defaults."""
    text = ("defaults:\n  samples: 2\n  num_inference_steps: 30\n"
            "items:\n  - prompt: x\n    samples: 3\n")
    (item,), _ = read(write(tmp_path, "m.yaml", text))
    assert (item.params["samples"], item.params["num_inference_steps"]) == (3, 30)
    assert item.params["guidance_scale"] == 7.5


def test_matrix_is_a_cartesian_sweep(tmp_path: Path) -> None:
    """`matrix` makes one item per combination of its values."""
    text = "matrix:\n  seed: [1, 2, 3]\n  samples: [1, 2]\nitems:\n  - prompt: x\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    combos = sorted((i.params["seed"], i.params["samples"]) for i in items)
    assert combos == [(s, n) for s in (1, 2, 3) for n in (1, 2)]
    assert (reader.entries, reader.requests, reader.images) == (1, 6, 9)


def test_matrix_wins_over_item_key_with_warning(tmp_path: Path) -> None:
    """A key both set on the item and swept uses the matrix values and warns."""
    text = "matrix:\n  seed: [1, 2]\nitems:\n  - prompt: x\n    seed: 9\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    assert sorted(i.params["seed"] for i in items) == [1, 2]
    (warning,) = warnings(reader)
    assert (warning.line, warning.field) == (5, "seed")


def test_top_level_list_of_items(tmp_path: Path) -> None:
    """A YAML document that is a bare list is a list of items."""
    items, _ = read(write(tmp_path, "m.yaml", "- a\n- prompt: b\n  seed: 3\n"))
    assert [i.params["prompt"] for i in items] == ["a", "b"]


def test_demo_manifest(tmp_path: Path) -> None:
    """jobs/demo.yaml is valid: 4 prompts and 2 template draws x 3 seeds, 2 samples once."""
    items, reader = read(REPO / "jobs" / "demo.yaml")
    assert reader.valid and reader.problems == []
    assert (reader.entries, reader.requests, reader.images) == (5, 18, 21)
    assert "red-dress.seed-101" in {i.id for i in items}


def test_items_file_is_relative_to_the_yaml(tmp_path: Path) -> None:
    """`items_file` is read beside the YAML, and its items get defaults and matrix."""
    sub = tmp_path / "job"
    sub.mkdir()
    write(sub, "rows.jsonl", jsonl({"prompt": "a"}, {"prompt": "b", "id": "b"}))
    text = "defaults:\n  samples: 2\nmatrix:\n  seed: [1, 2]\nitems_file: rows.jsonl\n"
    items, reader = read(write(sub, "m.yaml", text))
    assert reader.valid
    assert len(items) == 4
    assert all(i.params["samples"] == 2 and i.file == str(sub / "rows.jsonl") for i in items)
    assert {"b.seed-1", "b.seed-2"} <= {i.id for i in items}


def test_items_and_items_file_together(tmp_path: Path) -> None:
    """`items` and `items_file` may both be given; both are read."""
    write(tmp_path, "rows.jsonl", jsonl({"prompt": "from file"}))
    items, _ = read(write(tmp_path, "m.yaml", "items: [inline]\nitems_file: rows.jsonl\n"))
    assert sorted(i.params["prompt"] for i in items) == ["from file", "inline"]


def test_item_remembers_file_and_line(tmp_path: Path) -> None:
    """Each item carries the file and line it was written on."""
    path = write(tmp_path, "m.yaml", "items:\n  - a\n  - prompt: b\n")
    items, _ = read(path)
    assert [(i.file, i.line) for i in items] == [(str(path), 2), (str(path), 3)]


def test_other_model_passes_params_through(tmp_path: Path) -> None:
    """For a model without a table, unknown parameters pass through untouched."""
    text = "model: flux-dev\nitems:\n  - prompt: x\n    steps: 4\n    style: [a, b]\n"
    (item,), reader = read(write(tmp_path, "m.yaml", text))
    assert reader.valid
    assert item.model == "flux-dev"
    assert item.params == {"prompt": "x", "steps": 4, "style": ["a", "b"]}


def test_safe_loader_only(tmp_path: Path) -> None:
    """A Python tag is refused as malformed YAML and nothing is constructed."""
    marker = tmp_path / "ran"
    text = f"items:\n  - !!python/object/apply:os.system ['touch {marker}']\n"
    _, reader = read(write(tmp_path, "m.yaml", text))
    problem = only_error(reader)
    assert "malformed YAML" in problem.message and problem.line == 2
    assert not marker.exists()


# -- JSONL -----------------------------------------------------------------------------


def test_jsonl_items(tmp_path: Path) -> None:
    """Each JSONL line is an item with its own params, optional id and model."""
    text = jsonl({"prompt": "a", "seed": 5}, {"prompt": "b", "id": "bee", "model": "other-x"})
    items, reader = read(write(tmp_path, "m.jsonl", text))
    assert reader.valid
    assert items[0].params["seed"] == 5 and items[0].line == 1
    assert (items[1].id, items[1].model, items[1].line) == ("bee", "other-x", 2)
    assert {m: c.requests for m, c in reader.counts.items()} == {DEFAULT_MODEL: 1, "other-x": 1}


def test_jsonl_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    """Blank lines and lines starting with # are skipped; line numbers stay true."""
    text = jsonl("# header", "", "   ", {"prompt": "a"}, "  # indented", {"prompt": "b"})
    items, reader = read(write(tmp_path, "m.jsonl", text))
    assert [i.line for i in items] == [4, 6]
    assert reader.entries == 2


def test_jsonl_with_bom(tmp_path: Path) -> None:
    """A UTF-8 byte order mark before the first line is not an error."""
    path = write(tmp_path, "m.jsonl", b'\xef\xbb\xbf{"prompt": "a"}\n')
    items, reader = read(path)
    assert reader.valid and len(items) == 1


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    """Reading a JSONL never holds the file: peak memory stays far below its size."""
    prompt = "a very long prompt " * 50
    path = write(tmp_path, "m.jsonl", jsonl(*({"prompt": f"{prompt}{n}"} for n in range(5000))))
    reader = ManifestReader(path)
    tracemalloc.start()
    try:
        assert reader.check()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 10


def test_each_pass_starts_afresh(tmp_path: Path) -> None:
    """A second pass gives the same items and counts, not doubled ones."""
    reader = ManifestReader(write(tmp_path, "m.jsonl", jsonl({"prompt": "a"}, {"prompt": "b"})))
    first = [i.id for i in reader.items()]
    second = [i.id for i in reader.items()]
    assert first == second and reader.requests == 2


# -- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("item_id", ["a", "0", "A.b_c-1", "x" * 128, "v1.2", "trailing."])
def test_valid_explicit_ids(tmp_path: Path, item_id: str) -> None:
    """Ids of letters, digits, '.', '_' and '-' up to 128 characters are kept as given."""
    (item,), reader = read(write(tmp_path, "m.jsonl", jsonl({"prompt": "p", "id": item_id})))
    assert reader.valid and item.id == item_id


@pytest.mark.parametrize(
    ("item_id", "words"),
    [
        ("../x", "not a valid id"),
        (".hidden", "not a valid id"),
        ("a/b", "not a valid id"),
        ("a\\b", "not a valid id"),
        ("a..b", "not a valid id"),
        ("-x", "not a valid id"),
        ("", "not a valid id"),
        ("a b", "not a valid id"),
        ("x" * 129, "not a valid id"),
        (5, "must be a string, got int"),
        (True, "must be a string, got a boolean"),
        (None, "must be a string, got null"),
        (["a"], "must be a string, got list"),
    ],
)
def test_bad_explicit_ids(tmp_path: Path, item_id: Any, words: str) -> None:
    """A bad id is an error on the id field of its line, and the item is not yielded."""
    path = write(tmp_path, "m.jsonl", jsonl({"prompt": "ok"}, {"prompt": "p", "id": item_id}))
    items, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "id")
    assert words in problem.message
    assert len(items) == 1


def test_null_id_in_yaml_is_an_error(tmp_path: Path) -> None:
    """`id:` with no value is a bad id on its own line, not a silently derived one."""
    _, reader = read(write(tmp_path, "m.yaml", "items:\n  - prompt: x\n    id:\n"))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (3, "id")


def test_duplicate_explicit_ids(tmp_path: Path) -> None:
    """A second item with the same id is an error naming the first item's line."""
    text = jsonl({"prompt": "a", "id": "x"}, {"prompt": "b"}, {"prompt": "c", "id": "x"})
    items, reader = read(write(tmp_path, "m.jsonl", text))
    problem = only_error(reader)
    assert (problem.line, problem.item, problem.field) == (3, "x", "id")
    assert "line 1" in problem.message
    assert len(items) == 2


def test_ids_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    """Fox and fox would be one image file on a case-insensitive disk: an error."""
    text = jsonl({"prompt": "a", "id": "Fox"}, {"prompt": "b", "id": "fox"})
    items, reader = read(write(tmp_path, "m.jsonl", text))
    problem = only_error(reader)
    assert (problem.line, problem.item, problem.field) == (2, "fox", "id")
    assert [item.id for item in items] == ["Fox"]


@pytest.mark.parametrize("order", ["samples first", "single first"])
def test_sample_image_names_cannot_collide_with_ids(tmp_path: Path, order: str) -> None:
    """`shot` with two samples writes shot-2.png, so an item `shot-2` is an error."""
    pair = {"prompt": "a", "id": "shot", "samples": 2}
    single = {"prompt": "b", "id": "shot-2"}
    rows = (pair, single) if order == "samples first" else (single, pair)
    items, reader = read(write(tmp_path, "m.jsonl", jsonl(*rows)))
    problem = only_error(reader)
    assert problem.line == 2
    assert "shot-2" in problem.message or problem.item == "shot-2"
    assert len(items) == 1


def test_duplicate_ids_between_items_and_items_file(tmp_path: Path) -> None:
    """An id used both inline and in the items_file is a duplicate."""
    write(tmp_path, "rows.jsonl", jsonl({"prompt": "b", "id": "x"}))
    text = "items:\n  - {id: x, prompt: a}\nitems_file: rows.jsonl\n"
    _, reader = read(write(tmp_path, "m.yaml", text))
    problem = only_error(reader)
    assert (problem.file, problem.line) == (str(tmp_path / "rows.jsonl"), 1)


def test_derived_id_is_stable_and_ignores_key_order() -> None:
    """The derived id depends on model and parameter values, not on key order."""
    one = derived_id(DEFAULT_MODEL, {"prompt": "A Fox!", "seed": 1, "samples": 2})
    two = derived_id(DEFAULT_MODEL, {"samples": 2, "seed": 1, "prompt": "A Fox!"})
    assert one == two
    assert one.startswith("a-fox-")
    assert derived_id("other", {"prompt": "A Fox!", "seed": 1, "samples": 2}) != one
    assert derived_id(DEFAULT_MODEL, {"prompt": "A Fox!", "seed": 2, "samples": 2}) != one


def test_derived_id_of_unsluggable_prompt_is_the_hash() -> None:
    """A prompt with no ASCII letters or digits gives a bare hash, still a valid id."""
    assert len(derived_id(DEFAULT_MODEL, {"prompt": "日本"})) == 12


def test_canonical_json_is_compact_and_sorted() -> None:
    """canonical_json sorts keys, drops spaces and keeps non-ASCII text as is."""
    assert canonical_json({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}'


def test_identical_items_get_occurrence_suffixes(tmp_path: Path) -> None:
    """Identical derived items are all kept, the repeats with -2, -3 suffixes."""
    text = jsonl({"prompt": "a"}, {"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"})
    items, reader = read(write(tmp_path, "m.jsonl", text))
    base = derived_id(DEFAULT_MODEL, items[0].params)
    assert reader.valid
    assert [i.id for i in items] == [base, f"{base}-2", items[2].id, f"{base}-3"]


def test_same_item_spelled_differently_shares_derived_id(tmp_path: Path) -> None:
    """An item giving a default explicitly is the same request as one leaving it out."""
    text = jsonl({"prompt": "a"}, {"prompt": "a", "samples": 1})
    items, _ = read(write(tmp_path, "m.jsonl", text))
    assert items[1].id == f"{items[0].id}-2"


def test_ids_stable_across_runs(tmp_path: Path) -> None:
    """Two readers of the same manifest give the same ids."""
    path = write(tmp_path, "m.yaml", "matrix:\n  seed: [1, 2]\nitems: [a, b, {id: c, prompt: c}]\n")
    assert [i.id for i in ManifestReader(path).items()] == [
        i.id for i in ManifestReader(path).items()]


def test_matrix_ids_of_explicit_item(tmp_path: Path) -> None:
    """An explicit id swept by matrix becomes id.key-value, keys in sorted order."""
    text = "matrix:\n  seed: [7]\n  scheduler: [DPM Multi]\nitems:\n  - {id: fox, prompt: x}\n"
    (item,), _ = read(write(tmp_path, "m.yaml", text))
    assert item.id == "fox.scheduler-DPM_Multi.seed-7"


def test_matrix_id_falls_back_to_hash(tmp_path: Path) -> None:
    """A swept value that cannot be spelled in an id gives a hashed, valid, distinct id."""
    text = "matrix:\n  prompt: [a/b, c/d]\nitems:\n  - {id: fox}\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    assert reader.valid
    assert len({i.id for i in items}) == 2
    assert all(i.id.startswith("fox.m") and "/" not in i.id for i in items)


def shuffled_lines(text: str, seed: int) -> str:
    lines = text.splitlines(keepends=True)
    random.Random(seed).shuffle(lines)
    return "".join(lines)


def test_jsonl_reorder_keeps_ids(tmp_path: Path) -> None:
    """Shuffling JSONL lines keeps the same set of ids: derived, explicit and repeats."""
    rows = [{"prompt": f"p{n % 7}", "seed": n % 3} for n in range(40)]
    rows += [{"prompt": "q", "id": f"e{n}"} for n in range(10)]
    text = jsonl(*rows)
    ids = {i.id for i in read(write(tmp_path, "a.jsonl", text))[0]}
    for seed in range(3):
        again, reader = read(write(tmp_path, f"b{seed}.jsonl", shuffled_lines(text, seed)))
        assert reader.valid
        assert {i.id for i in again} == ids
    assert len(ids) == 50


def test_yaml_reorder_keeps_matrix_ids(tmp_path: Path) -> None:
    """Reordering items and matrix keys keeps the same set of ids."""
    one = ("matrix:\n  seed: [1, 2]\n  samples: [1, 2]\n"
           "items:\n  - {id: fox, prompt: x}\n  - a cat\n  - a cat\n  - {prompt: dog, seed: 3}\n")
    two = ("matrix:\n  samples: [2, 1]\n  seed: [2, 1]\n"
           "items:\n  - a cat\n  - {prompt: dog, seed: 3}\n  - a cat\n  - {id: fox, prompt: x}\n")
    first = {i.id for i in read(write(tmp_path, "one.yaml", one))[0]}
    second = {i.id for i in read(write(tmp_path, "two.yaml", two))[0]}
    assert first == second
    assert len(first) == 16


# -- problems --------------------------------------------------------------------------


def test_malformed_yaml(tmp_path: Path) -> None:
    """Broken YAML is one error naming the file and the line of the fault."""
    path = write(tmp_path, "m.yaml", "items:\n  - a\n  - [b\n")
    _, reader = read(path)
    problem = only_error(reader)
    assert problem.file == str(path) and problem.line is not None and problem.line >= 3
    assert "malformed YAML" in problem.message


def test_yaml_control_character(tmp_path: Path) -> None:
    """An unprintable character in YAML is an error on its line, not a crash."""
    _, reader = read(write(tmp_path, "m.yaml", "items:\n  - a\n  - b\x07c\n"))
    problem = only_error(reader)
    assert problem.line == 3 and "malformed YAML" in problem.message


def test_malformed_json_lines_all_reported(tmp_path: Path) -> None:
    """Each malformed JSON line is an error on its line; good lines still come through."""
    path = write(tmp_path, "m.jsonl", jsonl({"prompt": "a"}, "{prompt: b}", '{"prompt": "c",',
                                             "[1, 2]", {"prompt": "d"}))
    items, reader = read(path)
    assert [(p.file, p.line) for p in errors(reader)] == [(str(path), 2), (str(path), 3),
                                                          (str(path), 4)]
    assert "JSON object" in errors(reader)[2].message
    assert len(items) == 2 and not reader.valid


def test_non_utf8_yaml(tmp_path: Path) -> None:
    """A YAML file with bytes that are not UTF-8 is an error on the line holding them."""
    path = write(tmp_path, "m.yaml", b"items:\n  - a\n  - caf\xe9\n")
    _, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line) == (str(path), 3)
    assert "UTF-8" in problem.message


def test_non_utf8_jsonl(tmp_path: Path) -> None:
    """A JSONL line that is not UTF-8 is an error on that line; the others are read."""
    path = write(tmp_path, "m.jsonl", b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n{"prompt": "c"}\n')
    items, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line) == (str(path), 2)
    assert "UTF-8" in problem.message
    assert len(items) == 2


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.yaml", ""),
        ("m.yaml", "# nothing\n"),
        ("m.yaml", "items: []\n"),
        ("m.yaml", "model: sd1.5-epicrealism\ndefaults: {samples: 2}\n"),
        ("m.jsonl", ""),
        ("m.jsonl", "# only a comment\n\n"),
    ],
)
def test_empty_manifest(tmp_path: Path, name: str, text: str) -> None:
    """A manifest with no items is an error naming the file."""
    path = write(tmp_path, name, text)
    _, reader = read(path)
    problem = only_error(reader)
    assert problem.file == str(path) and "no items" in problem.message


def test_missing_manifest(tmp_path: Path) -> None:
    """A manifest that does not exist is an error, not an exception."""
    _, reader = read(tmp_path / "absent.yaml")
    assert "cannot read" in only_error(reader).message


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("samples: true", "samples", "boolean true"),
        ("samples: 9", "samples", "at most 4"),
        ("guidance_scale: .nan", "guidance_scale", "finite"),
        ("img_width: 640", "img_width", "512, 768, 1024"),
        ("num_inference_steps: '30'", "num_inference_steps", "an integer"),
        ("base64: 'yes'", "base64", "true or false"),
        ("num_steps: 30", "num_steps", 'did you mean "num_inference_steps"'),
    ],
)
def test_bad_value_names_file_line_item_field(
    tmp_path: Path, line: str, field: str, words: str
) -> None:
    """A bad value is one error on the line of its key, naming the item and the field."""
    path = write(tmp_path, "m.yaml", f"items:\n  - id: fox\n    prompt: x\n    {line}\n")
    items, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line, problem.item, problem.field) == (str(path), 4, "fox",
                                                                         field)
    assert words in problem.message
    assert items == []


def test_jsonl_problem_names_derived_item(tmp_path: Path) -> None:
    """A problem on an item without id names it by the id it would have had."""
    path = write(tmp_path, "m.jsonl", jsonl({"prompt": "a fox", "samples": True}))
    _, reader = read(path)
    problem = only_error(reader)
    assert (problem.line, problem.field) == (1, "samples")
    assert problem.item is not None and problem.item.startswith("a-fox-")


def test_nan_in_jsonl(tmp_path: Path) -> None:
    """NaN, which Python's JSON reader accepts, is refused as a parameter value."""
    _, reader = read(write(tmp_path, "m.jsonl", '{"prompt": "a", "guidance_scale": NaN}\n'))
    assert "finite" in only_error(reader).message


def test_non_json_value_is_an_error(tmp_path: Path) -> None:
    """A YAML date passed through to another model is an error, not a crash."""
    text = "model: flux-dev\nitems:\n  - prompt: x\n    when: 2024-01-01\n"
    _, reader = read(write(tmp_path, "m.yaml", text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (4, "when")
    assert "JSON" in problem.message


def test_unknown_params_allowed_as_warnings(tmp_path: Path) -> None:
    """With allow_unknown_params an unknown name is a warning and the item is yielded."""
    path = write(tmp_path, "m.jsonl", jsonl({"prompt": "a", "num_steps": 30}))
    (item,), reader = read(path, allow_unknown_params=True)
    assert reader.valid and item.params["num_steps"] == 30
    (warning,) = warnings(reader)
    assert warning.field == "num_steps" and "num_inference_steps" in warning.message


def test_unknown_scheduler_is_a_warning(tmp_path: Path) -> None:
    """An undocumented scheduler warns with a suggestion; the item is still valid."""
    path = write(tmp_path, "m.jsonl", jsonl({"prompt": "a", "scheduler": "euler a"}))
    items, reader = read(path)
    assert reader.valid and len(items) == 1
    (warning,) = warnings(reader)
    assert (warning.line, warning.field) == (1, "scheduler")
    assert 'did you mean "Euler a"' in warning.message


def test_other_model_requires_prompt(tmp_path: Path) -> None:
    """For any model an item without a non-empty string prompt is an error."""
    _, reader = read(write(tmp_path, "m.jsonl", jsonl({"model": "flux", "steps": 3})))
    problem = only_error(reader)
    assert (problem.field, problem.message) == ("prompt", "is required")


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("itmes: [a]\nitems: [b]\n", 1, "itmes"),
        ("model: 5\nitems: [a]\n", 1, "model"),
        ("model: a/b\nitems: [a]\n", 1, "model"),
        ("defaults: [1]\nitems: [a]\n", 1, "defaults"),
        ("defaults: {id: x}\nitems: [a]\n", 1, "defaults.id"),
        ("matrix: [1]\nitems: [a]\n", 1, "matrix"),
        ("matrix: {}\nitems: [a]\n", 1, "matrix"),
        ("matrix:\n  seed: 3\nitems: [a]\n", 2, "matrix.seed"),
        ("matrix:\n  seed: []\nitems: [a]\n", 2, "matrix.seed"),
        ("matrix:\n  id: [a, b]\nitems: [a]\n", 2, "matrix.id"),
        ("items: {a: 1}\n", 1, "items"),
        ("items_file: 3\n", 1, "items_file"),
        ("items:\n  - a\n  - 42\n", 3, None),
        ("items:\n  - prompt: a\n    seed: 1\n    seed: 2\n", 4, "seed"),
        ("items: [a]\nitems: [b]\n", 2, "items"),
        ("items: [a]\njobs/: 1\n", 2, "jobs/"),
        ("'a'\n", 1, None),
    ],
)
def test_structure_errors(tmp_path: Path, text: str, line: int, field: str | None) -> None:
    """A broken manifest structure is an error on the line and field at fault."""
    path = write(tmp_path, "m.yaml", text)
    _, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert not reader.valid


@pytest.mark.parametrize(
    "header",
    ["model: 5", "defaults: 3", "matrix: {seed: 3}", "defaults: {id: x}",
     "defaults: {seed: 1, seed: 2}"],
)
def test_broken_header_yields_nothing(tmp_path: Path, header: str) -> None:
    """When model, defaults or matrix are broken no item is yielded, valid or not."""
    items, reader = read(write(tmp_path, "m.yaml", f"{header}\nitems: [a, b]\n"))
    assert items == [] and reader.errors == 1


def test_item_with_key_set_twice_is_not_yielded(tmp_path: Path) -> None:
    """An item mapping with a key set twice is reported and left out."""
    text = "items:\n  - prompt: a\n    seed: 1\n    seed: 2\n  - b\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    assert [i.params["prompt"] for i in items] == ["b"]
    assert only_error(reader).line == 4


def test_valid_items_still_come_from_an_invalid_manifest(tmp_path: Path) -> None:
    """Item-level errors leave the other items yielded; the reader is not valid."""
    items, reader = read(write(tmp_path, "m.yaml", "items:\n  - a\n  - 42\n"))
    assert len(items) == 1 and not reader.valid


def test_unknown_top_level_key_suggests(tmp_path: Path) -> None:
    """An unknown top-level key says which known key was probably meant."""
    _, reader = read(write(tmp_path, "m.yaml", "itmes: [a]\nitems: [b]\n"))
    assert 'did you mean "items"' in only_error(reader).message


def test_missing_items_file(tmp_path: Path) -> None:
    """A missing items_file is an error on the YAML line that names it."""
    path = write(tmp_path, "m.yaml", "model: sd1.5-epicrealism\nitems_file: gone.jsonl\n")
    _, reader = read(path)
    problem = only_error(reader)
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "items_file")
    assert "gone.jsonl" in problem.message


def test_all_problems_in_one_pass(tmp_path: Path) -> None:
    """Every bad item of a manifest is reported in the same pass, header problems too."""
    text = ("model: 5\nsurprise: 1\nitems:\n  - {id: ../x, prompt: a}\n  - {prompt: ''}\n"
            "  - {id: ok, prompt: b}\n  - {id: ok, prompt: c}\n")
    _, reader = read(write(tmp_path, "m.yaml", text))
    assert [(p.line, p.field) for p in errors(reader)] == [
        (2, "surprise"), (1, "model"), (4, "id"), (5, "prompt"), (7, "id")]


def test_shared_problem_reported_once(tmp_path: Path) -> None:
    """A bad default is reported once, on its own line, not once per item."""
    text = "defaults:\n  samples: 7\nitems: [a, b, c]\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "samples")
    assert "from defaults" in problem.message
    assert items == []


def test_item_problem_reported_once_under_matrix(tmp_path: Path) -> None:
    """An item's own bad value is reported once, not once per matrix combination."""
    text = "matrix:\n  seed: [1, 2, 3]\nitems:\n  - prompt: x\n    samples: 9\n"
    _, reader = read(write(tmp_path, "m.yaml", text))
    assert [(p.line, p.field) for p in errors(reader)] == [(5, "samples")]
    assert reader.errors == 1


def test_bad_matrix_value_fails_only_its_combinations(tmp_path: Path) -> None:
    """A bad swept value is one error on the matrix line; other combinations are kept."""
    text = "matrix:\n  samples: [1, 9]\nitems: [a, b]\n"
    items, reader = read(write(tmp_path, "m.yaml", text))
    problem = only_error(reader)
    assert (problem.line, problem.field) == (2, "samples")
    assert len(items) == 2


def test_problem_list_is_capped_but_counted(tmp_path: Path) -> None:
    """Past keep_problems, problems are still counted but no longer kept."""
    path = write(tmp_path, "m.jsonl", jsonl(*({"prompt": ""} for _ in range(30))))
    _, reader = read(path, keep_problems=10)
    assert len(reader.problems) == 10 and reader.errors == 30


def test_problem_prints_file_and_line(tmp_path: Path) -> None:
    """A problem prints as file:line, item, field, severity and message."""
    problem = Problem("m.yaml", 4, "fox", "samples", "must be at most 4, got 9")
    assert str(problem) == "m.yaml:4: item fox: field samples: error: must be at most 4, got 9"
