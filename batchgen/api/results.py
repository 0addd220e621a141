"""Segmind's answers parsed once, into typed values (API-FACTS, "Result body").

The shapes vary by model and by server: never assume a fixed key set, tolerate extra
keys, and take what is there. Everything the engine knows of an answer comes from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def number(value: Any) -> float | None:
    """``value`` as a float when the server sent a JSON number (not a boolean), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Submitted:
    """An accepted submit: the job's id and where to ask about it."""

    request_id: str
    status_url: str
    response_url: str
    raw: dict[str, Any] = field(default_factory=dict)
    # When the job was created, on our clock, if known (an adopted job: from the history).
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One status answer: QUEUED, PROCESSING or COMPLETED (FAILED raises)."""

    status: str
    metrics: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Output:
    """One image of a finished job: a URL to download, or inline base64 data."""

    url: str | None = None
    data: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Metrics:
    """A job's ``metrics``: times in seconds, credits; None where not reported."""

    cost: float | None = None
    remaining_credits: float | None = None
    inference_time: float | None = None
    queue_time: float | None = None
    total_time: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any) -> Metrics:
        raw = value if isinstance(value, dict) else {}
        return cls(number(raw.get("cost")), number(raw.get("remaining_credits")),
                   number(raw.get("inference_time")), number(raw.get("queue_time")),
                   number(raw.get("total_time")), raw)


@dataclass(frozen=True, slots=True)
class JobResult:
    """A COMPLETED job's full result: its images, the seed used, and its metrics."""

    outputs: tuple[Output, ...]
    seed: int | None
    prompt: str | None
    metrics: Metrics
    raw: dict[str, Any]


def outputs_of(result: dict[str, Any]) -> tuple[Output, ...]:
    """The images of a result: ``images[]`` URLs or data, else ``output`` (URL or base64)."""
    found: list[Output] = []
    images = result.get("images")
    if isinstance(images, list):
        for image in images:
            if not isinstance(image, dict):
                continue
            kind = image.get("content_type")
            ctype = kind if isinstance(kind, str) else None
            url = image.get("url")
            data = next((image[k] for k in ("data", "base64", "b64_json")
                         if isinstance(image.get(k), str)), None)
            if isinstance(url, str) and url:
                found.append(Output(url=url, content_type=ctype))
            elif data:
                found.append(Output(data=data, content_type=ctype))
    if found:
        return tuple(found)
    output = result.get("output")
    for value in output if isinstance(output, list) else [output]:
        if isinstance(value, str) and value:
            is_url = value.startswith(("http://", "https://"))
            found.append(Output(url=value) if is_url else Output(data=value))
    return tuple(found)


def parse_result(body: dict[str, Any]) -> JobResult:
    seed = body.get("seed")
    prompt = body.get("prompt")
    return JobResult(
        outputs=outputs_of(body),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        prompt=prompt if isinstance(prompt, str) else None,
        metrics=Metrics.parse(body.get("metrics")),
        raw=body,
    )


def parse_when(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (or a number, s or ms), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / (1000 if value > 1e11 else 1)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _amount(value: Any) -> float | None:
    """A cost as the history sends it: a number, or a number as text (its type is not
    documented)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return number(value)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of the account history (API-FACTS, "Account history")."""

    request_id: str
    model: str | None
    status: str
    body: dict[str, Any] | None
    cost: float | None
    urls: tuple[str, ...]
    created_at: float | None
    error: str | None

    @classmethod
    def parse(cls, row: dict[str, Any]) -> HistoryRow | None:
        """The row, or None when it names no request."""
        request_id = row.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            return None
        body = row.get("request_body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        many = row.get("generation_urls")
        urls = [*(many if isinstance(many, list) else []), row.get("generation_url")]
        model, error = row.get("model_name"), row.get("error")
        return cls(
            request_id=request_id,
            model=model if isinstance(model, str) else None,
            status=str(row.get("model_status") or row.get("status") or "").upper(),
            body=body if isinstance(body, dict) else None,
            cost=_amount(row.get("credits_deduction")),
            urls=tuple(dict.fromkeys(u for u in urls if isinstance(u, str)
                                     and u.startswith(("http://", "https://")))),
            created_at=parse_when(row.get("created_at")),
            error=str(error) if error else None,
        )


@dataclass(frozen=True, slots=True)
class Found:
    """What the history knows of one request: its state, outputs, cost and age."""

    request_id: str
    status: str
    urls: tuple[str, ...]
    cost: float | None
    error: str | None
    created_at: float | None = None

    @classmethod
    def merge(cls, rows: list[HistoryRow]) -> Found:
        """One request from its rows (a request with several outputs has one row each)."""
        first = rows[0]
        urls = tuple(dict.fromkeys(url for row in rows for url in row.urls))
        return cls(first.request_id, first.status, urls, first.cost, first.error,
                   first.created_at)
