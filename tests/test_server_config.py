"""ServerConfig validates eagerly and names the field at fault."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from batchgen.server import FAIL_MARKER, ServerConfig
from batchgen.server.command import add_arguments, config_from


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"workers": 0}, "workers"),
        ({"latency_s": -1}, "latency_s"),
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"drop_after_rate": -0.1}, "drop_after_rate"),
        ({"error_500_rate": 0.6, "error_503_rate": 0.6}, "error_5xx_rate"),
        ({"rpm": 0}, "rpm"),
        ({"rpm_scope": "polls"}, "rpm_scope"),
        ({"retention_s": 0}, "retention_s"),
        ({"api_key": ""}, "api_key"),
        ({"jitter": 1.0}, "jitter"),
        ({"credits": -5}, "credits"),
        ({"models": ("",)}, "models"),
        ({"pricing": "per_token"}, "pricing"),
        ({"drop_after_submits": (0,)}, "drop_after_submits"),
        ({"wrong_result_rate": 2.0}, "wrong_result_rate"),
    ],
)
def test_invalid_field_is_named(fields: dict[str, Any], name: str) -> None:
    """A bad value raises ValueError naming the field."""
    with pytest.raises(ValueError, match=name):
        ServerConfig(**fields)


def test_defaults_are_fast_and_fault_free() -> None:
    """Defaults: short latency, no faults, no rate limit, the fail marker on."""
    config = ServerConfig()
    assert config.latency_s <= 0.1
    assert config.rpm is None
    assert not any(config.error_rates().values())
    assert config.fail_prompts == (FAIL_MARKER,)


def test_flags_build_the_config() -> None:
    """The serve flags map onto ServerConfig fields."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(
        ["--models", "a,b", "--models", "c", "--rpm", "5", "--rpm-scope", "all",
         "--error-503-rate", "0.2", "--fail-prompt", "boom", "--latency", "2",
         "--pricing", "gpu", "--cost", "0.003", "--state-dir", "/srv/state",
         "--drop-after-submit", "3", "--drop-after-submit", "5", "--garbled-result-rate", "0.1"]
    )
    config = config_from(ns)
    assert config.models == ("a", "b", "c")
    assert (config.rpm, config.rpm_scope) == (5, "all")
    assert config.error_503_rate == 0.2
    assert config.fail_prompts == (FAIL_MARKER, "boom")
    assert config.latency_s == 2.0
    assert (config.pricing, config.cost_per_image) == ("gpu", 0.003)
    assert config.state_dir == Path("/srv/state")
    assert (config.drop_after_submits, config.garbled_result_rate) == ((3, 5), 0.1)
