"""Toolset `runs`: follow, inspect and price runs; everything here only reads OnePin."""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import AudioContent, CallToolResult, ContentBlock, TextContent
from pydantic import Field

from onepin_mcp.api.models import RunSortField, RunState, RunStatus, SortOrder
from onepin_mcp.clips import MAX_LOOKUP_LINES, ClipUnavailable, fetch_clip, find_card
from onepin_mcp.params import (
    AudioId,
    ClipChoice,
    FromTime,
    Limit,
    NodeFilter,
    Offset,
    OutputNodeChoice,
    RunId,
    ToTime,
    WorkflowId,
)
from onepin_mcp.run_history import RunsInRange, runs_in_range
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.runs import (
    AudioClipView,
    DownloadView,
    PreviewView,
    RunDataView,
    RunList,
    RunRecordView,
    RunResultsView,
    RunsSummaryView,
    RunStatusView,
    RunWaitView,
    StepsView,
    progress_of,
)
from onepin_mcp.watch import wait_until_settled

# Every tool here reads a workflow or its runs.
READ: tuple[str, ...] = ("workflows:read",)


async def list_runs(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    status: Annotated[
        Annotated[list[RunStatus], Field(min_length=1)] | None,
        Field(description="any of these"),
    ] = None,
    sort: Annotated[RunSortField | None, Field(description="default created_at")] = None,
    order: Annotated[SortOrder | None, Field(description="default desc")] = None,
    search: Annotated[
        str | None, Field(description="starter's name or email", max_length=100)
    ] = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> RunList:
    """A workflow's runs, newest first: status, progress, credits, starter."""
    if from_time is not None or to_time is not None:
        _check_range(from_time, to_time)
        if sort not in (None, "created_at"):
            raise ToolError(
                f"from_time/to_time select runs by creation time, so they list by created_at "
                f"only: leave sort out (not {sort}), or drop the range."
            )
        # OnePin's list has no time filter: the range is read newest first and paged here.
        found = await runs_in_range(
            onepin(ctx),
            workflow_id,
            from_time=from_time,
            to_time=to_time,
            status=status,
            search=search,
        )
        return RunList.of_range(
            workflow_id, found, offset=offset, limit=limit, oldest_first=order == "asc"
        )
    page = await onepin(ctx).list_runs(
        workflow_id,
        status=status,
        sort=sort,
        order=order,
        search=search,
        offset=offset,
        limit=limit,
    )
    return RunList.of(workflow_id, page)


async def get_run_status(
    ctx: Context[AppState, Any], workflow_id: WorkflowId, run_id: RunId
) -> RunStatusView:
    """A run's state, progress, timing, error and `next` (what to call next). To wait:
    wait_for_run, not a loop of this."""
    return RunStatusView.of(await onepin(ctx).get_run_status(workflow_id, run_id))


async def get_run(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    include_definition: Annotated[bool, Field(description="add the graph as it ran")] = False,
) -> RunRecordView:
    """A run's full record: credits, cost units, usage, starter, timing, error."""
    run = await onepin(ctx).get_run(workflow_id, run_id)
    return RunRecordView.of(run, include_definition=include_definition)


# wait_for_run's bounds. Many MCP clients give up on a call after 60 s, so the default returns
# (with done=false) before that; a caller that knows its client waits longer may ask for up to
# ten minutes, beyond which one call holding a connection open does more harm than good.
DEFAULT_WAIT_S = 50.0
MAX_WAIT_S = 600.0


class ProgressNotifier:
    """Turns the run states a wait sees into MCP progress notifications.

    Progress is the finished node count (finished steps when the node total is unknown), with
    the total when known, and a short message such as "running: 5/6 nodes, 7 steps". MCP wants
    each notification's progress to be strictly greater than the last one's, but a run can
    change without its count moving (pending to running, a retry adding steps, a pause). Such a
    change is still worth a notification, so it is sent with the progress moved halfway to the
    next whole count (5, 5.5, 5.75, ...): strictly increasing, never reaching a count the run has
    not reached, never past the total. When there is no room left (the count already equals the
    total), that notification is skipped; the call's result follows with the final state anyway.
    """

    def __init__(self, report: Callable[[float, float | None, str], Awaitable[None]]) -> None:
        self._report = report
        self._last: float | None = None

    async def __call__(self, state: RunState) -> None:
        count, total, message = progress_of(state)
        value = float(count)
        if self._last is not None and value <= self._last:
            value = self._last + (math.floor(self._last) + 1 - self._last) / 2
            if value <= self._last or (total is not None and value > total):
                return
        self._last = value
        await self._report(value, None if total is None else float(total), message)


async def wait_for_run(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    timeout_s: Annotated[
        float,
        Field(
            ge=1,
            le=MAX_WAIT_S,
            description="clients often cap a call at 60 s",
        ),
    ] = DEFAULT_WAIT_S,
) -> RunWaitView:
    """Wait until a run ends or pauses, with progress. done=false: paused (it says why) or
    timed out (call again)."""
    notifier = ProgressNotifier(ctx.report_progress)
    state, _, waited_s = await wait_until_settled(
        onepin(ctx),
        workflow_id,
        run_id,
        clock=ctx.request_context.lifespan_context.clock,
        timeout_s=timeout_s,
        on_progress=notifier,
    )
    return RunWaitView.after_wait(state, waited_s)


async def get_run_steps(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    failed_only: Annotated[bool, Field(description="only failed steps")] = False,
    node_id: NodeFilter = None,
    node_type: Annotated[str | None, Field(description="e.g. validator_pronunciation")] = None,
    tail: Annotated[int | None, Field(ge=1, le=200, description="only the last N")] = None,
    include_result: Annotated[bool, Field(description="add each step's output")] = False,
) -> StepsView:
    """A run's step log (retries included): errors, every rejected take (line_index from 0);
    failed_only for what failed."""
    # Results are always read: a validator's lists every take it rejected and the words at
    # fault, which is what fixing a failed run needs; they are shown whole only when asked.
    steps = await onepin(ctx).get_run_steps(
        workflow_id, run_id, include_result=True, node_type=node_type, node_id=node_id
    )
    return StepsView.of(steps, failed_only=failed_only, tail=tail, include_result=include_result)


async def get_run_results(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    view: Annotated[
        Literal["overview", "analysis", "outputs"],
        Field(
            description="overview: metrics, scores, audio; analysis: per locale, credits per "
            "node; outputs: lines, clip ids"
        ),
    ] = "overview",
) -> RunResultsView:
    """What a run produced and how good it is. Per-line detail: get_run_data."""
    client = onepin(ctx)
    if view == "analysis":
        return RunResultsView.of_analysis(
            workflow_id, await client.get_run_analysis(workflow_id, run_id)
        )
    if view == "outputs":
        return RunResultsView.of_outputs(
            workflow_id, await client.get_run_outputs(workflow_id, run_id)
        )
    return RunResultsView.of_overview(
        workflow_id, await client.get_run_overview(workflow_id, run_id)
    )


async def get_run_data(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    search: Annotated[
        str | None, Field(description="text in the line's script", max_length=200)
    ] = None,
    language: Annotated[
        str | None,
        Field(description="only cards of this locale, e.g. ko-kr", max_length=35),
    ] = None,
    include_dropped: Annotated[bool, Field(description="add takes a validator rejected")] = False,
    offset: Offset = 0,
    limit: Limit = 20,
) -> RunDataView:
    """A run's script lines (line_index from 0) with audio per locale: status, duration,
    voice, scores, flagged words, audio_id, playback URL."""
    data = await onepin(ctx).get_run_data(
        workflow_id,
        run_id,
        search=search,
        language=language,
        include_dropped=include_dropped or None,
        offset=offset,
        limit=limit,
    )
    return RunDataView.of(data)


def _check_range(from_time: datetime | None, to_time: datetime | None) -> None:
    """Refuse a reversed range before any request, in the words both range tools share."""
    if from_time is not None and to_time is not None and from_time > to_time:
        raise ToolError(
            f"from_time ({from_time.isoformat()}) is after to_time ({to_time.isoformat()}): "
            "swap them, or leave one out."
        )


async def get_runs_summary(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    from_time: FromTime = None,
    to_time: ToTime = None,
) -> RunsSummaryView:
    """How a workflow's runs went: counts per status, pass rate, duration, audio, credits;
    all or a time range."""
    _check_range(from_time, to_time)
    client = onepin(ctx)
    summary = await client.get_runs_summary(workflow_id, from_=from_time, to=to_time)
    # The summary has no credits: they are summed over the runs of the range, read from the list
    # (not at all when the summary found none).
    charged = RunsInRange([], complete=True, read=0, oldest_read=None)
    if summary.total_runs:
        charged = await runs_in_range(client, workflow_id, from_time=from_time, to_time=to_time)
    return RunsSummaryView.of(workflow_id, summary, from_time, to_time, charged)


async def get_download_url(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    run_id: RunId,
    node_id: OutputNodeChoice = None,
    audio_id: ClipChoice = None,
) -> DownloadView:
    """A presigned URL (15 min) to a completed run's audio ZIP, or one clip."""
    if node_id is not None and audio_id is not None:
        raise ToolError(
            "Give node_id or audio_id, not both: node_id gets one output node's ZIP, audio_id "
            "one clip. Call get_download_url again with one of them, or neither for the whole run."
        )
    client = onepin(ctx)
    if audio_id is not None:
        return DownloadView.of(await client.get_audio_url(workflow_id, run_id, audio_id), "clip")
    if node_id is not None:
        link = await client.get_node_download_url(workflow_id, run_id, node_id)
        return DownloadView.of(link, "node")
    return DownloadView.of(await client.get_run_download_url(workflow_id, run_id), "run")


async def get_audio_clip(
    ctx: Context[AppState, Any], workflow_id: WorkflowId, run_id: RunId, audio_id: AudioId
) -> Annotated[CallToolResult, AudioClipView]:
    """One clip (a line in one locale) as audio, with text, transcript and scores; a link if
    too large."""
    state = ctx.request_context.lifespan_context
    client = onepin(ctx)
    max_bytes = state.settings.max_clip_bytes
    try:
        clip = await fetch_clip(client, workflow_id, run_id, audio_id, max_bytes=max_bytes)
        found = await find_card(client, workflow_id, run_id, audio_id)
    except ClipUnavailable as exc:
        raise ToolError(exc.text) from None
    view = AudioClipView.of(
        workflow_id,
        run_id,
        audio_id,
        link=clip.link,
        file=clip.file,
        found=found,
        lines_searched=MAX_LOOKUP_LINES,
        max_bytes=max_bytes,
    )
    structured = view.model_dump(mode="json")
    # The same compact JSON as every other tool's text, for clients that read text only; the
    # audio block follows it, and only when the clip fits under the cap.
    blocks: list[ContentBlock] = [TextContent(type="text", text=view.model_dump_json())]
    if clip.file.content is not None:
        blocks.append(
            AudioContent(
                type="audio",
                data=base64.b64encode(clip.file.content).decode("ascii"),
                mime_type=view.mime_type,
            )
        )
    return CallToolResult(content=blocks, structured_content=structured)


async def preview_run(
    ctx: Context[AppState, Any],
    workflow_id: WorkflowId,
    script_text: Annotated[
        str | None,
        Field(description="instead of the saved script", min_length=1),
    ] = None,
    source_language: Annotated[
        str | None, Field(description="of script_text, e.g. en-us", max_length=35)
    ] = None,
) -> PreviewView:
    """A run's cost (min, expected, max credits) and whether the balance allows it. Free;
    call before start_run."""
    estimate = await onepin(ctx).preview_run(
        workflow_id, script_text=script_text, source_language=source_language
    )
    return PreviewView.of(workflow_id, estimate)


TOOLS: tuple[ToolSpec, ...] = (
    read_tool(list_runs, toolset="runs", title="List runs", scopes=READ),
    read_tool(get_run_status, toolset="runs", title="Run status", scopes=READ),
    read_tool(get_run, toolset="runs", title="Get run", scopes=READ),
    read_tool(wait_for_run, toolset="runs", title="Wait for run", scopes=READ),
    read_tool(get_run_steps, toolset="runs", title="Run steps", scopes=READ),
    read_tool(get_run_results, toolset="runs", title="Run results", scopes=READ),
    read_tool(get_run_data, toolset="runs", title="Run data", scopes=READ),
    read_tool(get_runs_summary, toolset="runs", title="Runs summary", scopes=READ),
    read_tool(get_download_url, toolset="runs", title="Download URL", scopes=READ),
    read_tool(get_audio_clip, toolset="runs", title="Audio clip", scopes=READ),
    read_tool(preview_run, toolset="runs", title="Preview run cost", scopes=READ),
)
