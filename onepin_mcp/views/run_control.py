"""Views of the `run_control` toolset: a run after start, cancel, pause or resume, with the
next step for the state it is in."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from onepin_mcp.api.models import Estimate, RunState, RunStatus
from onepin_mcp.views import View


class RunControlView(View):
    """A run right after a control call: its ids, state, and what to do next."""

    id: str = Field(description="the run id")
    workflow_id: str
    status: RunStatus
    run_number: int | None = None
    created_at: datetime | None = None
    is_terminal: bool
    pause_requested: bool = Field(
        description="running, but pausing once the current wave of steps finishes"
    )
    changed: bool = Field(
        description="false when the run already was in the requested state and nothing changed"
    )
    recovered: bool = Field(
        default=False,
        description="start_run only: the start request's answer was lost and this is the run "
        "it created, found afterwards; do not start again",
    )
    done: bool | None = Field(
        default=None,
        description="start_run with wait_s only: whether the run finished during the wait",
    )
    expected_credits: int | None = Field(
        default=None, description="start_run only: the preview's expected cost"
    )
    max_credits: int | None = Field(
        default=None, description="start_run only: the preview's maximum cost"
    )
    next: str

    @classmethod
    def of(
        cls,
        run: RunState,
        *,
        changed: bool = True,
        recovered: bool = False,
        done: bool | None = None,
        estimate: Estimate | None = None,
        note: str = "",
    ) -> RunControlView:
        """`note` goes before the next step: what the agent must know first (a recovered start,
        a wait that ended early)."""
        pausing = is_pausing(run)
        return cls(
            id=run.id,
            workflow_id=run.workflow_id,
            status=run.status,
            run_number=run.run_number,
            created_at=run.created_at,
            is_terminal=run.is_terminal,
            pause_requested=pausing,
            changed=changed,
            recovered=recovered,
            done=done,
            expected_credits=estimate.expected_credits if estimate else None,
            max_credits=estimate.max_credits if estimate else None,
            next=(note + " " if note else "") + next_step(run, changed=changed),
        )


def is_pausing(run: RunState) -> bool:
    """Pausing is not a status: the run stays running while the steps under way finish."""
    return run.status == "running" and run.pause_requested_at is not None


def next_step(run: RunState, *, changed: bool = True) -> str:
    """What an agent should do about a run in this state, naming the tool and its ids."""
    ids = f"workflow_id={run.workflow_id}, run_id={run.id}"
    already = "" if changed else f"Nothing changed: the run was already {run.status}. "
    if is_pausing(run):
        return (
            f"{already}Pausing: the steps under way finish first. Call get_run_status ({ids}) "
            "until status is paused; resume_run continues it, cancel_run ends it."
        )
    if run.status in ("pending", "running"):
        return (
            f"{already}Call wait_for_run ({ids}) to follow it to the end; get_run_status is a "
            "single check."
        )
    if run.status == "paused":
        return (
            f"{already}Paused: resume_run ({ids}) continues from the last finished step; "
            "cancel_run ends it."
        )
    if run.status == "completed":
        return (
            f"{already}Finished: get_run_results ({ids}) shows the outcome; get_download_url "
            "gives the audio."
        )
    if run.status == "failed":
        return (
            f"{already}Failed: get_run_steps ({ids}, failed_only=true) shows why; start_run "
            "starts a new run."
        )
    return f"{already}Cancelled for good (it cannot be resumed); start_run starts a new run."
