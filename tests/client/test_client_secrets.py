"""The API key appears in no error, repr or log line, whatever goes wrong."""

from __future__ import annotations

import logging

import anyio
import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinError
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import MakeClient

pytestmark = pytest.mark.anyio

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def test_the_key_never_appears_in_errors_or_debug_logs(
    make_client: MakeClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    key = sandbox.example_key
    caplog.set_level(logging.DEBUG)
    client = make_client(request_timeout_s=0.05)
    errors: list[OnePinError] = []

    sandbox.faults.add({"path": "/api/v1/workflows", "status": 503, "times": 1})
    await client.list_workflows()
    attempts = [
        client.get_run(seed.WORKFLOW_COMPLETES_ID, UNKNOWN_ID),
        client.start_run(seed.WORKFLOW_LONG_ID),
        client.start_run(seed.WORKFLOW_LONG_ID),  # 409 while the first is active
    ]
    for call in attempts:
        try:
            await call
        except OnePinError as exc:
            errors.append(exc)

    sandbox.faults.add({"path": "/api/v1/auth/whoami", "drop": "before", "times": None})
    sandbox.faults.add({"path": "/api/v1/users/me/credits", "latency_ms": 30_000, "times": None})
    sandbox.faults.add({"path": "/api/v1/users/me/limits", "body": "html", "times": None})
    for failing in (client.whoami, client.get_credits, client.get_limits):
        with anyio.fail_after(10):
            try:
                await failing()
            except OnePinError as exc:
                errors.append(exc)

    assert len(errors) == 5
    for error in errors:
        assert key not in str(error)
        assert key not in repr(error)
        assert key not in str(error.__cause__ or "")
        assert key not in str(error.__context__ or "")
    assert caplog.records  # the client did log at DEBUG
    assert key not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()
    assert any("request id" in record.getMessage() for record in caplog.records)


async def test_a_rejected_key_is_not_echoed_by_the_401(make_client: MakeClient) -> None:
    wrong_key = "op_live_" + "W" * 32
    strict = Sandbox(manual_clock=True, api_keys=["op_live_" + "A" * 32])
    client = make_client(api_key=wrong_key, transport=strict.transport())
    with pytest.raises(OnePinError) as caught:
        await client.whoami()
    assert wrong_key not in str(caught.value)
    assert wrong_key not in repr(caught.value)


def test_the_client_repr_shows_the_base_url_but_not_the_key(sandbox: Sandbox) -> None:
    from .conftest import sandbox_settings

    client = OnePinClient(sandbox_settings(sandbox), transport=sandbox.transport())
    assert sandbox.example_key not in repr(client)
    assert "sandbox.onepin.test" in repr(client)
