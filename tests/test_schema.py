"""Parameter schemas: sd1.5-epicrealism's table, the permissive schema, did-you-mean."""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.manifest.schema import DEFAULT_MODEL, Finding, did_you_mean, schema_for

EPIC = schema_for(DEFAULT_MODEL)


def errors_of(params: dict[str, Any], **kwargs: Any) -> list[Finding]:
    return [f for f in EPIC.check(params, **kwargs) if f.severity == "error"]


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "a fox"},
        {"prompt": "a fox", "num_inference_steps": 20},
        {"prompt": "a fox", "num_inference_steps": 100},
        {"prompt": "a fox", "guidance_scale": 0.1},
        {"prompt": "a fox", "guidance_scale": 25},
        {"prompt": "a fox", "guidance_scale": 7},
        {"prompt": "a fox", "samples": 4},
        {"prompt": "a fox", "seed": -1},
        {"prompt": "a fox", "seed": 10452167572},
        {"prompt": "a fox", "img_width": 768, "img_height": 1024},
        {"prompt": "a fox", "base64": True},
        {"prompt": "a fox", "negative_prompt": ""},
        {"prompt": "a fox", "scheduler": "DPM Multi"},
    ],
)
def test_valid_epicrealism_params(params: dict[str, Any]) -> None:
    """Values inside the documented types and ranges give no finding."""
    assert EPIC.check(params) == []


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({}, "prompt", "required"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": 5}, "prompt", "must be a string"),
        ({"prompt": None}, "prompt", "null"),
        ({"prompt": "x", "samples": True}, "samples", "boolean true"),
        ({"prompt": "x", "guidance_scale": False}, "guidance_scale", "boolean false"),
        ({"prompt": "x", "samples": 0}, "samples", "at least 1"),
        ({"prompt": "x", "samples": 5}, "samples", "at most 4"),
        ({"prompt": "x", "samples": 2.0}, "samples", "an integer"),
        ({"prompt": "x", "num_inference_steps": 19}, "num_inference_steps", "at least 20"),
        ({"prompt": "x", "num_inference_steps": 101}, "num_inference_steps", "at most 100"),
        ({"prompt": "x", "num_inference_steps": "30"}, "num_inference_steps", "an integer"),
        ({"prompt": "x", "guidance_scale": 0}, "guidance_scale", "at least 0.1"),
        ({"prompt": "x", "guidance_scale": 25.5}, "guidance_scale", "at most 25"),
        ({"prompt": "x", "guidance_scale": "7.5"}, "guidance_scale", "a number"),
        ({"prompt": "x", "guidance_scale": float("nan")}, "guidance_scale", "finite"),
        ({"prompt": "x", "guidance_scale": float("inf")}, "guidance_scale", "finite"),
        ({"prompt": "x", "seed": -2}, "seed", "at least -1"),
        ({"prompt": "x", "seed": 1.5}, "seed", "an integer"),
        ({"prompt": "x", "img_width": 640}, "img_width", "512, 768, 1024"),
        ({"prompt": "x", "img_height": 256}, "img_height", "512, 768, 1024"),
        ({"prompt": "x", "img_height": 512.0}, "img_height", "an integer"),
        ({"prompt": "x", "base64": 1}, "base64", "true or false"),
        ({"prompt": "x", "negative_prompt": 3}, "negative_prompt", "a string"),
        ({"prompt": "x", "scheduler": 3}, "scheduler", "a string"),
    ],
)
def test_invalid_epicrealism_params(params: dict[str, Any], field: str, words: str) -> None:
    """A wrong type, an empty prompt or an out-of-range value is one error on its field."""
    found = errors_of(params)
    assert [f.field for f in found] == [field]
    assert words in found[0].message


def test_all_problems_reported_together() -> None:
    """Every bad field gives its own finding in a single check."""
    found = errors_of({"prompt": "", "samples": 9, "img_width": 1, "num_steps": 30})
    assert sorted(f.field for f in found) == ["img_width", "num_steps", "prompt", "samples"]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("num_steps", "num_inference_steps"),
        ("steps", "num_inference_steps"),
        ("guidance", "guidance_scale"),
        ("negative", "negative_prompt"),
        ("width", "img_width"),
        ("sample", "samples"),
    ],
)
def test_unknown_param_is_error_with_suggestion(name: str, suggestion: str) -> None:
    """An unknown parameter name is an error that suggests the closest known name."""
    (finding,) = errors_of({"prompt": "x", name: 1})
    assert finding.field == name
    assert f'did you mean "{suggestion}"' in finding.message


def test_unknown_param_allowed_is_warning() -> None:
    """With allow_unknown the unknown name is a warning, still with its suggestion."""
    (finding,) = EPIC.check({"prompt": "x", "num_steps": 30}, allow_unknown=True)
    assert finding.severity == "warning"
    assert 'did you mean "num_inference_steps"' in finding.message


@pytest.mark.parametrize(
    ("scheduler", "suggestion"),
    [("dpmpp_sde_ancestral", None), ("Euler A", "Euler a"), ("unipc", "UniPC"),
     ("DPM Multii", "DPM Multi")],
)
def test_unknown_scheduler_is_warning(scheduler: str, suggestion: str | None) -> None:
    """An undocumented scheduler is a warning, with a suggestion when one is close."""
    (finding,) = EPIC.check({"prompt": "x", "scheduler": scheduler})
    assert (finding.field, finding.severity) == ("scheduler", "warning")
    if suggestion is None:
        assert "did you mean" not in finding.message
    else:
        assert f'did you mean "{suggestion}"' in finding.message


def test_epicrealism_defaults() -> None:
    """The defaults are the model page's: 20 steps, 7.5 guidance, 1 sample, seed -1, 512px."""
    assert EPIC.defaults() == {
        "num_inference_steps": 20, "guidance_scale": 7.5, "samples": 1, "seed": -1,
        "img_width": 512, "img_height": 512, "base64": False,
    }


def test_defaults_are_a_copy() -> None:
    """Changing the returned defaults does not change the schema's."""
    EPIC.defaults()["samples"] = 3
    assert EPIC.defaults()["samples"] == 1


def test_with_defaults_lets_given_values_win() -> None:
    """with_defaults fills what is missing and keeps what is given."""
    params = EPIC.with_defaults({"prompt": "x", "samples": 3})
    assert params["samples"] == 3
    assert params["num_inference_steps"] == 20


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"prompt": "x", "anything": [1, {"a": None}], "samples": "many"}, True),
        ({"prompt": ""}, False),
        ({"prompt": 3}, False),
        ({"steps": 3}, False),
    ],
)
def test_other_models_check_only_the_prompt(params: dict[str, Any], ok: bool) -> None:
    """A model without a table needs a non-empty string prompt; the rest passes through."""
    schema = schema_for("some-other-model")
    assert (schema.check(params) == []) is ok
    assert schema.with_defaults(params) == params


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("itmes", ("items", "model"), ' (did you mean "items"?)'),
        ("MODEL", ("items", "model"), ' (did you mean "model"?)'),
        ("zzz", ("items", "model"), ""),
    ],
)
def test_did_you_mean(word: str, candidates: tuple[str, ...], expected: str) -> None:
    """did_you_mean names the closest candidate, case-insensitively, or nothing."""
    assert did_you_mean(word, candidates) == expected
