"""ApiClient: status, header and body handling against aioresponses (one attempt each)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from batchgen.api.client import ApiClient, JobStatus, Submitted, excerpt, translate_transport
from batchgen.api.history import history_rows
from batchgen.clock import ManualClock
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

BASE = "https://api.example.test"
HIST = "https://history.example.test"
KEY = "SG_secret_key_123"
RID = "0b6c7f5e-1111-4222-8333-944445555666"
STATUS_URL = f"{BASE}/v2/requests/{RID}/status"
RESULT_URL = f"{BASE}/v2/requests/{RID}"
SUBMIT_URL = f"{BASE}/v2/sd1.5-epicrealism"
WALL = 1_700_000_000.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
def client(session: aiohttp.ClientSession) -> ApiClient:
    return ApiClient(
        session, base_url=BASE, api_key=KEY, history_url=HIST, timeout_s=5.0,
        clock=ManualClock(wall_start=WALL),
    )


def sent(m: aioresponses, method: str, url: str) -> list[Any]:
    return list(m.requests.get((method, URL(url)), []))


async def test_submit_sends_key_json_and_returns_server_urls(
    client: ApiClient, mocked: aioresponses
) -> None:
    """A submit posts JSON with the key and keeps the URLs the server returned."""
    answer = {"request_id": RID, "status": "QUEUED", "status_url": STATUS_URL + "?x=1",
              "response_url": RESULT_URL, "extra": 1}
    mocked.post(SUBMIT_URL, payload=answer)
    got = await client.submit("sd1.5-epicrealism", {"prompt": "a cat"})
    assert got == Submitted(RID, STATUS_URL + "?x=1", RESULT_URL, answer)
    call = sent(mocked, "POST", SUBMIT_URL)[0]
    assert call.kwargs["headers"]["x-api-key"] == KEY
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert json.loads(call.kwargs["data"]) == {"prompt": "a cat"}


async def test_submit_builds_urls_when_missing(client: ApiClient, mocked: aioresponses) -> None:
    """Without status_url/response_url the client builds them from the base and the id."""
    mocked.post(SUBMIT_URL, payload={"request_id": RID})
    got = await client.submit("sd1.5-epicrealism", {})
    assert (got.status_url, got.response_url) == (STATUS_URL, RESULT_URL)


async def test_submit_ignores_urls_off_the_api_origin(
    client: ApiClient, mocked: aioresponses
) -> None:
    """A returned URL on another origin is replaced, so the key never travels there."""
    mocked.post(SUBMIT_URL, payload={"request_id": RID, "status_url": "https://evil.test/s",
                                     "response_url": "http://api.example.test/r"})
    got = await client.submit("sd1.5-epicrealism", {})
    assert (got.status_url, got.response_url) == (STATUS_URL, RESULT_URL)


async def test_base_url_trailing_version_is_dropped(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    """A base of http://host/v1 posts to http://host/v2/{slug}, like the SDK."""
    client = ApiClient(session, base_url=BASE + "/v1/", api_key=KEY)
    mocked.post(SUBMIT_URL, payload={"request_id": RID})
    assert (await client.submit("sd1.5-epicrealism", {})).request_id == RID


async def test_key_is_refused_for_a_foreign_origin(
    client: ApiClient, mocked: aioresponses
) -> None:
    """Asking for a status URL on another host raises before anything is sent."""
    with pytest.raises(ForeignOriginError):
        await client.status("https://elsewhere.test/v2/requests/x/status")
    assert not mocked.requests


async def test_history_uses_its_own_origin(client: ApiClient, mocked: aioresponses) -> None:
    """History calls go to the history host with the key; v2 calls there are refused."""
    url = f"{HIST}/inference-request/request-history/{RID}"
    mocked.get(url, payload={"request_id": RID, "model_name": "m"})
    assert await client.history_request(RID) == {"request_id": RID, "model_name": "m"}
    assert sent(mocked, "GET", url)[0].kwargs["headers"]["x-api-key"] == KEY
    with pytest.raises(ForeignOriginError):
        await client.result(f"{HIST}/v2/requests/{RID}")


@pytest.mark.parametrize(
    "payload",
    [{"status": "QUEUED"}, {"request_id": ""}, {"request_id": 5}],
)
async def test_submit_without_request_id_is_bad_response(
    client: ApiClient, mocked: aioresponses, payload: dict[str, Any]
) -> None:
    """A 2xx submit answer without a usable request_id raises BadResponseError."""
    mocked.post(SUBMIT_URL, payload=payload)
    with pytest.raises(BadResponseError):
        await client.submit("sd1.5-epicrealism", {})


