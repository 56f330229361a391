"""Toolset `workflows`: find workflows and read one (summary, graph or rendered markdown)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from onepin_mcp.api.models import SortOrder, WorkflowSortField
from onepin_mcp.params import Limit, Offset, WorkflowId
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.workflows import WorkflowList, WorkflowView

# "paused" is accepted by the API but always matches nothing (a paused latest run counts as
# "running"), so it is not offered.
WorkflowState = Literal["draft", "running", "completed", "failed"]


async def list_workflows(
    ctx: Context[AppState, Any],
    search: Annotated[
        str | None,
        Field(description="case-insensitive text in name or description", max_length=100),
    ] = None,
    status: Annotated[
        WorkflowState | None,
        Field(
            description="by latest run: draft (never run), running (running or paused), "
            "completed, failed"
        ),
    ] = None,
    sort: Annotated[
        WorkflowSortField | None, Field(description="default updated_at (newest first)")
    ] = None,
    order: Annotated[SortOrder | None, Field(description="default depends on sort")] = None,
    has_failed_run: Annotated[
        bool | None, Field(description="true: some run ever failed; false: none did")
    ] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> WorkflowList:
    """Find workflows by name or description, filter by latest-run status, sort and page.
    Rows are compact (ids, run counts, last run); call get_workflow for one workflow's nodes."""
    page = await onepin(ctx).list_workflows(
        search=search,
        status=status,
        sort=[sort] if sort else None,
        order=[order] if order else None,
        has_failed_run=has_failed_run,
        offset=offset,
        limit=limit,
    )
    return WorkflowList.of(page)


async def get_workflow(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    view: Annotated[
        Literal["summary", "definition", "markdown"],
        Field(
            description="summary: nodes, script, run counts, last run; definition: the full "
            "graph JSON; markdown: a readable description of the pipeline"
        ),
    ] = "summary",
) -> WorkflowView:
    """One workflow. The summary lists its nodes (id, type, name, languages, validator
    thresholds), its script's size and language, run counts and the last run."""
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
        latest = await client.list_runs(workflow_id, sort="created_at", order="desc", limit=1)
        last_run = latest.items[0] if latest.items else None
    return WorkflowView.of_summary(workflow, last_run)


READ: tuple[str, ...] = ("workflows:read",)

TOOLS: tuple[ToolSpec, ...] = (
    read_tool(list_workflows, toolset="workflows", title="List workflows", scopes=READ),
    read_tool(get_workflow, toolset="workflows", title="Get workflow", scopes=READ),
)
