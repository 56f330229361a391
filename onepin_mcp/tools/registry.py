"""The toolsets in their fixed order, and which are on by default (design §2)."""

from __future__ import annotations

from onepin_mcp.tools import ToolSpec, account

TOOLSETS: dict[str, tuple[ToolSpec, ...]] = {
    "account": account.TOOLS,
}

DEFAULT_TOOLSETS: tuple[str, ...] = ("account", "workflows", "runs", "run_control")