async def test_non_json_2xx_is_bad_response(client: ApiClient, mocked: aioresponses) -> None:
    """A 200 whose body is not JSON raises BadResponseError."""
    mocked.get(STATUS_URL, status=200, body="<html>ok</html>")
    with pytest.raises(BadResponseError):
        await client.status(STATUS_URL)


async def test_status_running(client: ApiClient, mocked: aioresponses) -> None:
    """A running job's status comes back with its metrics."""
    mocked.get(STATUS_URL, payload={"status": "PROCESSING", "request_id": RID, "metrics": {}})
    sub = Submitted(RID, STATUS_URL, RESULT_URL, {})
    assert await client.status(sub) == JobStatus(
        "PROCESSING", {}, {"status": "PROCESSING", "request_id": RID, "metrics": {}}
    )


@pytest.mark.parametrize("http_status", [200, 422])
async def test_failed_job_carries_error_and_metrics(
    client: ApiClient, mocked: aioresponses, http_status: int
) -> None:
    """FAILED (HTTP 422 or a 200 saying FAILED) raises JobFailedError with error and metrics."""
    body = {"status": "FAILED", "error": "NSFW content detected", "metrics": {"queue_time": 2}}
    mocked.get(STATUS_URL, status=http_status, payload=body)
    with pytest.raises(JobFailedError) as info:
        await client.status(STATUS_URL)
    assert info.value.error == "NSFW content detected"
    assert info.value.metrics == {"queue_time": 2}


async def test_result_is_parsed_and_keeps_the_body(client: ApiClient,
                                                    mocked: aioresponses) -> None:
    """The full result is parsed (outputs, seed, metrics) and keeps the body as sent."""
    body = {"status": "COMPLETED", "output": "https://img/x.png", "images": [], "seed": 7,
            "prompt": "p", "metrics": {"cost": 0.5, "inference_time": 1.5}, "extra": [1]}
    mocked.get(RESULT_URL, payload=body)
    result = await client.result(RESULT_URL)
    assert result.raw == body
    assert [o.url for o in result.outputs] == ["https://img/x.png"]
    assert (result.seed, result.prompt) == (7, "p")
    assert (result.metrics.cost, result.metrics.inference_time) == (0.5, 1.5)


@pytest.mark.parametrize(
    ("method", "status", "body", "expected"),
    [
        ("POST", 400, '{"error": "prompt is required"}', RejectedError),
        ("POST", 401, '{"error": "Invalid API key"}', FatalApiError),
        ("POST", 403, '{"error": "forbidden"}', ModelRefusedError),
        ("POST", 404, '{"error": "model not found"}', ModelRefusedError),
        ("POST", 405, "<html><body><h1>405 Method Not Allowed</h1></body></html>", FatalApiError),
        ("POST", 406, "Insufficient credits", FatalApiError),
        ("POST", 410, '{"error": "model retired"}', ModelRefusedError),
        ("POST", 500, '{"error": "internal"}', ServerError),
        ("POST", 502, "<html>Bad Gateway</html>", ServerError),
        ("POST", 503, "", ServerError),
        ("POST", 504, "gateway timeout", ServerError),
        ("POST", 507, "", ServerError),
        ("POST", 418, "teapot", ApiError),
        ("GET", 404, '{"error": "request not found"}', RequestExpiredError),
        ("GET", 401, '{"error": "Invalid API key"}', FatalApiError),
        ("GET", 500, "oops", ServerError),
        ("GET", 422, '{"status": "FAILED"}', JobFailedError),
        ("GET", 422, "not json", JobFailedError),
    ],
)
async def test_error_status_mapping(
    client: ApiClient, mocked: aioresponses, method: str, status: int, body: str,
    expected: type[ApiError],
) -> None:
    """Each HTTP error status maps to its class in the API-FACTS table."""
    if method == "POST":
        mocked.post(SUBMIT_URL, status=status, body=body)
        call = client.submit("sd1.5-epicrealism", {})
    else:
        mocked.get(STATUS_URL, status=status, body=body)
        call = client.status(STATUS_URL)  # type: ignore[assignment]
    with pytest.raises(ApiError) as info:
        await call
    assert type(info.value) is expected
    assert info.value.status == status


