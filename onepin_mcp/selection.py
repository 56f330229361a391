"""Which tools a server exposes: toolsets, single tools, exclusions and read-only mode.

`resolve_selection` is pure: given the choices it returns the tools to register, in the fixed
order of `TOOLSETS`, and the write tools read-only mode hides, each with its refusal. `refusals`
words, for every registered tool that isn't enabled, why and how to turn it on, so that an agent
calling one learns that instead of seeing "unknown tool".
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
    toolsets = _toolsets(selection)
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
            refused[spec.name] = _read_only_refusal(spec)
            continue
        enabled.append(spec)
    return enabled, refused


def refusals(selection: ToolSelection) -> dict[str, str]:
    """What a call to each registered tool this selection doesn't enable answers. A write tool
    in read-only mode gets the read-only refusal however else it was left out (turning its
    toolset on would not help); an excluded tool says so; any other is in a toolset that is
    off, and the text names the toolset and the settings that turn it on."""
    enabled, _ = resolve_selection(selection)
    on = {spec.name for spec in enabled}
    chosen = _toolsets(selection)
    reasons: dict[str, str] = {}
    for spec in all_tools():
        if spec.name in on:
            continue
        if selection.read_only and spec.writes:
            reasons[spec.name] = _read_only_refusal(spec)
        elif spec.name in selection.exclude_tools:
            reasons[spec.name] = (
                f"{spec.name} is excluded on this server (--exclude-tools / "
                "ONEPIN_MCP_EXCLUDE_TOOLS). Ask the user to take it off that list and restart "
                "the server if it is needed."
            )
        else:
            wanted = ",".join(name for name in TOOLSETS if name in chosen or name == spec.toolset)
            reasons[spec.name] = (
                f"{spec.name} is in the {spec.toolset} toolset, which this server does not "
                f"enable. Ask the user to turn it on and restart the server: --toolsets {wanted} "
                f"(or ONEPIN_MCP_TOOLSETS={wanted}), or this tool alone with --tools "
                f"{spec.name} (or ONEPIN_MCP_TOOLS={spec.name})."
            )
    return reasons


def _toolsets(selection: ToolSelection) -> tuple[str, ...]:
    toolsets = DEFAULT_TOOLSETS if selection.toolsets is None else selection.toolsets
    return tuple(TOOLSETS) if "all" in toolsets else toolsets


def _read_only_refusal(spec: ToolSpec) -> str:
    return (
        f"{spec.name} changes OnePin state, and this server runs in read-only mode "
        "(--read-only / ONEPIN_MCP_READ_ONLY). Ask the user to run it without "
        "read-only mode, or use the read tools."
    )
