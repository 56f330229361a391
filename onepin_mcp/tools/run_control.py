"""Toolset `run_control`: start, cancel, pause and resume runs.

These change OnePin state (a start is billable), so they are hidden in read-only mode. Every
call runs in the write guard (`onepin_mcp.writes`): recorded, and, as `WritePolicy.confirm`
says, confirmed by the user first (each tool's question is worded below).

A start is checked against the budget and sent at most once (`onepin_mcp.writes.start`): a run
that may cost more than the cap or the balance is refused before anything billable is sent,
and a start whose answer was lost is never sent again: the run it created is looked for, and
returned with `recovered: true`. A 409 names the active run and what to do about it.

Conflicts of cancel, pause and resume are explained with the run's current state, read right
after the refusal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinError
from onepin_mcp.api.models import ACTIVE_STATUSES, RUN_STATUSES, Run, RunListItem, RunState
from onepin_mcp.failures import onepin_said
from onepin_mcp.params import ActiveRunId, ScriptLanguage, ScriptText, WorkflowId
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, write_tool
from onepin_mcp.views.next_steps import (
    Action,
    after_pause_wait,
    is_pausing,
    no_active_run,
    pause_refused,
    several_active,
    start_conflict,
    state_conflict,
)
from onepin_mcp.views.run_control import RunControlView, StartedRunView
from onepin_mcp.watch import wait_until_settled
from onepin_mcp.writes import (
    Outcome,
    WriteRefused,
    asks,
    check_budget,
    confirmed_write,
    start_once,
    workflow_label,
    workflow_name,
)

logger = logging.getLogger(__name__)

# In the API's order, for the status filter of list_runs.
ACTIVE_FILTER: Final = tuple(status for status in RUN_STATUSES if status in ACTIVE_STATUSES)
# start_run's optional wait stays well under the 60 s many clients allow a call, leaving room
# for the preview and the start themselves.
MAX_START_WAIT_S: Final = 50

# Active runs read when acting on a workflow's active run: OnePin allows one, so more than one
# listed is a surprise worth refusing over rather than a choice to make for the agent.
ACTIVE_SCAN: Final = 5

# Starting, cancelling, pausing and resuming all need the run scope.
RUN: tuple[str, ...] = ("workflows:run",)


# --- which run: the one named, or the workflow's active run ------------------------------------


@dataclass(frozen=True)
class Target:
    """The run a cancel, pause or resume acts on: the one named by run_id, or else the
    workflow's active run. A resolver finds it once per call and hands the same value to the
    question and to the body, so the run the user is asked about is the run acted on. When
    there is none, or finding it failed, the body says so inside its audit record."""

    run_id: str | None
    refusal: str | None = None
    error: OnePinError | None = None

    def require(self) -> str:
        """The run's id, or the reason there is none, raised."""
        if self.error is not None:
            raise self.error
        if self.run_id is None:
            raise WriteRefused(self.refusal or "No run to act on.")
        return self.run_id


async def _find_target(
    client: OnePinClient, action: Action, workflow_id: str, run_id: str | None
) -> Target:
    """The named run, or the workflow's active run (for a resume, its paused run), found with
    one list_runs request; more than one candidate is refused rather than guessed between."""
    if run_id is not None:
        return Target(run_id)
    try:
        active = await _active_runs(client, workflow_id, limit=ACTIVE_SCAN)
    except OnePinError as error:
        return Target(None, error=error)
    candidates = [run for run in active if action != "resume" or run.status == "paused"]
    if len(candidates) == 1:
        return Target(candidates[0].id)
    if candidates:
        return Target(None, refusal=several_active(action, workflow_id, candidates))
    # Nothing to act on: name what there is (the active run that isn't paused, or the latest
    # run), so that the agent's next call needn't be a lookup.
    latest = active[0] if active else await _latest_run(client, workflow_id)
    return Target(None, refusal=no_active_run(action, workflow_id, latest))


async def _latest_run(client: OnePinClient, workflow_id: str) -> RunListItem | None:
    try:
        page = await client.list_runs(workflow_id, sort="created_at", order="desc", limit=1)
    except OnePinError:
        return None  # only a detail of the refusal; the refusal stands without it
    return page.items[0] if page.items else None


