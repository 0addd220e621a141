"""The A1111 infotext: written as A1111 writes it, read back by A1111's rules."""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.metadata.infotext import format_infotext, parse_infotext, quote, spell

PARAMS = {"prompt": "a red fox in snow", "negative_prompt": "blurry, lowres",
          "scheduler": "DPM Multi", "num_inference_steps": 25, "guidance_scale": 7.5,
          "samples": 1, "seed": -1, "img_width": 512, "img_height": 768, "base64": False}


def test_written_as_a1111_writes_it() -> None:
    """Prompt, a Negative prompt line, then the settings with the used seed and WxH."""
    text = format_infotext(model="sd1.5-epicrealism", params=PARAMS, seed=4242,
                           item_id="fox.seed-1")
    assert text == (
        "a red fox in snow\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 25, Sampler: DPM Multi, CFG scale: 7.5, Seed: 4242, Size: 512x768, "
        "Model: sd1.5-epicrealism, batchgen id: fox.seed-1")


def test_a1111_infotext_is_read() -> None:
    """The example of A1111's own docstring reads back into its fields."""
    text = (
        "girl with an artist's beret, determined, blue eyes, desert scene, ((eyeshadow))\n"
        "Negative prompt: ugly, fat, (((deformed))), [blurry], bad anatomy\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, "
        "Model hash: 45dee52b")
    info = parse_infotext(text)
    assert info.prompt.startswith("girl with an artist's beret")
    assert info.negative_prompt == "ugly, fat, (((deformed))), [blurry], bad anatomy"
    assert info.settings == {"Steps": "20", "Sampler": "Euler a", "CFG scale": "7",
                             "Seed": "965400086", "Size": "512x512", "Model hash": "45dee52b"}


@pytest.mark.parametrize(("value", "written"), [
    ("Euler a", "Euler a"),
    ("DPM++ 2M, Karras", '"DPM++ 2M, Karras"'),
    ("ratio: 2", '"ratio: 2"'),
    ("two\nlines", '"two\\nlines"'),
    (' "quoted" ', '" \\"quoted\\" "'),
    ("ünïcode", "ünïcode"),
])
def test_values_with_separators_are_json_quoted(value: str, written: str) -> None:
    """A value holding ',' ':' or a newline (or losing its ends) is a JSON string."""
    assert quote(value) == written


@pytest.mark.parametrize("scheduler", ["Euler a", "weird, name: with\nall", 'say "hi", ok'])
@pytest.mark.parametrize("prompt", ["one line", "two\nlines", "commas, colons: and (weights:1.3)"])
def test_every_field_reads_back(prompt: str, scheduler: str) -> None:
    """Whatever the values hold, the parser gets back what the writer put in."""
    params: dict[str, Any] = {**PARAMS, "prompt": prompt, "scheduler": scheduler,
                              "negative_prompt": "bad\nhands, extra: limbs"}
    info = parse_infotext(format_infotext(model="m", params=params, seed=7, item_id="x"))
    assert info.prompt == prompt
    assert info.negative_prompt == "bad\nhands, extra: limbs"
    assert info.settings["Sampler"] == scheduler
    assert info.settings["Seed"] == "7"
    assert info.settings["batchgen id"] == "x"


def test_random_seed_is_never_written() -> None:
    """No used seed known: no Seed at all, never -1."""
    text = format_infotext(model="m", params=PARAMS, seed=None, item_id="x")
    assert "Seed" not in parse_infotext(text).settings
    assert "-1" not in text


def test_a_bare_prompt_still_has_a_settings_line() -> None:
    """Another model with nothing but a prompt still gets three pairs, so the prompt
    is not mistaken for settings and the settings not for the prompt."""
    text = format_infotext(model="flux", params={"prompt": "Steps: a, b: c"}, seed=None,
                           item_id="x")
    info = parse_infotext(text)
    assert info.prompt == "Steps: a, b: c"
    assert info.settings == {"Model": "flux", "batchgen id": "x", "Generator": "batchgen"}


def test_short_last_line_belongs_to_the_prompt() -> None:
    """A1111's rule: fewer than three pairs on the last line make it prompt text."""
    info = parse_infotext("a cat\nstyle: oil, mood: calm")
    assert info.prompt == "a cat\nstyle: oil, mood: calm"
    assert info.settings == {}


def test_samples_and_other_parameters_are_listed() -> None:
    """Several samples give Batch size and pos; unmapped parameters keep their names."""
    params = {"prompt": "p", "samples": 2, "strength": 0.8, "base64": False}
    info = parse_infotext(format_infotext(model="m", params=params, seed=3, item_id="x",
                                          index=1, count=2))
    assert info.settings["Batch size"] == "2"
    assert info.settings["Batch pos"] == "1"
    assert info.settings["strength"] == "0.8"
    assert "base64" not in info.settings


@pytest.mark.parametrize(("value", "text"), [
    (7.0, "7"), (7.5, "7.5"), (25, "25"), (10452167572, "10452167572"), (True, "true"),
    ([1, 2], "[1,2]"),
])
def test_numbers_are_spelled_as_javascript_does(value: Any, text: str) -> None:
    """The gallery rebuilds the text in JavaScript, so numbers must print alike."""
    assert spell(value) == text
