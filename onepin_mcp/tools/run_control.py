"""Toolset `run_control`: start, cancel, pause and resume runs.

These change OnePin state (a start is billable), so they are hidden in read-only mode. A start is
sent at most once: the client never retries it, and when it fails ambiguously (no answer after
sending) or with 409, this module looks up the workflow's active run so the agent learns which
run exists instead of starting another. Conflicts of cancel, pause and resume are explained with
the run's current state, read right after the refusal.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from onepin_mcp.client import OnePinClient
from onepin_mcp.errors import OnePinAPIError, OnePinError, OnePinTimeoutError, OnePinTransportError
from onepin_mcp.models import ACTIVE_STATUSES, RUN_STATUSES, RunListItem, RunState
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, write_tool
from onepin_mcp.views import MAX_NAME_CHARS, clean_text
from onepin_mcp.views.run_control import RunView, is_pausing, next_step

MAX_SCRIPT_CHARS: Final = 100_000
# BCP-47-ish: a 2-3 letter language, then subtags (region, script, variant); `_` is tolerated
# because OnePin normalizes it, and the API caps the field at 35 characters.
LANGUAGE_PATTERN: Final = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"
# In the API's order, for the status filter of list_runs.
ACTIVE_FILTER: Final = tuple(status for status in RUN_STATUSES if status in ACTIVE_STATUSES)

WorkflowId = Annotated[str, Field(description="Workflow id (UUID) from list_workflows.")]
RunId = Annotated[str, Field(description="Run id (UUID) from start_run or list_runs.")]


async def start_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    script_text: Annotated[
        str | None,
        Field(
            description="Replaces the saved script for this run only, one line per utterance "
            "(needs exactly one script node). Omit to run the saved script.",
            min_length=1,
            max_length=MAX_SCRIPT_CHARS,
        ),
    ] = None,
    source_language: Annotated[
        str | None,
        Field(
            description="Language of script_text, e.g. en-us. Omit to auto-detect.",
            pattern=LANGUAGE_PATTERN,
            max_length=35,
        ),
    ] = None,
) -> RunView:
    """Start a run of a workflow. Billable (preview_run shows the cost) and sent at most once,
    never retried; one run per workflow may be active. Follow the new run with wait_for_run."""
    client = onepin(ctx)
    try:
        run = await client.start_run(
            workflow_id, script_text=script_text, source_language=source_language
        )
    except OnePinAPIError as error:
        if error.status == 409:
            raise ToolError(await _start_conflict(client, workflow_id, error)) from error
        raise
    except OnePinTransportError as error:
        if error.sent:
            raise ToolError(await _start_unanswered(client, workflow_id, error)) from error
        raise
    return RunView.of(run)


async def cancel_run(
    workflow_id: WorkflowId, run_id: RunId, ctx: Context[AppState, Any]
) -> RunView:
    """Cancel a pending, running or paused run, for good (it cannot be resumed). A finished run
    is returned unchanged, with changed=false."""
    client = onepin(ctx)
    # Read first: an already finished run is the answer (nothing to do), and only the state
    # before the call can tell "cancelled now" from "was already cancelled".
    state = await client.get_run_status(workflow_id, run_id)
    if state.is_terminal:
        return RunView.of(state, changed=False)
    try:
        run = await client.cancel_run(workflow_id, run_id)
    except OnePinAPIError as error:
        if error.status == 409:
            message = await _state_conflict(client, "cancel", error, workflow_id, run_id)
            raise ToolError(message) from error
        raise
    # A run that finished between the read and the cancel comes back unchanged.
    return RunView.of(run, changed=run.status == "cancelled")


async def pause_run(workflow_id: WorkflowId, run_id: RunId, ctx: Context[AppState, Any]) -> RunView:
    """Pause a pending or running run: the steps under way finish first, then it stays paused
    until resume_run. A run already paused or pausing is returned unchanged."""
    client = onepin(ctx)
    state = await client.get_run_status(workflow_id, run_id)
    if state.status == "paused" or is_pausing(state):
        return RunView.of(state, changed=False)
    if state.is_terminal:
        raise ToolError(
            f"Run {run_id} is already {state.status}; only pending or running runs can be "
            f"paused, so no pause was sent. {next_step(state)}"
        )
    try:
        run = await client.pause_run(workflow_id, run_id)
    except OnePinAPIError as error:
        if error.status == 409:
            message = await _state_conflict(client, "pause", error, workflow_id, run_id)
            raise ToolError(message) from error
        raise
    return RunView.of(run)


async def resume_run(
    workflow_id: WorkflowId, run_id: RunId, ctx: Context[AppState, Any]
) -> RunView:
    """Resume a paused run from its last finished step (nothing is redone). Only paused runs
    can be resumed; follow it with wait_for_run."""
    client = onepin(ctx)
    try:
        run = await client.resume_run(workflow_id, run_id)
    except OnePinAPIError as error:
        if error.status == 409:
            message = await _state_conflict(client, "resume", error, workflow_id, run_id)
            raise ToolError(message) from error
        raise
    return RunView.of(run)


# --- explaining refusals ----------------------------------------------------------------------


_DONE: Final = {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}


def _onepin_said(error: OnePinAPIError) -> str:
    """OnePin's own answer, quoted for the agent: status, code, message and request id."""
    message = clean_text(error.message, MAX_NAME_CHARS).rstrip(". ")
    request = f"request id {error.request_id}" if error.request_id else "no request id"
    return f"OnePin answered {error.status} {error.code}: {message} ({request})."


