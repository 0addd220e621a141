"""What batchgen writes into each image: the A1111 infotext and its own JSON record.

``ImageRecord`` is everything known about one written image; ``texts`` turns it into the
two strings that go into the file: ``parameters`` (the infotext, for the SD tools) and
``batchgen`` (JSON: id, model, the parameters as sent, the seed used, request id, cost
and times, for ``batchgen import`` and for rebuilding a lost checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchgen._version import __version__
from batchgen.metadata.infotext import format_infotext

PARAMETERS_KEY = "parameters"
RECORD_KEY = "batchgen"
RECORD_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRecord:
    """One image of one item: how it was asked for and what the server said."""

    item_id: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None  # the seed the server used; None when unknown
    request_id: str | None = None
    cost: float | None = None
    inference_time: float | None = None
    queue_time: float | None = None
    index: int = 0  # from 0, among ``count`` samples of the request
    count: int = 1

    @property
    def prompt(self) -> str:
        prompt = self.params.get("prompt")
        return prompt if isinstance(prompt, str) else ""


def used_seed(params: Mapping[str, Any], result: Mapping[str, Any]) -> int | None:
    """The seed the server used: the result's ``seed``, else the one sent unless it was
    random (-1). Never -1."""
    for value in (result.get("seed"), params.get("seed")):
        if isinstance(value, int) and not isinstance(value, bool) and value != -1:
            return value
    return None


def record_for(*, item_id: str, model: str, params: Mapping[str, Any],
               result: Mapping[str, Any], request_id: str | None, cost: float | None,
               index: int, count: int) -> ImageRecord:
    """The record of image ``index`` of an item from its stored result."""
    metrics = result.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    if cost is None:  # a file written again on resume: the job's cost as first recorded
        cost = _number(metrics.get("cost"))
    return ImageRecord(item_id=item_id, model=model, params=dict(params),
                       seed=used_seed(params, result), request_id=request_id, cost=cost,
                       inference_time=_number(metrics.get("inference_time")),
                       queue_time=_number(metrics.get("queue_time")),
                       index=index, count=count)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def infotext(record: ImageRecord) -> str:
    return format_infotext(model=record.model, params=record.params, seed=record.seed,
                           item_id=record.item_id, index=record.index, count=record.count)


def record_json(record: ImageRecord) -> str:
    """batchgen's own record of an image, as compact JSON."""
    value = {
        "format": RECORD_FORMAT,
        "generator": f"batchgen {__version__}",
        "id": record.item_id,
        "model": record.model,
        "params": dict(record.params),
        "seed": record.seed,
        "sample": [record.index + 1, record.count],
        "request_id": record.request_id,
        "cost": record.cost,
        "inference_time": record.inference_time,
        "queue_time": record.queue_time,
    }
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def texts(record: ImageRecord) -> dict[str, str]:
    """The text entries to embed, by keyword, in the order they are written."""
    return {PARAMETERS_KEY: infotext(record), RECORD_KEY: record_json(record)}


def read_record(text: str) -> ImageRecord | None:
    """A record read back from an image; None when it is not one of batchgen's."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) \
            or not isinstance(value.get("model"), str) \
            or not isinstance(value.get("params"), dict):
        return None
    sample: Any = value.get("sample")
    index, count = (sample[0] - 1, sample[1]) if _pair_of_ints(sample) else (0, 1)
    seed = value.get("seed")
    return ImageRecord(
        item_id=value["id"], model=value["model"], params=value["params"],
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        request_id=value.get("request_id") if isinstance(value.get("request_id"), str)
        else None,
        cost=_number(value.get("cost")), inference_time=_number(value.get("inference_time")),
        queue_time=_number(value.get("queue_time")), index=index, count=count)


def _pair_of_ints(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value))
