"""The account-history API of the local server: rows, filters, paging, retention, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchgen.clock import ManualClock
from batchgen.server import FAIL_MARKER

DAY = 86_400.0


def _day(clock: ManualClock, offset_days: int = 0) -> str:
    moment = datetime.fromtimestamp(clock.wall(), UTC) + timedelta(days=offset_days)
    return moment.date().isoformat()


async def test_row_fields(local_server, api, clock: ManualClock) -> None:
    """A completed request's row carries the documented fields."""
    client = api(await local_server(clock=clock, latency_s=2.0, cost_per_image=0.25))
    body = {"prompt": "a heron", "seed": 5}
    rid = (await client.submit(body)).json()["request_id"]
    clock.advance(2)
    (row,) = (await client.history()).json()["data"]
    assert row["request_id"] == rid
    assert row["model_name"] == "sd1.5-epicrealism"
    assert row["model_status"] == "COMPLETED"
    assert row["credits_deduction"] == 0.25
    assert row["request_body"] == body
    assert row["generation_url"].endswith(f"/files/{rid}/0.png")
    assert row["latency_ms"] == 2000
    assert row["created_at"].endswith("Z") and row["updated_at"].endswith("Z")
    assert row["error"] is None


async def test_one_row_per_output(local_server, api, clock: ManualClock) -> None:
    """A request with several outputs appears once per output."""
    client = api(await local_server(clock=clock))
    rid = (await client.submit({"prompt": "x", "samples": 3})).json()["request_id"]
    clock.advance(60)
    page = (await client.history()).json()
    assert page["total"] == 3
    assert {r["request_id"] for r in page["data"]} == {rid}
    assert len({r["generation_url"] for r in page["data"]}) == 3


async def test_pending_and_failed_rows(local_server, api, clock: ManualClock) -> None:
    """In-flight requests are PENDING, failed ones FAILED with their error and no cost."""
    client = api(await local_server(clock=clock, latency_s=10.0, workers=2))
    await client.submit({"prompt": f"bad {FAIL_MARKER}"})
    assert (await client.history()).json()["data"][0]["model_status"] == "PENDING"
    clock.advance(10)
    row = (await client.history()).json()["data"][0]
    assert row["model_status"] == "FAILED"
    assert row["error"]
    assert row["credits_deduction"] == 0.0


async def test_newest_first_and_pagination(local_server, api, clock: ManualClock) -> None:
    """Rows come newest first and pages split them by per_page."""
    client = api(await local_server(clock=clock, latency_s=0.0))
    ids = []
    for i in range(5):
        ids.append((await client.submit({"prompt": f"p{i}"})).json()["request_id"])
        clock.advance(1)
    pages = [(await client.history(page=p, per_page=2)).json() for p in (1, 2, 3, 4)]
    assert [r["request_id"] for p in pages for r in p["data"]] == ids[::-1]
    assert pages[0]["total"] == 5
    assert pages[3]["data"] == []


async def test_pages_split_a_request_with_several_outputs(local_server, api, clock) -> None:
    """Pages count rows, not requests: one request's outputs may span two pages."""
    client = api(await local_server(clock=clock, latency_s=0.0))
    old = (await client.submit({"prompt": "old", "samples": 3})).json()["request_id"]
    clock.advance(1)
    new = (await client.submit({"prompt": "new", "samples": 2})).json()["request_id"]
    pages = [(await client.history(page=p, per_page=2)).json() for p in (1, 2, 3, 4)]
    assert [[r["request_id"] for r in p["data"]] for p in pages] == [
        [new, new], [old, old], [old], []
    ]
    urls = [r["generation_url"] for p in pages[1:] for r in p["data"]]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["0.png", "1.png", "2.png"]
    assert {p["total"] for p in pages} == {5}


