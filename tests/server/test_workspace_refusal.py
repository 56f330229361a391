"""A 403 to a call that named a workspace: the agent is told what ONEPIN_WORKSPACE_ID is set to,
that OnePin refuses any workspace but the key's, and what the user can change."""

from __future__ import annotations

import pytest
from mcp import Client

from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import NO_WAIT_RETRY, ServerFactory, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

OTHER_WORKSPACE = "11111111-2222-4333-8444-555555555555"
SCOPE_ADVICE = "lacks the scope or workspace role"


async def test_a_workspace_the_key_cannot_use_is_named_with_how_to_unset_it(
    sandbox: Sandbox, make_server: ServerFactory, mode: str
) -> None:
    server = make_server(
        settings=sandbox_settings(sandbox, workspace_id=OTHER_WORKSPACE),
        toolsets=("workflows", "account"),
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        text = error_text(await client.call_tool("list_workflows", {}))
        # The advice is one the agent can follow: get_account asks no workspace, so it answers.
        account = structured(await client.call_tool("get_account", {}))

    assert text.startswith("OnePin answered 403 FORBIDDEN: X-Workspace-Id does not match")
    assert f"ONEPIN_WORKSPACE_ID={OTHER_WORKSPACE}" in text
    assert "unset ONEPIN_WORKSPACE_ID" in text
    assert "get_account" in text
    # OnePin's message names the header: scope advice would send the agent the wrong way.
    assert SCOPE_ADVICE not in text
    assert account["workspace_id"] == seed.WORKSPACE_ID
    refused = [r for r in sandbox.requests if r.path == "/api/v1/workflows"]
    assert [r.status for r in refused] == [403]


async def test_a_scope_refusal_with_a_workspace_set_leads_with_the_scope_and_names_the_setting(
    mode: str,
) -> None:
    key = "op_live_" + "W" * 32
    narrow = Sandbox(manual_clock=True, api_keys=[ApiKey(key, scopes=frozenset({"voices:read"}))])
    server = create_server(
        sandbox_settings(narrow, api_key=key, workspace_id=seed.WORKSPACE_ID),
        selection=ToolSelection(toolsets=("workflows",)),
        transport=narrow.transport(),
        retry=NO_WAIT_RETRY,
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        text = error_text(await client.call_tool("list_workflows", {}))

    assert "workflows:read" in text
    assert text.index(SCOPE_ADVICE) < text.index(f"ONEPIN_WORKSPACE_ID={seed.WORKSPACE_ID}")
    assert key not in text