async def _active_run(client: OnePinClient, workflow_id: str) -> RunListItem | None:
    page = await client.list_runs(workflow_id, status=ACTIVE_FILTER, limit=1)
    return page.items[0] if page.items else None


def _describe_active(run: RunListItem) -> tuple[str, str]:
    """The active run in words, and a sentence on the tools that deal with it."""
    number = f"run #{run.run_number}, " if run.run_number is not None else ""
    created = run.created_at.isoformat() if run.created_at else "unknown time"
    what = f"{run.id} ({number}{run.status}, created {created})"
    if run.status == "paused":
        how = f"To continue it, call resume_run with this workflow_id and run_id={run.id}"
    else:
        how = f"To wait for it, call wait_for_run with this workflow_id and run_id={run.id}"
    return what, f"{how}; to end it, cancel_run with the same ids."


async def _start_conflict(client: OnePinClient, workflow_id: str, error: OnePinAPIError) -> str:
    said = _onepin_said(error)
    try:
        active = await _active_run(client, workflow_id)
    except OnePinError:
        return (
            f"{said} Looking up the active run failed too: call list_runs with "
            f"workflow_id={workflow_id} and status=pending,running,paused to find it."
        )
    if active is None:
        return (
            f"{said} No run of this workflow is active, so the workspace's limit of concurrent "
            "runs is reached. Wait for a run of another workflow to finish (list_workflows "
            "with status=running finds them) or cancel one, then call start_run again."
        )
    what, how = _describe_active(active)
    return (
        f"{said} The active run is {what}; a workflow has one active run at a time. {how} "
        "Then call start_run again if a new run is still wanted."
    )


async def _start_unanswered(
    client: OnePinClient, workflow_id: str, error: OnePinTransportError
) -> str:
    lost = (
        "OnePin did not answer start_run in time"
        if isinstance(error, OnePinTimeoutError)
        else "The connection to OnePin was lost before it answered start_run"
    )
    head = f"{lost} ({error.method} {error.path}), so the request may have been processed."
    try:
        active = await _active_run(client, workflow_id)
    except OnePinError:
        return (
            f"{head} Checking for the run failed too: call list_runs with "
            f"workflow_id={workflow_id} before starting again, so as not to start it twice."
        )
    if active is None:
        return (
            f"{head} Workflow {workflow_id} has no active run now. Call list_runs with "
            f"workflow_id={workflow_id}: if no new run is listed, start_run again."
        )
    what, how = _describe_active(active)
    return (
        f"{head} The workflow now has an active run, {what}: most likely the one this call "
        f"started, so do not call start_run again. {how}"
    )


async def _state_conflict(
    client: OnePinClient, action: str, error: OnePinAPIError, workflow_id: str, run_id: str
) -> str:
    said = _onepin_said(error)
    ids = f"workflow_id={workflow_id}, run_id={run_id}"
    try:
        state: RunState | None = await client.get_run_status(workflow_id, run_id)
    except OnePinError:
        state = None
    if state is None:
        return f"{said} Call get_run_status ({ids}) and act on the run's current state."
    status = state.status
    if state.is_terminal:
        return (
            f"{said} Run {run_id} is {status}; a finished run cannot be {_DONE[action]}. "
            f"{next_step(state)}"
        )
    if action == "resume" and status == "paused":
        return (
            f"{said} Run {run_id} stays paused: another run of this workflow is active, or the "
            "workspace's limit of concurrent runs is reached. list_runs with "
            f"workflow_id={workflow_id} and status=pending,running shows what is running; wait "
            "for it or cancel it, then resume again."
        )
    if action == "resume":
        return (
            f"{said} Run {run_id} is {status}, not paused, so there is nothing to resume (it may "
            f"have been resumed already). Call wait_for_run ({ids}) to follow it."
        )
    return (
        f"{said} Run {run_id} is {status} and changed state during the call. Call {action}_run "
        f"again ({ids}); it is safe to repeat."
    )


TOOLS: tuple[ToolSpec, ...] = (
    write_tool(
        start_run, toolset="run_control", title="Start run", destructive=False, idempotent=False
    ),
    write_tool(
        cancel_run, toolset="run_control", title="Cancel run", destructive=True, idempotent=True
    ),
    write_tool(
        pause_run, toolset="run_control", title="Pause run", destructive=False, idempotent=True
    ),
    write_tool(
        resume_run, toolset="run_control", title="Resume run", destructive=False, idempotent=True
    ),
)
