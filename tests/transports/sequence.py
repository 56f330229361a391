"""What an agent does on a fresh connection, as one function every transport test runs.

List the tools, find a workflow by name, preview a run, start it, check its status, read the run
snapshot resource, and cancel it. The workflow is the sandbox's long one (about 14 minutes of
sandbox time per run at speed 1), so the run is still active when it is cancelled.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextResourceContents

from onepin_mcp.sandbox import seed

SEQUENCE_DEADLINE_S = 60.0
AGENT_TOOLS = {
    "get_account",
    "list_workflows",
    "preview_run",
    "start_run",
    "get_run_status",
    "cancel_run",
}


def ok(result: CallToolResult, tool: str) -> dict[str, Any]:
    assert not result.is_error, f"{tool} failed: {result.content}"
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return dict(result.structured_content)


async def agent_sequence(client: Client) -> None:
    with anyio.fail_after(SEQUENCE_DEADLINE_S):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools >= AGENT_TOOLS, f"missing tools: {sorted(AGENT_TOOLS - tools)}"

        listed = ok(
            await client.call_tool("list_workflows", {"search": "Audiobook"}), "list_workflows"
        )
        workflow_id = seed.WORKFLOW_LONG_ID
        assert [row["id"] for row in listed["items"]] == [workflow_id], listed

        preview = ok(
            await client.call_tool("preview_run", {"workflow_id": workflow_id}), "preview_run"
        )
        assert preview, "preview_run returned an empty view"

        started = ok(await client.call_tool("start_run", {"workflow_id": workflow_id}), "start_run")
        run_id = started["id"]
        assert started["status"] in ("pending", "running"), started

        status = ok(
            await client.call_tool(
                "get_run_status", {"workflow_id": workflow_id, "run_id": run_id}
            ),
            "get_run_status",
        )
        assert status.get("is_terminal") is False, status

        uri = f"onepin://workflows/{workflow_id}/runs/{run_id}"
        read = await client.read_resource(uri)
        assert len(read.contents) == 1
        content = read.contents[0]
        assert isinstance(content, TextResourceContents)
        snapshot = json.loads(content.text)
        assert snapshot["id"] == run_id, snapshot

        cancelled = ok(
            await client.call_tool("cancel_run", {"workflow_id": workflow_id, "run_id": run_id}),
            "cancel_run",
        )
        assert (cancelled["id"], cancelled["status"]) == (run_id, "cancelled"), cancelled
