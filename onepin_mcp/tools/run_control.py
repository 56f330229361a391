"""Toolset `run_control`: start, cancel, pause and resume runs.

These change OnePin state (a start is billable), so they are hidden in read-only mode. Every
call is recorded by `onepin_mcp.audit` and, as `WritePolicy.confirm` says, confirmed by the user
first (`onepin_mcp.confirm`; each tool's resolver below words the question).

A start is guarded and sent at most once:
- the budget guard previews it first (`preview_run`, free) and refuses, sending nothing
  billable, a run whose maximum estimate exceeds `WritePolicy.max_run_credits`, or one the
  balance can't cover (`can_run` false). The balance check applies with no cap too: OnePin would
  refuse with 402 anyway, and the preview's refusal names the balance and the deficit;
- the client never retries it. Just before sending it, the workflow's newest runs are read
  (one cheap request): that picture is what a lost answer is judged against. When the start
  fails ambiguously (sent, then no answer: a timeout, a dropped connection, a 5xx, a 2xx that
  could not be read), the run it created is the one that is new since that picture: not among
  the runs seen, and numbered above the highest run number seen. No clock is compared, so a
  host clock that disagrees with OnePin's changes nothing. Exactly one new run: it is returned
  with `recovered: true`. Several: they are listed and none is claimed. None yet: the list is
  read again a few times over `RECOVERY_LOOKS_S` (OnePin may still be processing it), on the
  server's clock, and if none appears the outcome is reported as unknown, with when to check
  list_runs again and how to tell the run. Another start is never called safe unless OnePin
  refused this one in so many words (a 4xx); an active run from before that is still active
  is named, as the reason OnePin most likely refused it;
- a 409 names the active run and what to do about it.

Conflicts of cancel, pause and resume are explained with the run's current state, read right
after the refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinError,
    OnePinResponseError,
    OnePinTimeoutError,
    OnePinTransportError,
)
from onepin_mcp.api.models import ACTIVE_STATUSES, RUN_STATUSES, Estimate, RunListItem, RunState
from onepin_mcp.audit import AuditEntry, WriteRefused, audited
from onepin_mcp.confirm import NOT_ASKED, Confirmation, Outcome, ask, policy_asks, quoted, require
from onepin_mcp.params import RunId, WorkflowId
from onepin_mcp.state import AppState, Clock, WritePolicy
from onepin_mcp.tools import ToolSpec, onepin, write_tool
from onepin_mcp.views import MAX_NAME_CHARS, clean_text
from onepin_mcp.views.run_control import RunControlView, is_pausing, next_step
from onepin_mcp.watch import wait_until_settled

logger = logging.getLogger(__name__)

MAX_SCRIPT_CHARS: Final = 100_000
# BCP-47-ish: a 2-3 letter language, then subtags (region, script, variant); `_` is tolerated
# because OnePin normalizes it, and the API caps the field at 35 characters.
LANGUAGE_PATTERN: Final = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"
# In the API's order, for the status filter of list_runs.
ACTIVE_FILTER: Final = tuple(status for status in RUN_STATUSES if status in ACTIVE_STATUSES)
# start_run's optional wait stays well under the 60 s many clients allow a call, leaving room
# for the preview and the start themselves.
MAX_START_WAIT_S: Final = 50
# Newest runs read just before a start is sent. One active run per workflow means the run with
# the highest number is the newest; a few more rows cover runs that share a created_at.
BEFORE_SCAN: Final = 5
# Newest runs read when looking for the run of a start whose answer was lost: room for a few
# starts by other callers in the meantime.
RECOVERY_SCAN: Final = 10
# When a lost start's run isn't listed yet, the pauses before each further look (10 s in all):
# OnePin may answer late, or process the request after the client gave up on it. Bounded so
# that start_run still answers well within the time a client allows a call.
RECOVERY_LOOKS_S: Final = (1.0, 2.0, 3.0, 4.0)
# When none has appeared by then, how long the agent is told to wait before checking again.
CHECK_AGAIN_S: Final = 60

# Starting, cancelling, pausing and resuming all need the run scope.
RUN: tuple[str, ...] = ("workflows:run",)


# --- asking first (onepin_mcp.confirm): one resolver per tool, worded with names -----------------


async def _confirm_start(
    workflow_id: str, ctx: Context[AppState, Any]
) -> Confirmation | Elicit[Confirmation]:
    if not policy_asks(ctx, "start_run"):
        return NOT_ASKED  # no read needed just to word an unasked question
    name = await _workflow_name(onepin(ctx), workflow_id)
    if name is None:
        return NOT_ASKED  # unknown workflow: the body's preview explains the 404
    return ask(ctx, "start_run", f"Start a run of workflow {name}? Runs are billable.")


async def _confirm_cancel(
    workflow_id: str, run_id: str, ctx: Context[AppState, Any]
) -> Confirmation | Elicit[Confirmation]:
    if not policy_asks(ctx, "cancel_run"):
        return NOT_ASKED
    found = await _run_label(onepin(ctx), workflow_id, run_id)
    if found is None:
        return NOT_ASKED  # unknown run: the body explains the 404
    run, label = found
    if run is not None and run.is_terminal:
        return NOT_ASKED  # the body changes nothing and says so
    return ask(ctx, "cancel_run", f"Cancel {label}? It cannot be resumed.")


async def _confirm_pause(
    workflow_id: str, run_id: str, ctx: Context[AppState, Any]
) -> Confirmation | Elicit[Confirmation]:
    if not policy_asks(ctx, "pause_run"):
        return NOT_ASKED
    found = await _run_label(onepin(ctx), workflow_id, run_id)
    if found is None:
        return NOT_ASKED
    run, label = found
    if run is not None and (run.is_terminal or run.status == "paused" or is_pausing(run)):
        return NOT_ASKED  # nothing will be sent: already paused, or refused as finished
    return ask(ctx, "pause_run", f"Pause {label}? Steps under way finish first; it can be resumed.")


async def _confirm_resume(
    workflow_id: str, run_id: str, ctx: Context[AppState, Any]
) -> Confirmation | Elicit[Confirmation]:
    if not policy_asks(ctx, "resume_run"):
        return NOT_ASKED
    found = await _run_label(onepin(ctx), workflow_id, run_id)
    if found is None:
        return NOT_ASKED
    run, label = found
    if run is not None and run.status != "paused":
        return NOT_ASKED  # OnePin refuses it; the body explains why
    return ask(ctx, "resume_run", f"Resume {label}? Its remaining steps are billable.")


async def _workflow_name(client: OnePinClient, workflow_id: str) -> str | None:
    """The workflow's name, quoted, for a question; None when it doesn't exist. When it can't
    be read the id stands in: a question must still be asked before a write."""
    try:
        return quoted((await client.get_workflow(workflow_id)).name)
    except OnePinAPIError as error:
        return None if error.status == 404 else workflow_id
    except OnePinError:
        return workflow_id


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
    name = await _workflow_name(client, workflow_id)
    return run, f"{what} of workflow {name or workflow_id}"


# --- the tools ---------------------------------------------------------------------------------


async def start_run(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_confirm_start)],
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
    wait_s: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_START_WAIT_S,
            description="Seconds to wait for the run to finish before returning (0 = return at "
            "once); done says whether it did.",
        ),
    ] = 0,
) -> RunControlView:
    """Start a run of a workflow. Billable: previewed first and refused over the server's
    budget cap or the balance. Sent at most once, never retried; one run per workflow may be
    active. Follow the new run with wait_for_run."""
    state = ctx.request_context.lifespan_context
    client = onepin(ctx)
    async with audited(ctx, "start_run", workflow_id=workflow_id) as entry:
        entry.confirmed = require(confirmation, action=f"start a run of workflow {workflow_id}")
        estimate = await _check_budget(
            client, state.policy, workflow_id, script_text, source_language
        )
        run, recovered = await _start_once(
            client, state.clock, entry, workflow_id, script_text, source_language
        )
    # The write is recorded by now: the wait below only reads, and a client that gives up on
    # it must not turn a run that was started into an audited "cancelled".
    note = (
        "Recovered: the start request's answer was lost; this is the run it created, so do not "
        "call start_run again."
        if recovered
        else ""
    )
    if wait_s <= 0:
        return RunControlView.of(run, recovered=recovered, estimate=estimate, note=note)
    try:
        run, done, waited = await wait_until_settled(
            client, workflow_id, run.id, clock=state.clock, timeout_s=wait_s
        )
    except OnePinError as error:
        # The run exists whatever the wait met: return it rather than an error that would hide
        # its id and invite a second start.
        logger.info("start_run's wait for %s failed: %s", run.id, type(error).__name__)
        note = f"{note} Started, but following it failed ({type(error).__name__})."
        return RunControlView.of(run, recovered=recovered, estimate=estimate, note=note.strip())
    if not done and run.status != "paused":
        note = f"{note} Not finished after {waited:.0f} s of waiting."
    return RunControlView.of(
        run, recovered=recovered, done=done, estimate=estimate, note=note.strip()
    )


async def cancel_run(
    workflow_id: WorkflowId,
    run_id: RunId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_confirm_cancel)],
) -> RunControlView:
    """Cancel a pending, running or paused run, for good (it cannot be resumed). A finished run
    is returned unchanged, with changed=false."""
    client = onepin(ctx)
    async with audited(ctx, "cancel_run", workflow_id=workflow_id, run_id=run_id) as entry:
        entry.confirmed = require(confirmation, action=f"cancel run {run_id}")
        # Read first: an already finished run is the answer (nothing to do), and only the state
        # before the call can tell "cancelled now" from "was already cancelled".
        state = await client.get_run_status(workflow_id, run_id)
        if state.is_terminal:
            return RunControlView.of(state, changed=False)
        try:
            run = await client.cancel_run(workflow_id, run_id)
        except OnePinAPIError as error:
            if error.status == 409:
                message = await _state_conflict(client, "cancel", error, workflow_id, run_id)
                raise ToolError(message) from error
            raise
        # A run that finished between the read and the cancel comes back unchanged.
        return RunControlView.of(run, changed=run.status == "cancelled")


async def pause_run(
    workflow_id: WorkflowId,
    run_id: RunId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_confirm_pause)],
) -> RunControlView:
    """Pause a pending or running run: the steps under way finish first, then it stays paused
    until resume_run. A run already paused or pausing is returned unchanged."""
    client = onepin(ctx)
    async with audited(ctx, "pause_run", workflow_id=workflow_id, run_id=run_id) as entry:
        entry.confirmed = require(confirmation, action=f"pause run {run_id}")
        state = await client.get_run_status(workflow_id, run_id)
        if state.status == "paused" or is_pausing(state):
            return RunControlView.of(state, changed=False)
        if state.is_terminal:
            raise WriteRefused(
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
        return RunControlView.of(run)


async def resume_run(
    workflow_id: WorkflowId,
    run_id: RunId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_confirm_resume)],
) -> RunControlView:
    """Resume a paused run from its last finished step (nothing is redone). Only paused runs
    can be resumed; follow it with wait_for_run."""
    client = onepin(ctx)
    async with audited(ctx, "resume_run", workflow_id=workflow_id, run_id=run_id) as entry:
        entry.confirmed = require(confirmation, action=f"resume run {run_id}")
        try:
            run = await client.resume_run(workflow_id, run_id)
        except OnePinAPIError as error:
            if error.status == 409:
                message = await _state_conflict(client, "resume", error, workflow_id, run_id)
                raise ToolError(message) from error
            raise
        return RunControlView.of(run)


# --- the budget guard --------------------------------------------------------------------------


def _credits(estimate: Estimate) -> str:
    return (
        f"min {estimate.min_credits}, expected {estimate.expected_credits}, "
        f"max {estimate.max_credits} credits"
    )


async def _check_budget(
    client: OnePinClient,
    policy: WritePolicy,
    workflow_id: str,
    script_text: str | None,
    source_language: str | None,
) -> Estimate | None:
    """Preview the run (free) and refuse it before anything billable is sent when it may cost
    more than the cap or the balance can't cover it. Returns the estimate, or None when the
    preview got no answer and no cap is set (it is then advisory: OnePin checks the balance)."""
    cap = policy.max_run_credits
    try:
        estimate = await client.preview_run(
            workflow_id, script_text=script_text, source_language=source_language
        )
    except OnePinAPIError:
        raise  # a 404, 403 or 422 here is what the start would meet; explained by the server
    except OnePinError as error:
        if cap is None:
            logger.info("start_run's preview failed (%s); starting anyway", type(error).__name__)
            return None
        # Fail closed: with a cap set, a run whose cost can't be checked is not started.
        raise WriteRefused(
            f"Not started: the cost of a run could not be checked against this server's cap of "
            f"{cap} credits per run (ONEPIN_MCP_MAX_RUN_CREDITS) because the preview got no "
            f"usable answer ({type(error).__name__}). Nothing billable was sent, so no run was "
            "started; start_run can be called again once OnePin answers."
        ) from error
    if cap is not None and estimate.max_credits > cap:
        raise WriteRefused(
            f"Not started: a run of workflow {workflow_id} is estimated at "
            f"{_credits(estimate)}, and its maximum is above this server's cap of {cap} credits "
            f"per run (the ONEPIN_MCP_MAX_RUN_CREDITS setting, or --max-run-credits). Nothing "
            "was sent to start it. A shorter script_text costs less (preview_run shows the cost "
            "per node); the cap itself is the server operator's setting."
        )
    if not estimate.can_run:
        raise WriteRefused(
            f"Not started: the balance of {estimate.current_balance} credits does not cover a "
            f"run of workflow {workflow_id} ({_credits(estimate)}; short by "
            f"{estimate.deficit_at_max} credits at the maximum), so OnePin would refuse it. "
            "Nothing was sent to start it. preview_run shows the cost per node; get_account "
            "shows the balance and plan."
        )
    return estimate


# --- sending a start at most once --------------------------------------------------------------


@dataclass(frozen=True)
class RunsBefore:
    """A workflow's newest runs, read just before a start is sent: what tells the run that a
    start with a lost answer created apart from every run that was there already.

    Only OnePin's own data is used (run ids, run numbers, its newest-first order), never a
    clock: the host's clock and OnePin's need not agree, and a window of time either way would
    both miss a late run and take in someone else's.
    """

    runs: tuple[RunListItem, ...]

    @property
    def highest_number(self) -> int | None:
        return max((r.run_number for r in self.runs if r.run_number is not None), default=None)

    def new_runs(self, runs: Sequence[RunListItem]) -> list[RunListItem]:
        """The runs of `runs` (newest first, as list_runs sorts them) that were not there
        before: not among the ids seen, and numbered above the highest number seen (OnePin
        numbers a workflow's runs in sequence). A run without a number counts as new only when
        it is listed above every run seen before."""
        known = {run.id for run in self.runs}
        highest = self.highest_number
        first_known = next((i for i, run in enumerate(runs) if run.id in known), len(runs))
        fresh: list[RunListItem] = []
        for position, run in enumerate(runs):
            if run.id in known:
                continue
            if run.run_number is not None and highest is not None:
                if run.run_number > highest:
                    fresh.append(run)
            elif position < first_known:
                fresh.append(run)
        return fresh

    def still_active(self, runs: Sequence[RunListItem]) -> RunListItem | None:
        """A run that was active before the start and still is in `runs`. It was active the
        whole time (no run becomes active again once finished), so OnePin refused any start of
        this workflow that it processed meanwhile: one active run per workflow."""
        current = {run.id: run for run in runs}
        for run in self.runs:
            now = current.get(run.id)
            if run.status in ACTIVE_STATUSES and now is not None and now.status in ACTIVE_STATUSES:
                return now
        return None

    def claim(self) -> str:
        """How the agent can tell this start's run in a later list_runs."""
        highest = self.highest_number
        if highest is not None:
            return f"a run numbered above #{highest} is this start's run"
        if self.runs:
            return f"a run listed above run {self.runs[0].id} is this start's run"
        return "the workflow had no runs before, so any run listed is this start's run"


async def _start_once(
    client: OnePinClient,
    clock: Clock,
    entry: AuditEntry,
    workflow_id: str,
    script_text: str | None,
    source_language: str | None,
) -> tuple[RunState, bool]:
    """Send the start once; after an ambiguous failure, find the run it created. Returns the
    run and whether it was recovered."""
    before = await _runs_before(client, workflow_id)
    lost: OnePinError
    try:
        run: RunState = await client.start_run(
            workflow_id, script_text=script_text, source_language=source_language
        )
    except OnePinAPIError as error:
        if error.status == 409:
            raise ToolError(await _start_conflict(client, workflow_id, error)) from error
        if error.status < 500:
            raise  # a definite refusal (402, 403, 404, 422, 429): no run was started
        lost = error  # a server-side failure says nothing of whether the run was started
    except OnePinTransportError as error:
        if not error.sent:
            raise  # nothing reached OnePin: explained as such by the server
        lost = error
    except OnePinResponseError as error:
        lost = error  # a 2xx that could not be read: the start most likely happened
    else:
        entry.run_id = run.id
        return run, False
    found = await _find_started(client, clock, workflow_id, lost, before)
    entry.run_id = found.id
    entry.outcome = "recovered"
    return found, True


async def _runs_before(client: OnePinClient, workflow_id: str) -> RunsBefore | None:
    """The picture a lost answer is judged against; None when it can't be read. That doesn't
    stop the start: the picture only matters if the answer is lost, and the agent is then told
    that the outcome can't be told."""
    try:
        page = await client.list_runs(
            workflow_id, sort="created_at", order="desc", limit=BEFORE_SCAN
        )
    except OnePinError as error:
        logger.info("start_run could not list runs before starting: %s", type(error).__name__)
        return None
    return RunsBefore(tuple(page.items))


def _lost_answer(error: OnePinError) -> str:
    """The first sentence of every answer after an ambiguous failure: what happened."""
    if isinstance(error, OnePinAPIError):
        return (
            f"{_onepin_said(error)} That is a server-side failure, which does not say whether "
            "the run was started."
        )
    if isinstance(error, OnePinResponseError):
        request = f"request id {error.request_id}" if error.request_id else "no request id"
        return (
            f"OnePin answered start_run ({error.method} {error.path}) with a response this "
            f"server could not read ({error.problem}; {request})."
        )
    where = f"({error.method} {error.path})" if isinstance(error, OnePinTransportError) else ""
    if isinstance(error, OnePinTimeoutError):
        return f"OnePin did not answer start_run in time {where}, after the request was sent."
    return (
        f"The connection to OnePin was lost before it answered start_run {where}, after the "
        "request was sent."
    )


def _check_later(workflow_id: str, before: RunsBefore) -> str:
    """The advice when no run is visible yet: never another start, a bounded wait instead."""
    return (
        "The outcome is unknown: OnePin may still be processing the start, and its run may "
        f"still appear. Do not call start_run now. Call list_runs with workflow_id={workflow_id} "
        f"in {CHECK_AGAIN_S} s: {before.claim()}; follow it with wait_for_run. If there is "
        "still none, tell the user that this start's outcome is unknown and let them decide "
        "about another: a second start may bill twice."
    )


async def _find_started(
    client: OnePinClient,
    clock: Clock,
    workflow_id: str,
    error: OnePinError,
    before: RunsBefore | None,
) -> RunState:
    """The run a start with a lost answer created, by OnePin's own data; otherwise a ToolError
    that says what is known and never invites a second start."""
    head = _lost_answer(error)
    if before is None:
        raise ToolError(
            f"{head} Its runs could not be read just before it was sent, so a run it created "
            "can't be told from the others: the outcome is unknown. Do not call start_run "
            f"again: call list_runs with workflow_id={workflow_id} and ask the user whether a "
            "run listed is the one they wanted before starting another, since a second start "
            "may bill twice."
        ) from error
    pauses = iter(RECOVERY_LOOKS_S)
    looked_s = 0.0
    while True:
        try:
            page = await client.list_runs(
                workflow_id, sort="created_at", order="desc", limit=RECOVERY_SCAN
            )
        except OnePinError as lookup:
            raise ToolError(
                f"{head} Looking for the run it may have created failed too "
                f"({type(lookup).__name__}). {_check_later(workflow_id, before)}"
            ) from error
        fresh = before.new_runs(page.items)
        if len(fresh) == 1:
            return await _state_of_started(client, workflow_id, fresh[0], head, error)
        if fresh:
            labels = "; ".join(_describe_active(run)[0] for run in fresh)
            raise ToolError(
                f"{head} {len(fresh)} new runs of workflow {workflow_id} appeared since it was "
                f"sent: {labels}. One is most likely this start's and the others were started "
                "by someone else at the same time; OnePin's data can't tell which, so none is "
                "claimed. Do not call start_run again: check each with get_run_status, and "
                "cancel_run any that is not wanted."
            ) from error
        blocking = before.still_active(page.items)
        pause = next(pauses, None)
        # While a run that was active before stays active, OnePin refuses this start whenever
        # it processes it: looking again could only find a run started by someone else.
        if blocking is not None or pause is None:
            break
        await clock.sleep(pause)
        looked_s += pause
    if blocking is not None:
        what, how = _describe_active(blocking)
        raise ToolError(
            f"{head} No new run of workflow {workflow_id} is listed, and {what} was already "
            "active before this start and still is, so OnePin most likely refused this start "
            "(a workflow has one active run at a time; a start it has yet to process is refused "
            f"too while that run stays active). {how} Do not call start_run while that run is "
            f"active. Once it has ended, call list_runs with workflow_id={workflow_id}: "
            f"{before.claim()}; if there is none, ask the user before starting another."
        ) from error
    raise ToolError(
        f"{head} No new run of workflow {workflow_id} is listed after {looked_s:g} s of "
        f"looking. {_check_later(workflow_id, before)}"
    ) from error


async def _state_of_started(
    client: OnePinClient, workflow_id: str, run: RunListItem, head: str, error: OnePinError
) -> RunState:
    try:
        return await client.get_run_status(workflow_id, run.id)
    except OnePinError as lookup:
        raise ToolError(
            f"{head} The start did create run {run.id}; do not call start_run again. Reading "
            f"its state failed ({type(lookup).__name__}): call get_run_status with "
            f"workflow_id={workflow_id} and run_id={run.id}."
        ) from error


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