async def test_status_and_model_filters(local_server, api, clock: ManualClock) -> None:
    """status and model_name (substring) filter the rows."""
    client = api(await local_server(clock=clock, latency_s=0.0, models=("flux-dev",)))
    await client.submit({"prompt": f"x {FAIL_MARKER}"})
    await client.submit({"prompt": "ok"})
    await client.submit({"prompt": "ok"}, slug="flux-dev")
    assert (await client.history(status="FAILED")).json()["total"] == 1
    assert (await client.history(status="COMPLETED")).json()["total"] == 2
    assert (await client.history(model_name="flux")).json()["total"] == 1


async def test_date_filters(local_server, api, clock: ManualClock) -> None:
    """from_date and to_date bound rows by their creation day (inclusive)."""
    client = api(await local_server(clock=clock, latency_s=0.0))
    first_day = _day(clock)
    await client.submit({"prompt": "old"})
    clock.advance(3 * DAY)
    await client.submit({"prompt": "new"})
    only_old = (await client.history(from_date=first_day, to_date=first_day)).json()
    assert [r["request_body"]["prompt"] for r in only_old["data"]] == ["old"]
    since = (await client.history(from_date=_day(clock, -1))).json()
    assert [r["request_body"]["prompt"] for r in since["data"]] == ["new"]


@pytest.mark.parametrize(
    "query",
    [
        {"per_page": 0},
        {"per_page": 101},
        {"page": 0},
        {"status": "DONE"},
        {"from_date": "2023-01-01", "to_date": "2023-03-01"},
        {"from_date": "2023-02-01", "to_date": "2023-01-01"},
        {"to_date": "yesterday"},
    ],
)
async def test_bad_query_is_400(local_server, api, query: dict[str, object]) -> None:
    """Out-of-range paging, unknown status and bad date windows answer 400."""
    assert (await api(await local_server()).history(**query)).status == 400


async def test_single_get(local_server, api, clock: ManualClock) -> None:
    """The single GET answers one row object for the request id."""
    client = api(await local_server(clock=clock, latency_s=0.0))
    rid = (await client.submit({"prompt": "one"})).json()["request_id"]
    answer = await client.request("GET", f"/inference-request/request-history/{rid}")
    assert answer.status == 200
    assert answer.json()["request_id"] == rid
    assert answer.json()["model_status"] == "COMPLETED"


async def test_single_get_unknown_is_404(local_server, api) -> None:
    """The single GET answers 404 for an unknown id."""
    answer = await api(await local_server()).request(
        "GET", "/inference-request/request-history/nope"
    )
    assert answer.status == 404


async def test_history_needs_the_key(local_server, api) -> None:
    """History answers 401 without the key."""
    client = api(await local_server())
    client.key = None
    assert (await client.history()).status == 401


async def test_history_outlives_v2_records(local_server, api, clock: ManualClock) -> None:
    """After the v2 record expired, history still has the row and the file still downloads."""
    client = api(await local_server(clock=clock, retention_s=3600))
    rid = (await client.submit()).json()["request_id"]
    clock.advance(2 * 3600)
    assert (await client.status(rid)).status == 404
    answer = await client.request("GET", f"/inference-request/request-history/{rid}")
    assert answer.status == 200
    status, _, _ = await client.download(answer.json()["generation_url"])
    assert status == 200


async def test_history_forgets_after_its_retention(local_server, api, clock) -> None:
    """Rows go once history_retention_s has passed after the v2 expiry."""
    client = api(
        await local_server(clock=clock, retention_s=3600, history_retention_s=DAY)
    )
    rid = (await client.submit()).json()["request_id"]
    clock.advance(3600 + DAY)
    path = f"/inference-request/request-history/{rid}"
    assert (await client.request("GET", path)).status == 404
    assert (await client.history(from_date=_day(clock, -2))).json()["total"] == 0


async def test_history_lag(local_server, api, clock: ManualClock) -> None:
    """With history_lag_s a job appears in history only that long after submit."""
    client = api(await local_server(clock=clock, history_lag_s=30.0))
    rid = (await client.submit()).json()["request_id"]
    path = f"/inference-request/request-history/{rid}"
    clock.advance(29)
    assert (await client.history()).json()["total"] == 0
    assert (await client.request("GET", path)).status == 404
    clock.advance(1)
    assert (await client.history()).json()["total"] == 1
