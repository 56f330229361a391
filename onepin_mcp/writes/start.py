"""Starting a run: the budget check before it, and the start sent at most once.

- The budget check previews the run first (`preview_run`, free) and refuses, sending nothing
  billable, a run whose maximum estimate exceeds `WritePolicy.max_run_credits`, or one the
  balance can't cover (`can_run` false). The balance check applies with no cap too: OnePin would
  refuse with 402 anyway, and the preview's refusal names the balance and the deficit.
- The client never retries a start. Just before sending it, the workflow's newest runs are read
  (one cheap request): that picture is what a lost answer is judged against. When the start
  fails ambiguously (sent, then no answer: a timeout, a dropped connection, a 5xx, a 2xx that
  could not be read), the run it created is the one that is new since that picture: not among
  the runs seen, and numbered above the highest run number seen. No clock is compared, so a
  host clock that disagrees with OnePin's changes nothing. Exactly one new run: it is returned
  as recovered. Several: they are listed and none is claimed. None yet: the list is read again
  a few times over `RECOVERY_LOOKS_S` (OnePin may still be processing it), on the server's
  clock, and if none appears the outcome is reported as unknown, with when to check list_runs
  again and how to tell the run. Another start is never called safe unless OnePin refused this
  one in so many words (a 4xx, raised as is for the tool to explain); an active run from before
  that is still active is named, as the reason OnePin most likely refused it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mcp.server.mcpserver.exceptions import ToolError

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinError,
    OnePinResponseError,
    OnePinTimeoutError,
    OnePinTransportError,
)
from onepin_mcp.api.models import ACTIVE_STATUSES, Estimate, RunListItem, RunState
from onepin_mcp.failures import onepin_said
from onepin_mcp.state import Clock, WritePolicy
from onepin_mcp.views.next_steps import describe_active
from onepin_mcp.writes.audit import AuditEntry, WriteRefused

logger = logging.getLogger(__name__)

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


# --- the budget check --------------------------------------------------------------------------


def _credits(estimate: Estimate) -> str:
    return (
        f"min {estimate.min_credits}, expected {estimate.expected_credits}, "
        f"max {estimate.max_credits} credits"
    )


@dataclass(frozen=True)
class Cap:
    """The credit cap that applies to one start, and whose it is."""

    credits: int
    per_call: bool

    @property
    def named(self) -> str:
        if self.per_call:
            return f"this call's max_credits of {self.credits}"
        return (
            f"this server's cap of {self.credits} credits per run (the "
            "ONEPIN_MCP_MAX_RUN_CREDITS setting, or --max-run-credits)"
        )

    @property
    def advice(self) -> str:
        if self.per_call:
            return "a higher max_credits allows it, if the user agrees to the cost."
        return "the cap itself is the server operator's setting."


def _cap(server: int | None, ceiling: int | None) -> Cap | None:
    """The lower of the server's cap and the call's ceiling; the server's wins a tie, since a
    caller can't raise it."""
    if ceiling is not None and (server is None or ceiling < server):
        return Cap(ceiling, per_call=True)
    return None if server is None else Cap(server, per_call=False)


async def check_budget(
    client: OnePinClient,
    policy: WritePolicy,
    workflow_id: str,
    script_text: str | None,
    source_language: str | None,
    ceiling: int | None = None,
) -> Estimate | None:
    """Preview the run (free) and refuse it before anything billable is sent when it may cost
    more than the cap or the balance can't cover it. The cap is the lower of the server's
    (`WritePolicy.max_run_credits`) and this call's `ceiling`. Returns the estimate, or None
    when the preview got no answer and no cap applies (it is then advisory: OnePin checks the
    balance)."""
    cap = _cap(policy.max_run_credits, ceiling)
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
            f"Not started: the cost of a run could not be checked against {cap.named} because "
            f"the preview got no usable answer ({type(error).__name__}). Nothing billable was "
            "sent, so no run was started; start_run can be called again once OnePin answers."
        ) from error
    if cap is not None and estimate.max_credits > cap.credits:
        raise WriteRefused(
            f"Not started: a run of workflow {workflow_id} is estimated at "
            f"{_credits(estimate)}, and its maximum is above {cap.named}. Nothing was sent to "
            f"start it. A shorter script_text costs less (preview_run shows the cost per node); "
            f"{cap.advice}"
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


async def start_once(
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
        if error.status < 500:
            # A definite refusal (402, 403, 404, 409, 422, 429): no run was started. A 409 is
            # the tool's to explain (which run is active, what to do about it).
            raise
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
            f"{onepin_said(error)} That is a server-side failure, which does not say whether "
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
            labels = "; ".join(describe_active(run)[0] for run in fresh)
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
        what, how = describe_active(blocking)
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
