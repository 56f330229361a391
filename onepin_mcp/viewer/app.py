"""The run viewer as an MCP App (`io.modelcontextprotocol/ui`): its `ui://` resource, and which
tools point to it.

The resource is registered through the SDK's `Apps` extension, which also makes the server
advertise the extension. The tools' pointer (`_meta.ui.resourceUri`) is added per answer, only
for a client that negotiated Apps: any other client gets the same `tools/list` as a server
without the viewer, as the extension's graceful-degradation rule asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mcp.server.apps import Apps, ResourceCsp
from mcp.types import Tool

from onepin_mcp.viewer.page import run_viewer_html

VIEWER_URI: Final = "ui://onepin/run-viewer.html"
LEGACY_POINTER: Final = "ui/resourceUri"

# The tools whose result is one run: the host renders the viewer beside each of them.
VIEWER_TOOLS: Final = frozenset({"get_run_status", "wait_for_run", "start_run", "get_run_results"})


def viewer_extension() -> Apps:
    apps = Apps()
    apps.add_html_resource(
        VIEWER_URI,
        run_viewer_html(),
        name="run_viewer",
        title="OnePin run viewer",
        description="A run's status, progress, steps, scores, credits and audio, kept current "
        "while the run is active.",
        # No domain of any kind: the page loads nothing and connects nowhere.
        csp=ResourceCsp(connect_domains=[], resource_domains=[]),
        prefers_border=True,
    )
    return apps


def point_to_viewer(tools: Sequence[Tool]) -> list[Tool]:
    """`tools` with the viewer's URI in the `_meta.ui` of each tool that shows one run."""
    pointed: list[Tool] = []
    for tool in tools:
        if tool.name in VIEWER_TOOLS:
            meta = dict(tool.meta or {})
            meta["ui"] = {**meta.get("ui", {}), "resourceUri": VIEWER_URI}
            # The flat key of the extension's first drafts, still the one some hosts read.
            meta[LEGACY_POINTER] = VIEWER_URI
            tool = tool.model_copy(update={"meta": meta})
        pointed.append(tool)
    return pointed
