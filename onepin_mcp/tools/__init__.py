"""The tool surface: toolsets of task-shaped tools, each tool described once, in a fixed order.

Every toolset module defines `TOOLS`, a tuple of `ToolSpec`, built with `read_tool` or
`write_tool`. A spec is the one record of every fact about its tool: name, title, toolset, all
four behaviour hints, the OnePin scopes it needs, its confirmation class, and (read from its
signature's parameter types, `onepin_mcp.params`) which tool lists the values of each id it
takes. Selection, the doctor's scope check and confirmation derive from these records; nothing
else keeps a table keyed by tool name. `TOOLSETS` fixes the order in which toolsets (and so
tools) appear in `tools/list`. Tools only call the OnePin client and return views: a
`OnePinError` they let escape is turned into agent-facing text by the server, in one place
(`onepin_mcp.failures`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations

from onepin_mcp.params import listed_by
from onepin_mcp.state import ConfirmClass

if TYPE_CHECKING:
    from onepin_mcp.api.client import OnePinClient
    from onepin_mcp.state import AppState

ToolFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ToolSpec:
    """One tool as registered, and every fact about it."""

    fn: ToolFunction
    name: str
    title: str
    toolset: str
    annotations: ToolAnnotations
    # The OnePin scopes its calls need (flat: write does not imply read); () for none.
    scopes: tuple[str, ...]
    # The most lenient confirmation policy under which it asks the user first.
    confirm: ConfirmClass

    @property
    def writes(self) -> bool:
        return not self.annotations.read_only_hint

    @property
    def listed_by(self) -> Mapping[str, str]:
        """For each id parameter, the tool whose results list its valid values."""
        parameters = inspect.signature(self.fn, eval_str=True).parameters
        found = {name: listed_by(p.annotation) for name, p in parameters.items()}
        return {name: tool for name, tool in found.items() if tool is not None}


def read_tool(fn: ToolFunction, *, toolset: str, title: str, scopes: tuple[str, ...]) -> ToolSpec:
    """A tool that only reads OnePin: safe to call any number of times, never confirmed.

    The hints carry no `title`: the tool's own `title` is the one clients show, and a second
    copy in every listing only cost bytes."""
    hints = ToolAnnotations(
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=True,
    )
    return ToolSpec(fn, fn.__name__, title, toolset, hints, scopes, "never")


def write_tool(
    fn: ToolFunction,
    *,
    toolset: str,
    title: str,
    scopes: tuple[str, ...],
    destructive: bool,
    idempotent: bool,
    confirm: ConfirmClass,
) -> ToolSpec:
    """A tool that changes OnePin state; hidden and refused in read-only mode."""
    hints = ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )
    return ToolSpec(fn, fn.__name__, title, toolset, hints, scopes, confirm)


def onepin(ctx: Context[AppState, Any]) -> OnePinClient:
    """The OnePin client that serves this request (per caller key in passthrough mode)."""
    state = ctx.request_context.lifespan_context
    return state.clients.client_for(ctx)
