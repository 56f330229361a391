"""Which tools a server exposes: toolsets, single tools, exclusions and read-only mode.

`resolve_selection` is pure: given the choices it returns the tools to register, in the fixed
order of `TOOLSETS`, and the tools to refuse by name with a reason (write tools in read-only
mode), so that an agent calling one learns why instead of seeing "unknown tool".
"""

from __future__ import annotations

from dataclasses import dataclass

from onepin_mcp.tools import ToolSpec
from onepin_mcp.tools.registry import DEFAULT_TOOLSETS, TOOLSETS


class SelectionError(ValueError):
    """A toolset or tool name that doesn't exist; the message lists the valid ones."""


@dataclass(frozen=True)
class ToolSelection:
    """`toolsets` None means the default toolsets; `tools` adds single tools on top."""

    toolsets: tuple[str, ...] | None = None
    tools: tuple[str, ...] = ()
    exclude_tools: tuple[str, ...] = ()
    read_only: bool = False


def all_tools() -> tuple[ToolSpec, ...]:
    return tuple(spec for specs in TOOLSETS.values() for spec in specs)


def resolve_selection(selection: ToolSelection) -> tuple[list[ToolSpec], dict[str, str]]:
    """The tools to register, in order, and the refusal text of each write tool hidden by
    read-only mode."""
    toolsets = DEFAULT_TOOLSETS if selection.toolsets is None else selection.toolsets
    if "all" in toolsets:
        toolsets = tuple(TOOLSETS)
    unknown_sets = sorted(set(toolsets) - set(TOOLSETS))
    if unknown_sets:
        raise SelectionError(
            f"unknown toolset(s) {', '.join(unknown_sets)}; "
            f"choose from {', '.join(TOOLSETS)} or all"
        )
    by_name = {spec.name: spec for spec in all_tools()}
    unknown = sorted((set(selection.tools) | set(selection.exclude_tools)) - set(by_name))
    if unknown:
        raise SelectionError(
            f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(by_name)}"
        )
    chosen = {spec.name for name in toolsets for spec in TOOLSETS[name]} | set(selection.tools)
    chosen -= set(selection.exclude_tools)
    enabled: list[ToolSpec] = []
    refused: dict[str, str] = {}
    for spec in by_name.values():
        if spec.name not in chosen:
            continue
        if selection.read_only and spec.writes:
            refused[spec.name] = (
                f"{spec.name} changes OnePin state, and this server runs in read-only mode "
                "(--read-only / ONEPIN_MCP_READ_ONLY). Ask the user to run it without "
                "read-only mode, or use the read tools."
            )
            continue
        enabled.append(spec)
    return enabled, refused
