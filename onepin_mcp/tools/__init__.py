"""The tool surface: toolsets of task-shaped tools, each tool described once, in a fixed order.

Every toolset module defines `TOOLS`, a tuple of `ToolSpec`, built with `read_tool` or
`write_tool` so that each tool declares all four behaviour hints. `TOOLSETS` fixes the order
in which toolsets (and so tools) appear in `tools/list`. Tools only call the OnePin client and
return views: a `OnePinError` they let escape is turned into agent-facing text by the server, in
one place (`onepin_mcp.failures`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations

if TYPE_CHECKING:
    from onepin_mcp.api.client import OnePinClient
    from onepin_mcp.state import AppState

ToolFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ToolSpec:
    """One tool as registered: its function, its name and title, its hints, its toolset."""

    fn: ToolFunction
    name: str
    title: str
    toolset: str
    annotations: ToolAnnotations

    @property
    def writes(self) -> bool:
        return not self.annotations.read_only_hint


def read_tool(fn: ToolFunction, *, toolset: str, title: str) -> ToolSpec:
    """A tool that only reads OnePin: safe to call any number of times."""
    hints = ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=True,
    )
    return ToolSpec(fn, fn.__name__, title, toolset, hints)


def write_tool(
    fn: ToolFunction, *, toolset: str, title: str, destructive: bool, idempotent: bool
) -> ToolSpec:
    """A tool that changes OnePin state; hidden and refused in read-only mode."""
    hints = ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )
    return ToolSpec(fn, fn.__name__, title, toolset, hints)


def onepin(ctx: Context[AppState, Any]) -> OnePinClient:
    """The OnePin client that serves this request (per caller key in passthrough mode)."""
    state = ctx.request_context.lifespan_context
    return state.clients.client_for(ctx)
