"""Status codes of the local server: each refusal answers like the real API."""

from __future__ import annotations

from batchgen.clock import ManualClock
from batchgen.server import FAIL_MARKER


async def test_missing_key_is_401(local_server, api) -> None:
    """A submit without x-api-key is refused with 401 and a JSON error."""
    client = api(await local_server())
    client.key = None
    answer = await client.submit()
    assert answer.status == 401
    assert "error" in answer.json()


async def test_wrong_key_is_401(local_server, api) -> None:
    """A wrong x-api-key is refused with 401 on polls as on submits."""
    client = api(await local_server())
    client.key = "SG_wrong"
    assert (await client.status("nope")).status == 401


async def test_bearer_token_is_401(local_server, api) -> None:
    """A bearer token in place of x-api-key is rejected (API-FACTS)."""
    server = await local_server()
    client = api(server)
    client.key = None
    answer = await client.submit(headers={"Authorization": f"Bearer {server.api_key}"})
    assert answer.status == 401


async def test_forbidden_slug_is_403(local_server, api) -> None:
    """A slug listed in forbidden answers 403."""
    client = api(await local_server(forbidden=("sdxl-pro",)))
    answer = await client.submit(slug="sdxl-pro")
    assert answer.status == 403
    assert "error" in answer.json()


async def test_unknown_slug_is_404(local_server, api) -> None:
    """An unknown model slug answers 404."""
    assert (await api(await local_server()).submit(slug="no-such-model")).status == 404


async def test_extra_model_is_known(local_server, api) -> None:
    """A slug given in models is accepted with the permissive schema."""
    client = api(await local_server(models=("flux-schnell",)))
    assert (await client.submit({"prompt": "x", "anything": 1}, slug="flux-schnell")).status == 200


async def test_unknown_request_is_404(local_server, api) -> None:
    """Both GETs answer 404 for an unknown request id."""
    client = api(await local_server())
    assert (await client.status("0000")).status == 404
    assert (await client.result("0000")).status == 404


async def test_wrong_verb_is_405_html(local_server, api) -> None:
    """A GET on the submit path answers 405 with an HTML page."""
    answer = await api(await local_server()).request("GET", "/v2/sd1.5-epicrealism")
    assert answer.status == 405
    assert answer.content_type == "text/html"
    assert answer.text.lstrip().startswith("<!DOCTYPE html>")


async def test_missing_content_type_is_406_plain_text(local_server, api) -> None:
    """A submit whose Content-Type is not JSON answers 406 in plain text."""
    answer = await api(await local_server()).request(
        "POST", "/v2/sd1.5-epicrealism", data=b'{"prompt": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status == 406
    assert answer.content_type == "text/plain"


async def test_out_of_credits_is_406(local_server, api) -> None:
    """When credits cannot pay for the samples the submit answers 406 JSON."""
    client = api(await local_server(credits=0.05, cost_per_image=0.02))
    assert (await client.submit({"prompt": "x", "samples": 2})).status == 200
    answer = await client.submit({"prompt": "x", "samples": 2})
    assert answer.status == 406
    assert "credits" in answer.json()["error"].lower()


async def test_refusals_are_per_model(local_server, api) -> None:
    """One server refuses each listed slug with its own code and serves the others."""
    client = api(await local_server(models=("flux",), forbidden=("pro",), retired=("old",)))
    codes = {slug: (await client.submit(slug=slug)).status
             for slug in ("sd1.5-epicrealism", "flux", "pro", "old", "nope")}
    assert codes == {"sd1.5-epicrealism": 200, "flux": 200, "pro": 403, "old": 410, "nope": 404}


async def test_retired_slug_is_410(local_server, api) -> None:
    """A retired slug answers 410."""
    client = api(await local_server(retired=("sd1.5-old",)))
    assert (await client.submit(slug="sd1.5-old")).status == 410


async def test_schema_error_is_400(local_server, api) -> None:
    """A value outside the schema answers 400 naming the field."""
    answer = await api(await local_server()).submit({"prompt": "x", "samples": 9})
    assert answer.status == 400
    assert "samples" in answer.json()["error"]


async def test_missing_prompt_is_400(local_server, api) -> None:
    """A body without the required prompt answers 400."""
    assert (await api(await local_server()).submit({"samples": 1})).status == 400


async def test_invalid_json_is_400(local_server, api) -> None:
    """A body that is not JSON answers 400."""
    answer = await api(await local_server()).request(
        "POST", "/v2/sd1.5-epicrealism", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400


async def test_schema_warning_is_accepted(local_server, api) -> None:
    """An undocumented scheduler and unknown parameters are warnings, so accepted."""
    body = {"prompt": "x", "scheduler": "dpmpp_sde_ancestral", "lora": "y"}
    assert (await api(await local_server()).submit(body)).status == 200


async def test_failed_job_is_422_on_both_gets(local_server, api) -> None:
    """A FAILED job answers 422 with status, error and metrics on both GET endpoints."""
    client = api(await local_server(latency_s=0.0))
    rid = (await client.submit({"prompt": f"nsfw {FAIL_MARKER}"})).json()["request_id"]
    for answer in (await client.status(rid), await client.result(rid)):
        assert answer.status == 422
        body = answer.json()
        assert body["status"] == "FAILED"
        assert body["error"]
        assert "metrics" in body


async def test_fail_rate_one_fails_every_job(local_server, api) -> None:
    """With fail_rate 1 every job ends FAILED and is not billed."""
    client = api(await local_server(latency_s=0.0, fail_rate=1.0))
    rid = (await client.submit()).json()["request_id"]
    answer = await client.status(rid)
    assert answer.status == 422
    assert answer.json()["metrics"]["cost"] == 0.0


async def test_custom_fail_prompt(local_server, api, clock: ManualClock) -> None:
    """A prompt containing a configured fail substring ends FAILED once done."""
    client = api(await local_server(clock=clock, fail_prompts=("volcano",)))
    rid = (await client.submit({"prompt": "a volcano at dawn"})).json()["request_id"]
    assert (await client.status(rid)).json()["status"] == "PROCESSING"
    clock.advance(10)
    assert (await client.status(rid)).status == 422


async def test_unknown_path_is_404_json(local_server, api) -> None:
    """An unknown path answers 404 with a JSON error."""
    answer = await api(await local_server()).request("GET", "/nowhere")
    assert answer.status == 404
    assert "error" in answer.json()
