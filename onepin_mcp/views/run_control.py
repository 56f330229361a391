"""Views of the `run_control` toolset: a run after start, cancel, pause or resume, with the
next step for the state it is in (worded by `views.next_steps`, as every run's is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from onepin_mcp.api.models import Estimate, RunState, RunStatus
from onepin_mcp.views import View
from onepin_mcp.views.next_steps import is_pausing, next_step, unchanged


class RunControlView(View):
    """A run right after a cancel, pause or resume: its ids, state, and what to do next."""

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
    next: str

    @classmethod
    def of(cls, run: RunState, *, changed: bool = True, note: str = "") -> RunControlView:
        return cls(**_control_fields(run, changed=changed, note=note))


class StartedRunView(RunControlView):
    """A run right after start_run: a control view, plus what only a start can tell (a lost
    answer recovered, the optional wait, the preview's cost). Its own class, so that the three
    other control tools don't list these fields in their output schemas."""

    recovered: bool = Field(
        default=False,
        description="the start request's answer was lost and this is the run it created, found "
        "afterwards; do not start again",
    )
    done: bool | None = Field(
        default=None, description="with wait_s only: whether the run finished during the wait"
    )
    expected_credits: int | None = Field(default=None, description="the preview's expected cost")
    max_credits: int | None = Field(default=None, description="the preview's maximum cost")

    @classmethod
    def started(
        cls,
        run: RunState,
        *,
        recovered: bool = False,
        done: bool | None = None,
        estimate: Estimate | None = None,
        note: str = "",
    ) -> StartedRunView:
        return cls(
            **_control_fields(run, changed=True, note=note),
            recovered=recovered,
            done=done,
            expected_credits=estimate.expected_credits if estimate else None,
            max_credits=estimate.max_credits if estimate else None,
        )


def _control_fields(run: RunState, *, changed: bool, note: str) -> dict[str, Any]:
    """What every control view says of its run. `note` goes before the next step: what the
    agent must know first (a recovered start, a wait that ended early). The next step itself is
    the one get_run_status gives for the same state."""
    before = [note] if note else []
    if not changed:
        before.append(unchanged(run))
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "status": run.status,
        "run_number": run.run_number,
        "created_at": run.created_at,
        "is_terminal": run.is_terminal,
        "pause_requested": is_pausing(run),
        "changed": changed,
        "next": " ".join([*before, next_step(run)]),
    }