async def _cancel_target(
    workflow_id: str, run_id: str | None, ctx: Context[AppState, Any]
) -> Target:
    return await _find_target(onepin(ctx), "cancel", workflow_id, run_id)


async def _pause_target(
    workflow_id: str, run_id: str | None, ctx: Context[AppState, Any]
) -> Target:
    return await _find_target(onepin(ctx), "pause", workflow_id, run_id)


async def _resume_target(
    workflow_id: str, run_id: str | None, ctx: Context[AppState, Any]
) -> Target:
    return await _find_target(onepin(ctx), "resume", workflow_id, run_id)


# --- asking first (onepin_mcp.writes): each question, worded with names ---------------------------


# An unknown workflow is not asked about: the body's preview explains the 404.
_ASK_START = asks("Start a run of workflow {}? Runs are billable.", workflow_label)


async def _label_unless(
    ctx: Context[AppState, Any], workflow_id: str, target: Target, moot: Callable[[RunState], bool]
) -> str | None:
    """The run in words for a question, or None when there is nothing to ask about: no run to
    act on or an unknown one (the body says why), or a run nothing will be sent for (`moot`)."""
    if target.run_id is None:
        return None
    found = await _run_label(onepin(ctx), workflow_id, target.run_id)
    if found is None:
        return None
    run, label = found
    return None if run is not None and moot(run) else label


async def _cancellable(
    workflow_id: str,
    target: Annotated[Target, Resolve(_cancel_target)],
    ctx: Context[AppState, Any],
) -> str | None:
    # A finished run is returned unchanged: nothing to ask about.
    return await _label_unless(ctx, workflow_id, target, lambda run: run.is_terminal)


async def _pausable(
    workflow_id: str,
    target: Annotated[Target, Resolve(_pause_target)],
    ctx: Context[AppState, Any],
) -> str | None:
    # Nothing is sent for a run already paused or pausing, or refused as finished.
    return await _label_unless(
        ctx,
        workflow_id,
        target,
        lambda run: run.is_terminal or run.status == "paused" or is_pausing(run),
    )


async def _resumable(
    workflow_id: str,
    target: Annotated[Target, Resolve(_resume_target)],
    ctx: Context[AppState, Any],
) -> str | None:
    # OnePin refuses to resume anything but a paused run; the body explains why.
    return await _label_unless(ctx, workflow_id, target, lambda run: run.status != "paused")


_ASK_CANCEL = asks("Cancel {}? It cannot be resumed.", _cancellable)
_ASK_PAUSE = asks("Pause {}? Steps under way finish first; it can be resumed.", _pausable)
_ASK_RESUME = asks("Resume {}? Its remaining steps are billable.", _resumable)


async def _run_label(
    client: OnePinClient, workflow_id: str, run_id: str
) -> tuple[RunState | None, str] | None:
    """None when the run doesn't exist; else its state (None when it can't be read, and the
    question is then asked with ids) and a label like "run #12 of 'Product tour'". Only stable
    facts go into the label: on 2026-07-28 the question is rendered again on the client's
    retry and must read the same to count as answered."""
    run: RunState | None
    try:
        run = await client.get_run_status(workflow_id, run_id)
    except OnePinAPIError as error:
        if error.status == 404:
            return None
        run = None
    except OnePinError:
        run = None
    what = f"run #{run.run_number}" if run and run.run_number is not None else f"run {run_id}"
    name = await workflow_name(client, workflow_id)
    return run, f"{what} of workflow {name or workflow_id}"


# --- the write block and the request of a cancel, pause or resume ------------------------------


@asynccontextmanager
async def _acting_on(
    ctx: Context[AppState, Any],
    confirmation: Outcome,
    action: Action,
    workflow_id: str,
    target: Target,
) -> AsyncIterator[str]:
    """The write block of a cancel, pause or resume: recorded, confirmed, and given the run's
    id; with no run to act on, refused inside the record, so the refusal is audited too."""
    async with confirmed_write(
        ctx,
        confirmation,
        action=f"{action} run {target.run_id}",
        workflow_id=workflow_id,
        run_id=target.run_id,
    ):
        yield target.require()


