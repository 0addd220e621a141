"""The only module that talks HTTP to the Segmind API; maps its answers and errors once.

Protocol and error table: /work/shared/segmind/API-FACTS.md. Every foreign exception
(aiohttp, asyncio timeouts, JSON) is translated here, most specific first, into the
``batchgen.errors`` tree. The API key is sent only to the API's own origin and never
appears in a message or a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

import aiohttp
from yarl import URL

from batchgen.api.history import history_rows
from batchgen.api.results import JobResult, JobStatus, Submitted, parse_result
from batchgen.api.retry import parse_time, server_wait_s
from batchgen.api.urls import same_origin
from batchgen.clock import Clock, SystemClock
from batchgen.config import DEFAULT_HISTORY_URL
from batchgen.errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    ForeignOriginError,
    JobFailedError,
    ModelRefusedError,
    RateLimitedError,
    RejectedError,
    RequestExpiredError,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

_FATAL = frozenset({401, 403, 405, 406, 410})
# Refusals of a model on submit (API-FACTS, "Errors"): that model's items fail, the rest go on.
_MODEL_REFUSED = frozenset({403, 404, 410})
_EXCERPT_CHARS = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")

Kind = Literal["submit", "get", "history"]


def excerpt(text: str, secret: str = "") -> str:
    """A short single-line excerpt of an error body: no HTML tags, no traceback, no key."""
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    text = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def translate_transport(exc: BaseException, *, method: str, url: str) -> ApiError:
    """Map an aiohttp/asyncio failure to a batchgen error; most specific first.

    ``maybe_sent`` is False only when the failure surely came before any byte of the
    request left (connecting, DNS, TLS); aiohttp never resends a POST by itself.
    """
    name = type(exc).__name__
    where = f"{method} {url.split('?', 1)[0]}"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return FatalApiError(f"invalid URL: {where}", url=url)
    if isinstance(
        exc,
        aiohttp.ClientConnectorError
        | aiohttp.ConnectionTimeoutError
        | aiohttp.ServerFingerprintMismatch,
    ):
        return TransportError(f"could not connect ({name}): {where}", maybe_sent=False, url=url)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return TransportError(f"timed out ({name}): {where}", maybe_sent=True, url=url)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportError(f"connection failed ({name}): {where}", maybe_sent=True, url=url)
    raise TypeError(f"not a transport error: {name}") from exc


class ApiClient:
    """Segmind serverless v2 calls over one shared ``aiohttp.ClientSession``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        history_url: str | None = None,
        timeout_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._session = session
        # The SDK drops a trailing /vN from the base (API-FACTS "Client facts"); so do we.
        self._base = re.sub(r"/v\d+/?$", "", base_url.rstrip("/"))
        self._history = (history_url or DEFAULT_HISTORY_URL).rstrip("/")
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock: Clock = clock or SystemClock()
        # The server's clock minus ours, from the latest ``Date`` header (1 s resolution).
        self.server_offset_s: float | None = None
        self._date: tuple[str, float | None] = ("", None)  # the last Date header, parsed

    @property
    def base_url(self) -> str:
        return self._base

    async def submit(self, model: str, params: Mapping[str, Any]) -> Submitted:
        """POST a job; returns at once with its id and the URLs to poll."""
        url = f"{self._base}/v2/{model}"
        body = await self._call("POST", url, kind="submit", json_body=dict(params))
        if not isinstance(body, dict):
            raise BadResponseError("submit answer is not a JSON object", url=url)
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise BadResponseError("submit answer has no request_id", url=url)
        built = f"{self._base}/v2/requests/{request_id}"
        return Submitted(
            request_id=request_id,
            status_url=self._own_url(body.get("status_url"), f"{built}/status"),
            response_url=self._own_url(body.get("response_url"), built),
            raw=body,
        )

    async def status(self, submitted_or_url: Submitted | str) -> JobStatus:
        """GET the light status; FAILED raises JobFailedError, 404 RequestExpiredError."""
        url = (
            submitted_or_url.status_url
            if isinstance(submitted_or_url, Submitted)
            else submitted_or_url
        )
        body = await self._get_object(url, kind="get")
        state = body.get("status")
        if not isinstance(state, str):
            raise BadResponseError("status answer has no status", url=url)
        metrics = body.get("metrics")
        metrics = metrics if isinstance(metrics, dict) else {}
        if state.upper() == "FAILED":
            raise self._job_failed(body, status=200, url=url)
        return JobStatus(status=state.upper(), metrics=metrics, raw=body)

    async def result(self, url: str) -> JobResult:
        """GET the full result of a job (output, images, seed, metrics ...)."""
        body = await self._get_object(url, kind="get")
        if str(body.get("status", "")).upper() == "FAILED":
            raise self._job_failed(body, status=200, url=url)
        return parse_result(body)

    async def history_request(self, request_id: str) -> dict[str, Any] | None:
        """One request of this account from the history API, of any age; None if unknown."""
        url = f"{self._history}/inference-request/request-history/{request_id}"
        try:
            return await self._get_object(url, kind="history")
        except RequestExpiredError:
            return None

    async def history_page(
        self,
        *,
        page: int,
        per_page: int,
        from_date: date | str,
        to_date: date | str,
        model_name: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of this account's requests, newest first; empty past the last page."""
        query: dict[str, str] = {
            "page": str(page),
            "per_page": str(per_page),
            "from_date": str(from_date),
            "to_date": str(to_date),
        }
        if model_name is not None:
            query["model_name"] = model_name
        if status is not None:
            query["status"] = status
        url = str(URL(f"{self._history}/inference-request/request-history").with_query(query))
        body = await self._call("GET", url, kind="history")
        return history_rows(body, url=url)

    # -- plumbing -------------------------------------------------------------------------

    def _own_url(self, candidate: object, fallback: str) -> str:
        """The server's URL when it is on the API's origin; else ours (never leak the key)."""
        if not isinstance(candidate, str) or not candidate:
            return fallback
        if not same_origin(candidate, self._base):
            log.warning("ignoring a returned URL off the API origin: %s",
                        candidate.split("?", 1)[0][:200])
            return fallback
        return candidate

    async def _get_object(self, url: str, *, kind: Kind) -> dict[str, Any]:
        body = await self._call("GET", url, kind=kind)
        if not isinstance(body, dict):
            raise BadResponseError("answer is not a JSON object", url=url)
        return body

    def _check_origin(self, url: str, kind: Kind) -> None:
        own = self._history if kind == "history" else self._base
        # A URL under the origin's own spelling needs no parsing (the character after it
        # is "/", so no longer host or userinfo can hide behind it).
        if not url.startswith(f"{own}/") and not same_origin(url, own):
            raise ForeignOriginError(f"refusing to send the API key off its origin: {url}", url=url)

    async def _call(
        self, method: str, url: str, *, kind: Kind, json_body: dict[str, Any] | None = None
    ) -> Any:
        self._check_origin(url, kind)
        headers = {"x-api-key": self._key, "Content-Type": "application/json"}
        data = None if json_body is None else json.dumps(json_body).encode()
        try:
            async with self._session.request(
                method, url, headers=headers, data=data, timeout=self._timeout,
                allow_redirects=False,  # a redirect would carry the key to another host
            ) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
                resp_headers = resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise translate_transport(exc, method=method, url=url) from exc
        log.debug("%s %s -> %d", method, url, status)
        self._learn_offset(resp_headers.get("Date"))
        if 200 <= status < 300:
            try:
                return json.loads(text)
            except ValueError as exc:
                raise BadResponseError(
                    f"answer is not JSON: {excerpt(text, self._key)}", status=status, url=url
                ) from exc
        raise self._error(status, text, resp_headers, url=url, kind=kind)

    def _learn_offset(self, date_header: str | None) -> None:
        if not date_header:
            return
        if date_header != self._date[0]:  # one parse a second, not one an answer
            self._date = (date_header, parse_time(date_header))
        server_now = self._date[1]
        if server_now is not None:
            self.server_offset_s = server_now - self._clock.wall()

    def _error(
        self, status: int, text: str, headers: Mapping[str, str], *, url: str, kind: Kind
    ) -> ApiError:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        reason = body.get("error", body.get("message", body.get("detail")))
        message = excerpt(str(reason) if reason is not None else text, self._key) or "(no body)"
        if status == 400:
            return RejectedError(message, status=status, url=url)
        if kind == "submit" and status in _MODEL_REFUSED:
            return ModelRefusedError(message, status=status, url=url)
        if status in _FATAL:
            return FatalApiError(message, status=status, url=url)
        if status == 404:
            return RequestExpiredError(message, status=status, url=url)
        if status == 422:
            return self._job_failed(body, status=status, url=url, fallback=message)
        if status == 429:
            wait = server_wait_s(headers, local_wall=self._clock.wall())
            return RateLimitedError(message, retry_after_s=wait, status=status, url=url)
        if status >= 500:
            return ServerError(message, status=status, url=url)
        return ApiError(f"unexpected answer: {message}", status=status, url=url)

    def _job_failed(
        self, body: Mapping[str, Any], *, status: int, url: str, fallback: str = "job failed"
    ) -> JobFailedError:
        error = body.get("error")
        full = str(error).replace(self._key, "***") if error is not None else fallback
        metrics = body.get("metrics")
        return JobFailedError(
            excerpt(full) or fallback, status=status, url=url, error=full,
            metrics=metrics if isinstance(metrics, dict) else None,
        )
