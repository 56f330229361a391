"""Toolset `workflows`: find workflows and read one (summary, graph or rendered markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinError
from onepin_mcp.api.models import RunListItem, SortOrder, WorkflowListItem, WorkflowSortField
from onepin_mcp.params import Limit, Offset, WorkflowId
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.workflows import WorkflowList, WorkflowView

# "paused" is accepted by the API but always matches nothing (a paused latest run counts as
# "running"), so it is not offered.
WorkflowState = Literal["draft", "running", "completed", "failed"]

# A listing's rows carry their latest run's id, which OnePin's rows lack: one lookup per row with
# runs, this many at a time, so a page of 100 rows is a short burst rather than a flood.
MAX_CONCURRENT_LOOKUPS = 5


async def list_workflows(
    ctx: Context[AppState, Any],
    search: Annotated[
        str | None,
        Field(description="text in name or description", max_length=100),
    ] = None,
    status: Annotated[
        WorkflowState | None,
        Field(
            description="the latest run's; draft: never run; running: pending, running or paused"
        ),
    ] = None,
    sort: Annotated[WorkflowSortField | None, Field(description="default updated_at")] = None,
    order: Annotated[SortOrder | None, Field(description="default by sort")] = None,
    has_failed_run: Annotated[bool | None, Field(description="some run ever failed")] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> WorkflowList:
    """Find workflows by name, description or latest run's status; rows carry run counts and
    the latest run (the active one, if any)."""
    client = onepin(ctx)
    page = await client.list_workflows(
        search=search,
        status=status,
        sort=[sort] if sort else None,
        order=[order] if order else None,
        has_failed_run=has_failed_run,
        offset=offset,
        limit=limit,
    )
    latest, failed = await latest_runs(client, page.items)
    return WorkflowList.of(page, latest, lookups_failed=failed)


async def latest_run(client: OnePinClient, workflow_id: str) -> RunListItem | None:
    """A workflow's newest run (its active run, if it has one), or None without runs."""
    newest = await client.list_runs(workflow_id, sort="created_at", order="desc", limit=1)
    return newest.items[0] if newest.items else None


async def latest_runs(
    client: OnePinClient, items: Sequence[WorkflowListItem]
) -> tuple[dict[str, RunListItem], int]:
    """The latest run of each listed workflow that has run, by workflow id, looked up
    concurrently; and how many lookups failed."""
    found: dict[str, RunListItem] = {}
    failed = 0
    limiter = anyio.CapacityLimiter(MAX_CONCURRENT_LOOKUPS)

    async def look_up(workflow_id: str) -> None:
        nonlocal failed
        async with limiter:
            try:
                run = await latest_run(client, workflow_id)
            except OnePinError:
                # The exception to "tools don't catch OnePinError": the listing itself succeeded,
                # and a row without its run's id is worth more than no listing at all.
                failed += 1
                return
        if run is not None:
            found[workflow_id] = run

    async with anyio.create_task_group() as group:
        for item in items:
            if item.runs_count or item.last_run_status is not None:
                group.start_soon(look_up, item.id)
    return found, failed


async def get_workflow(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    view: Annotated[
        Literal["summary", "definition", "markdown"],
        Field(description="definition: the graph JSON; markdown: the pipeline in prose"),
    ] = "summary",
) -> WorkflowView:
    """One workflow: nodes (id, type, name, languages, thresholds), script, runs."""
    client = onepin(ctx)
    if view == "markdown":
        return WorkflowView.of_markdown(await client.get_workflow_markdown(workflow_id))
    workflow = await client.get_workflow(workflow_id)
    if view == "definition":
        return WorkflowView.of_definition(workflow)
    last_run = None
    if workflow.runs_count:
        # The workflow record has the last run's status but not its id, which is what an
        # agent needs next; the newest run is one cheap call away.
        last_run = await latest_run(client, workflow_id)
    return WorkflowView.of_summary(workflow, last_run)


READ: tuple[str, ...] = ("workflows:read",)

TOOLS: tuple[ToolSpec, ...] = (
    read_tool(list_workflows, toolset="workflows", title="List workflows", scopes=READ),
    read_tool(get_workflow, toolset="workflows", title="Get workflow", scopes=READ),
)