async def test_html_error_body_becomes_one_short_line(
    client: ApiClient, mocked: aioresponses
) -> None:
    """A 405 HTML page is reduced to a short single-line excerpt without tags."""
    page = "<html>\n<head><title>405</title></head>\n<body>" + "Not Allowed " * 100 + "</body>"
    mocked.post(SUBMIT_URL, status=405, body=page)
    with pytest.raises(FatalApiError) as info:
        await client.submit("sd1.5-epicrealism", {})
    text = str(info.value)
    assert "\n" not in text and "<" not in text and len(text) < 260


async def test_traceback_body_keeps_only_the_exception_line(
    client: ApiClient, mocked: aioresponses
) -> None:
    """A 500 carrying a Python traceback yields only its last line."""
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad seed\n'
    mocked.post(SUBMIT_URL, status=500, body=tb)
    with pytest.raises(ServerError) as info:
        await client.submit("sd1.5-epicrealism", {})
    assert str(info.value) == "HTTP 500: ValueError: bad seed"


async def test_key_never_appears_in_messages(client: ApiClient, mocked: aioresponses) -> None:
    """An error body echoing the key does not put the key in the exception."""
    mocked.post(SUBMIT_URL, status=401, body=f'{{"error": "bad key {KEY}"}}')
    with pytest.raises(FatalApiError) as info:
        await client.submit("sd1.5-epicrealism", {})
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-rate-limit-reset-at-utc": "2023-11-14T22:14:00Z"}, 40.0),
        ({"x-rate-limit-reset-at-utc": "2023-11-14T22:14:00"}, 40.0),
        ({"x-rate-limit-reset-at-utc": "2023-11-14T23:14:00+01:00"}, 40.0),
        ({"x-rate-limit-reset-at-utc": "1700000040"}, 40.0),
        ({"x-rate-limit-reset-at-utc": "Tue, 14 Nov 2023 22:14:00 GMT"}, 40.0),
        # Skew: the server's Date is 100 s behind our wall clock; the wait stays 10 s.
        ({"x-rate-limit-reset-at-utc": "1699999910", "Date": "Tue, 14 Nov 2023 22:11:40 GMT"},
         10.0),
        ({"Retry-After": "7"}, 7.0),
        ({"x-rate-limit-reset-at-utc": "1699999000"}, 0.0),
        ({}, None),
        ({"x-rate-limit-reset-at-utc": "soon"}, None),
    ],
)
async def test_rate_limited_wait(
    client: ApiClient, mocked: aioresponses, headers: dict[str, str], expected: float | None
) -> None:
    """429 carries the wait from the reset header (skew-corrected) or Retry-After."""
    mocked.post(SUBMIT_URL, status=429, body='{"error": "rate limited"}', headers=headers)
    with pytest.raises(RateLimitedError) as info:
        await client.submit("sd1.5-epicrealism", {})
    if expected is None:
        assert info.value.retry_after_s is None
    else:
        assert info.value.retry_after_s == pytest.approx(expected)


def _key() -> ConnectionKey:
    return ConnectionKey("api.example.test", 443, True, True, None, None, None)


TRANSPORT_CASES: list[tuple[BaseException, type[ApiError], bool]] = [
    (aiohttp.ClientConnectorError(_key(), OSError(111, "refused")), TransportError, False),
    (aiohttp.ClientConnectorDNSError(_key(), OSError(-2, "no name")), TransportError, False),
    (aiohttp.ClientConnectorCertificateError(_key(), Exception("cert")), TransportError, False),
    (aiohttp.ClientConnectorSSLError(_key(), OSError(1, "ssl")), TransportError, False),
    (aiohttp.ClientProxyConnectionError(_key(), OSError(111, "proxy")), TransportError, False),
    (aiohttp.ConnectionTimeoutError("connect"), TransportError, False),
    (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), TransportError, False),
    (aiohttp.ServerDisconnectedError(), TransportError, True),
    (aiohttp.ClientOSError(104, "reset by peer"), TransportError, True),
    (aiohttp.ClientConnectionResetError("reset"), TransportError, True),
    (aiohttp.ClientPayloadError("payload not completed"), TransportError, True),
    (aiohttp.SocketTimeoutError("read"), TransportError, True),
    (aiohttp.ServerTimeoutError("timeout"), TransportError, True),
    (TimeoutError(), TransportError, True),
    (aiohttp.ClientConnectionError("closed"), TransportError, True),
    (ConnectionResetError(104, "reset"), TransportError, True),
    (aiohttp.InvalidURL("::bad"), FatalApiError, False),
]


