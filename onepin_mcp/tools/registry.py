"""The toolsets in their fixed order, and which are on by default (what everyday run work needs;
admin and catalog tools cost context on every turn, so they are opt-in)."""

from __future__ import annotations

from onepin_mcp.tools import (
    ToolSpec,
    account,
    catalog,
    dictionary,
    run_control,
    runs,
    usage,
    workflow_admin,
    workflows,
)

TOOLSETS: dict[str, tuple[ToolSpec, ...]] = {
    "account": account.TOOLS,
    "workflows": workflows.TOOLS,
    "runs": runs.TOOLS,
    "run_control": run_control.TOOLS,
    "workflow_admin": workflow_admin.TOOLS,
    "catalog": catalog.TOOLS,
    "dictionary": dictionary.TOOLS,
    "usage": usage.TOOLS,
}

DEFAULT_TOOLSETS: tuple[str, ...] = ("account", "workflows", "runs", "run_control")
