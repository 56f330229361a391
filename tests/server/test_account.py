"""get_account: the key's owner, workspace, scopes and balance; and the words for a bad key."""

from __future__ import annotations

import pytest
from mcp import Client

from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import NO_WAIT_RETRY, ServerFactory, sandbox_settings

pytestmark = pytest.mark.anyio


async def test_get_account_reports_workspace_scopes_and_balance(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("get_account", {})
    assert not result.is_error, result.content
    account = result.structured_content
    assert account is not None
    assert account["workspace_id"] == seed.WORKSPACE_ID
    assert "workflows:run" in account["scopes"]
    assert account["credit_balance"] > 0


async def test_a_refused_key_is_explained_with_how_to_fix_it(mode: str) -> None:
    accepted = ApiKey("op_live_" + "A" * 32)
    locked = Sandbox(manual_clock=True, api_keys=[accepted])
    settings = sandbox_settings(locked, api_key="op_live_" + "B" * 32)
    server = create_server(
        settings,
        selection=ToolSelection(toolsets=("account",)),
        transport=locked.transport(),
        retry=NO_WAIT_RETRY,
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_account", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("OnePin answered 401")
    assert "ONEPIN_API_KEY" in text
    assert "request id" in text
    assert "B" * 32 not in text


async def test_a_missing_key_does_not_stop_the_server_and_tools_say_how_to_configure(
    sandbox: Sandbox, make_server: ServerFactory, mode: str
) -> None:
    server = make_server(
        settings=sandbox_settings(sandbox, api_key=None, key_source=None), toolsets=("account",)
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_account", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "No OnePin API key is configured" in text
    assert "ONEPIN_API_KEY" in text
    assert len(sandbox.requests) == 0  # refused before any request