async def _sent(client: OnePinClient, action: Action, workflow_id: str, run_id: str) -> Run:
    """The cancel, pause or resume request; OnePin's 409 explained by the run's state."""
    request = {"cancel": client.cancel_run, "pause": client.pause_run, "resume": client.resume_run}
    try:
        return await request[action](workflow_id, run_id)
    except OnePinAPIError as error:
        if error.status == 409:
            message = await _state_conflict(client, action, error, workflow_id, run_id)
            raise ToolError(message) from error
        raise


# --- the tools ---------------------------------------------------------------------------------


async def start_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_START)],
    script_text: Annotated[
        ScriptText,
        Field(description="this run's script, a line per utterance"),
    ] = None,
    source_language: Annotated[
        ScriptLanguage, Field(description="of script_text, e.g. en-us; omit to detect")
    ] = None,
    wait_s: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_START_WAIT_S,
            description="wait this long for the end; done says if it came",
        ),
    ] = 0,
    max_credits: Annotated[
        int | None,
        Field(ge=1, description="refuse if it may cost more"),
    ] = None,
) -> StartedRunView:
    """Start a run. Billable: refused over the budget cap or balance; sent once, never
    retried; one active run per workflow. Then wait_for_run."""
    state = ctx.request_context.lifespan_context
    client = onepin(ctx)
    async with confirmed_write(
        ctx, confirmation, action=f"start a run of workflow {workflow_id}", workflow_id=workflow_id
    ) as record:
        estimate = await check_budget(
            client, state.policy, workflow_id, script_text, source_language, max_credits
        )
        try:
            run, recovered = await start_once(
                client, state.clock, record, workflow_id, script_text, source_language
            )
        except OnePinAPIError as error:
            if error.status == 409:
                raise ToolError(await _start_conflict(client, workflow_id, error)) from error
            raise
    # The write is recorded by now: the wait below only reads, and a client that gives up on
    # it must not turn a run that was started into an audited "cancelled".
    note = (
        "Recovered: the start request's answer was lost; this is the run it created, so do not "
        "call start_run again."
        if recovered
        else ""
    )
    if wait_s <= 0:
        return StartedRunView.started(run, recovered=recovered, estimate=estimate, note=note)
    try:
        run, done, waited = await wait_until_settled(
            client, workflow_id, run.id, clock=state.clock, timeout_s=wait_s
        )
    except OnePinError as error:
        # The run exists whatever the wait met: return it rather than an error that would hide
        # its id and invite a second start.
        logger.info("start_run's wait for %s failed: %s", run.id, type(error).__name__)
        note = f"{note} Started, but following it failed ({type(error).__name__})."
        return StartedRunView.started(
            run, recovered=recovered, estimate=estimate, note=note.strip()
        )
    if not done and run.status != "paused":
        note = f"{note} Not finished after {waited:.0f} s of waiting."
    return StartedRunView.started(
        run, recovered=recovered, done=done, estimate=estimate, note=note.strip()
    )


async def cancel_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    target: Annotated[Target, Resolve(_cancel_target)],
    confirmation: Annotated[Outcome, Resolve(_ASK_CANCEL)],
    run_id: ActiveRunId = None,
) -> RunControlView:
    """Cancel a run for good (no resume). A finished run comes back with changed=false."""
    client = onepin(ctx)
    async with _acting_on(ctx, confirmation, "cancel", workflow_id, target) as run_id:
        # Read first: an already finished run is the answer (nothing to do), and only the state
        # before the call can tell "cancelled now" from "was already cancelled".
        state = await client.get_run_status(workflow_id, run_id)
        if state.is_terminal:
            return RunControlView.of(state, changed=False)
        run = await _sent(client, "cancel", workflow_id, run_id)
        # A run that finished between the read and the cancel comes back unchanged.
        return RunControlView.of(run, changed=run.status == "cancelled")


