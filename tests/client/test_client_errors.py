"""Every failure the sandbox can produce reaches the caller as the right typed error."""

from __future__ import annotations

import pytest

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinAuthConfigError,
    OnePinResponseError,
)
from onepin_mcp.sandbox import ApiKey, Sandbox, seed

from .conftest import MakeClient

pytestmark = pytest.mark.anyio

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
NO_RETRY = RetryPolicy.disabled()


async def test_an_unknown_run_is_a_404_in_the_onepin_envelope(client: OnePinClient) -> None:
    with pytest.raises(OnePinAPIError) as caught:
        await client.get_run(seed.WORKFLOW_COMPLETES_ID, UNKNOWN_ID)
    error = caught.value
    assert (error.status, error.code) == (404, "NOT_FOUND")
    assert error.message
    assert error.request_id
    assert error.method == "GET"
    assert error.path == f"/api/v1/workflows/{seed.WORKFLOW_COMPLETES_ID}/runs/{UNKNOWN_ID}"


async def test_starting_while_a_run_is_active_is_a_409_conflict(client: OnePinClient) -> None:
    await client.start_run(seed.WORKFLOW_LONG_ID)
    with pytest.raises(OnePinAPIError) as caught:
        await client.start_run(seed.WORKFLOW_LONG_ID)
    assert (caught.value.status, caught.value.code) == (409, "CONFLICT")
    assert caught.value.attempts == 1


async def test_a_bad_status_token_is_a_422_with_field_details(client: OnePinClient) -> None:
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_runs(seed.WORKFLOW_COMPLETES_ID, status=["completed", "exploded"])  # type: ignore[list-item]
    error = caught.value
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert error.details
    assert any("status" in detail.field for detail in error.details)


async def test_a_limit_above_100_is_a_422_in_the_fastapi_shape(client: OnePinClient) -> None:
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows(limit=500)
    error = caught.value
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert [detail.field for detail in error.details] == ["query.limit"]


async def test_an_unknown_key_is_a_401(make_client: MakeClient) -> None:
    sandbox_with_keys = Sandbox(manual_clock=True, api_keys=["op_live_" + "A" * 32])
    client = make_client(api_key="op_live_" + "Z" * 32, transport=sandbox_with_keys.transport())
    with pytest.raises(OnePinAPIError) as caught:
        await client.whoami()
    assert caught.value.status == 401
    assert caught.value.code in ("UNAUTHORIZED", "INVALID_API_KEY")


async def test_a_key_without_the_run_scope_gets_a_403(make_client: MakeClient) -> None:
    reader = ApiKey(key="op_live_" + "R" * 32, scopes=frozenset({"workflows:read"}))
    sandbox = Sandbox(manual_clock=True, api_keys=[reader])
    client = make_client(api_key=reader.key, transport=sandbox.transport())
    with pytest.raises(OnePinAPIError) as caught:
        await client.start_run(seed.WORKFLOW_COMPLETES_ID)
    assert (caught.value.status, caught.value.code) == (403, "FORBIDDEN")


async def test_a_429_carries_retry_after_when_retries_are_off(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows", "status": 429, "retry_after": "7"})
    client = make_client(retry=NO_RETRY)
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert (caught.value.status, caught.value.code) == (429, "RATE_LIMITED")
    assert caught.value.retry_after == 7.0


async def test_an_html_502_page_becomes_a_short_server_error(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows", "body": "html"})
    client = make_client(retry=NO_RETRY)
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    error = caught.value
    assert (error.status, error.code) == (502, "SERVER_ERROR")
    assert "HTML" in error.message
    assert "<" not in str(error)


async def test_a_malformed_json_error_body_falls_back_to_the_status(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows", "body": "malformed_json", "status": 500})
    client = make_client(retry=NO_RETRY)
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert (caught.value.status, caught.value.code) == (500, "SERVER_ERROR")
    assert "malformed JSON" in caught.value.message


async def test_an_empty_error_body_gets_a_generic_message(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows", "body": "empty", "status": 503})
    client = make_client(retry=NO_RETRY)
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert (caught.value.status, caught.value.code) == (503, "SERVER_ERROR")
    assert caught.value.message == "OnePin is temporarily unavailable."


async def test_a_2xx_with_malformed_json_is_a_response_error(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    # Persistent: a read retries a truncated body (once, it would be a passing glitch).
    sandbox.faults.add({"path": "/api/v1/workflows", "body": "malformed_json", "times": None})
    with pytest.raises(OnePinResponseError) as caught:
        await client.list_workflows()
    assert caught.value.status == 200
    assert "not JSON" in str(caught.value)
    assert caught.value.attempts == 4


async def test_a_2xx_with_an_empty_body_is_a_response_error(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/auth/whoami", "body": "empty", "times": None})
    with pytest.raises(OnePinResponseError):
        await client.whoami()


async def test_without_a_key_every_call_fails_before_any_request_saying_how_to_fix_it(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    client = make_client(api_key=None, key_source=None)
    with pytest.raises(OnePinAuthConfigError, match="ONEPIN_API_KEY"):
        await client.list_workflows()
    with pytest.raises(OnePinAuthConfigError, match="onepin login"):
        await client.start_run(seed.WORKFLOW_COMPLETES_ID)
    assert len(sandbox.requests) == 0


async def test_the_node_catalog_needs_no_key(make_client: MakeClient) -> None:
    client = make_client(api_key=None, key_source=None)
    nodes = await client.list_nodes()
    assert nodes
