"""Which write asks first: the server's `WritePolicy.confirm` against the tool's confirmation
class, for the tool this request calls.

A tool's class is its own fact, declared on its record (`ToolSpec.confirm`) and handed down
through `AppState.confirm_classes` (tools sit above this layer). Which tool a call is for comes
from the request itself (`tools/call`'s `name`), so that no body types its own name again and
no question or record can be filed under another tool's name.

- policy `never`: no tool asks.
- policy `destructive` (the default): tools of class `destructive` (`cancel_run` and
  `delete_workflow`, the two writes that lose something for good).
- policy `writes`: every write tool: class `destructive` and class `writes`.

`update_workflow` carries the destructive hint (a new graph overwrites the old one) but is of
class `writes`: an agent editing a workflow calls it over and over, and a question per edit
would teach the user to click "yes" without reading.
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.mcpserver import Context

from onepin_mcp.state import AppState, ConfirmClass, ConfirmPolicy

# The policies under which a tool of each confirmation class asks first.
ASKED_UNDER: Final[dict[ConfirmClass, frozenset[ConfirmPolicy]]] = {
    "never": frozenset(),
    "destructive": frozenset({"destructive", "writes"}),
    "writes": frozenset({"writes"}),
}


def called_tool(ctx: Context[AppState, Any]) -> str:
    """The name of the tool this request calls. Outside a `tools/call` there is no write to
    guard: that is a bug, and it fails loudly rather than record or ask under a made-up name."""
    request = ctx.request_context
    name = (request.params or {}).get("name") if request.method == "tools/call" else None
    if not isinstance(name, str):
        raise RuntimeError(f"a write guarded outside a tools/call request ({request.method})")
    return name


def policy_asks(ctx: Context[AppState, Any]) -> bool:
    """Whether the server's policy wants a question before the tool this request calls. A tool
    without a class is a bug, not a reason to skip the question: the lookup fails loudly."""
    state = ctx.request_context.lifespan_context
    return state.policy.confirm in ASKED_UNDER[state.confirm_classes[called_tool(ctx)]]