async def pause_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    target: Annotated[Target, Resolve(_pause_target)],
    confirmation: Annotated[Outcome, Resolve(_ASK_PAUSE)],
    run_id: ActiveRunId = None,
    wait_s: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_START_WAIT_S,
            description="wait this long until paused; next says if it was",
        ),
    ] = 0,
) -> RunControlView:
    """Pause a run: steps under way finish, then it waits for resume_run. Already paused or
    pausing: unchanged."""
    client = onepin(ctx)
    async with _acting_on(ctx, confirmation, "pause", workflow_id, target) as run_id:
        run = await client.get_run_status(workflow_id, run_id)
        changed = not (run.status == "paused" or is_pausing(run))
        if run.is_terminal:
            raise WriteRefused(pause_refused(run_id, run))
        if changed:
            run = await _sent(client, "pause", workflow_id, run_id)
    # The write is recorded by now: the wait below only reads, as start_run's does.
    if wait_s <= 0 or not is_pausing(run):
        return RunControlView.of(run, changed=changed)
    try:
        run, _, waited = await wait_until_settled(
            client,
            workflow_id,
            run_id,
            clock=ctx.request_context.lifespan_context.clock,
            timeout_s=wait_s,
        )
    except OnePinError as error:
        # The pause stands whatever the wait met: say so rather than fail the call.
        logger.info("pause_run's wait for %s failed: %s", run_id, type(error).__name__)
        note = f"Pause requested, but following it failed ({type(error).__name__})."
        return RunControlView.of(run, changed=changed, note=note)
    return RunControlView.of(run, changed=changed, note=after_pause_wait(run, waited))


async def resume_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    target: Annotated[Target, Resolve(_resume_target)],
    confirmation: Annotated[Outcome, Resolve(_ASK_RESUME)],
    run_id: ActiveRunId = None,
) -> RunControlView:
    """Resume a paused run from its last finished step. Then wait_for_run."""
    client = onepin(ctx)
    async with _acting_on(ctx, confirmation, "resume", workflow_id, target) as run_id:
        run = await _sent(client, "resume", workflow_id, run_id)
        return RunControlView.of(run)


# --- explaining refusals ----------------------------------------------------------------------


async def _active_runs(client: OnePinClient, workflow_id: str, *, limit: int) -> list[RunListItem]:
    """The workflow's active runs (pending, running or paused), newest first: one request."""
    page = await client.list_runs(
        workflow_id, status=ACTIVE_FILTER, sort="created_at", order="desc", limit=limit
    )
    return list(page.items)


async def _start_conflict(client: OnePinClient, workflow_id: str, error: OnePinAPIError) -> str:
    said = onepin_said(error)
    try:
        active = await _active_runs(client, workflow_id, limit=1)
    except OnePinError:
        return start_conflict(said, workflow_id, None, found=False)
    return start_conflict(said, workflow_id, active[0] if active else None, found=True)


async def _state_conflict(
    client: OnePinClient, action: Action, error: OnePinAPIError, workflow_id: str, run_id: str
) -> str:
    """OnePin's 409, explained by the run's state read right after it."""
    state: RunState | None
    try:
        state = await client.get_run_status(workflow_id, run_id)
    except OnePinError:
        state = None
    return state_conflict(onepin_said(error), action, workflow_id, run_id, state)


TOOLS: tuple[ToolSpec, ...] = (
    write_tool(
        start_run,
        toolset="run_control",
        title="Start run",
        scopes=RUN,
        destructive=False,
        idempotent=False,
        confirm="writes",
    ),
    # Cancelling loses the run for good: asked about under the default policy.
    write_tool(
        cancel_run,
        toolset="run_control",
        title="Cancel run",
        scopes=RUN,
        destructive=True,
        idempotent=True,
        confirm="destructive",
    ),
    write_tool(
        pause_run,
        toolset="run_control",
        title="Pause run",
        scopes=RUN,
        destructive=False,
        idempotent=True,
        confirm="writes",
    ),
    write_tool(
        resume_run,
        toolset="run_control",
        title="Resume run",
        scopes=RUN,
        destructive=False,
        idempotent=True,
        confirm="writes",
    ),
)
