"""Toolset `account`: who the key is, what it may do, and the credit balance."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.account import AccountView


async def get_account(ctx: Context[AppState, Any]) -> AccountView:
    """The key's user, workspace, scopes and credit balance. Call first to check access."""
    client = onepin(ctx)
    return AccountView.of(await client.whoami(), await client.get_credits())


# GET /auth/whoami and GET /credits answer any valid key.
TOOLS: tuple[ToolSpec, ...] = (
    read_tool(get_account, toolset="account", title="Account", scopes=()),
)