@pytest.mark.parametrize(("exc", "expected", "maybe_sent"), TRANSPORT_CASES,
                         ids=[type(c[0]).__name__ for c in TRANSPORT_CASES])
async def test_transport_errors_on_submit(
    client: ApiClient, mocked: aioresponses, exc: BaseException, expected: type[ApiError],
    maybe_sent: bool,
) -> None:
    """Every aiohttp failure maps to one class; maybe_sent says if the POST may have landed."""
    mocked.post(SUBMIT_URL, exception=exc)
    with pytest.raises(ApiError) as info:
        await client.submit("sd1.5-epicrealism", {})
    assert type(info.value) is expected
    assert info.value.__cause__ is exc
    if isinstance(info.value, TransportError):
        assert info.value.maybe_sent is maybe_sent
    assert KEY not in str(info.value)


async def test_transport_error_on_get(client: ApiClient, mocked: aioresponses) -> None:
    """A GET that loses its connection raises TransportError."""
    mocked.get(STATUS_URL, exception=aiohttp.ServerDisconnectedError())
    with pytest.raises(TransportError):
        await client.status(STATUS_URL)


def test_translate_rejects_foreign_exceptions() -> None:
    """translate_transport refuses exceptions that are not transport failures."""
    with pytest.raises(TypeError):
        translate_transport(KeyError("x"), method="GET", url=BASE)


async def test_history_request_unknown_is_none(client: ApiClient, mocked: aioresponses) -> None:
    """history_request answers None on 404."""
    mocked.get(f"{HIST}/inference-request/request-history/{RID}", status=404,
               body='{"error": "not found"}')
    assert await client.history_request(RID) is None


async def test_history_page_sends_query_and_reads_rows(
    client: ApiClient, mocked: aioresponses
) -> None:
    """history_page sends its filters as query parameters and returns the rows."""
    rows = [{"request_id": "a", "model_name": "m"}, {"request_id": "b"}]
    url = (f"{HIST}/inference-request/request-history?page=2&per_page=100"
           "&from_date=2024-01-01&to_date=2024-01-31&model_name=m&status=FAILED")
    mocked.get(url, payload={"data": rows, "page": 2, "total": 2})
    got = await client.history_page(page=2, per_page=100, from_date="2024-01-01",
                                    to_date="2024-01-31", model_name="m", status="FAILED")
    assert got == rows


ROW = {"request_id": "a"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([ROW], [ROW]),
        ([], []),
        ({"data": [ROW], "total": 1}, [ROW]),
        ({"items": [ROW], "tags": [{"name": "x"}], "next": None}, [ROW]),
        ({"results": [], "count": 0}, []),
        ({"meta": {"page": 1}, "payload": {"rows": [ROW]}}, [ROW]),
    ],
)
def test_history_rows_envelopes(body: object, expected: list[dict[str, Any]]) -> None:
    """Rows come from a bare list or the one list of objects carrying request_id."""
    assert history_rows(body) == expected


@pytest.mark.parametrize(
    "body",
    ["text", {"total": 3}, {"a": [ROW], "b": [{"request_id": "b"}]}],
)
def test_history_rows_unusable(body: object) -> None:
    """A page without one clear list of rows raises BadResponseError."""
    with pytest.raises(BadResponseError):
        history_rows(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<p>Not   found</p>", "Not found"),
        ("line one\nline two", "line one line two"),
        ("key SG_x inside", "key *** inside"),
    ],
)
def test_excerpt(text: str, expected: str) -> None:
    """Error excerpts are single-line, tag-free and never hold the key."""
    assert excerpt(text, "SG_x") == expected


@pytest.mark.parametrize(("value", "expected"), [(0.25, 0.25), ("0.25", 0.25), ("n/a", None),
                                                 (None, None), (True, None)])
def test_history_cost_as_number_or_text(value: Any, expected: float | None) -> None:
    """credits_deduction is read as a number, or a number sent as text (undocumented)."""
    from batchgen.api.results import HistoryRow

    row = HistoryRow.parse({"request_id": "r", "credits_deduction": value})
    assert row is not None and row.cost == expected
