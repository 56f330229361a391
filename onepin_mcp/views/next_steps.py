"""What to do next about a run, in one voice: the advice for every state a run can be in, and
the words for every refusal to change a run's state (a cancel, pause, resume or start that
meets a run in the wrong state, OnePin's 409s).

get_run_status, wait_for_run, the run_control tools and their errors all word their advice
here, so two tools never advise differently for the same state. Advice is decided by the run's
status alone, never by text OnePin sent. It names tools, not ids: the views that carry it hold
the run's ids beside it, and the refusals below name the run themselves.
"""

from __future__ import annotations

from typing import Final, Literal

from onepin_mcp.api.models import RunListItem, RunState

Action = Literal["cancel", "pause", "resume"]
AnyRun = RunState | RunListItem

_DONE: Final[dict[Action, str]] = {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}

# A pausing run can't be resumed until its steps under way have finished; both tools wait for
# that, and get_run_status (one check) must not be called in a loop instead.
PAUSING: Final = (
    "Pausing: the steps under way finish first. To wait until it is paused, call pause_run "
    "with wait_s or wait_for_run; then resume_run continues it, or cancel_run ends it."
)

_PAUSE_HELP: Final = {
    "user": "Paused on request: call resume_run to continue, or cancel_run to stop it.",
    "provider_outage": (
        "OnePin paused it because a provider is down (see pause_error): call resume_run once "
        "the provider has recovered, or cancel_run."
    ),
    "provider_rate_limited": (
        "OnePin paused it because a provider rate-limited it: call resume_run in a few "
        "minutes, or cancel_run."
    ),
    "provider_billing": (
        "OnePin paused it because a provider refused for billing reasons (see pause_error): "
        "the workspace owner must fix that before resume_run will get further."
    ),
    "node_timeout": (
        "OnePin paused it because a node timed out: get_run_steps shows which; call "
        "resume_run to retry from there, or cancel_run."
    ),
}
_PAUSE_HELP_DEFAULT: Final = (
    "Call resume_run to continue or cancel_run to stop it (pause_error says why)."
)


def is_pausing(run: AnyRun) -> bool:
    """Pausing is not a status: the run stays running while the steps under way finish."""
    return run.status == "running" and run.pause_requested_at is not None


def state_name(run: AnyRun) -> str:
    """The run's state in a word, with pausing told apart from running."""
    return "pausing" if is_pausing(run) else run.status


def pause_help(run: AnyRun) -> str:
    return _PAUSE_HELP.get(run.pause_reason or "", _PAUSE_HELP_DEFAULT)


def next_step(run: AnyRun) -> str:
    """What to call next about a run in this state."""
    status = run.status
    if status == "completed":
        if isinstance(run, RunState) and run.has_export is False:
            return "Completed without downloadable audio: get_run_results view=outputs shows why."
        return (
            "Completed: call get_run_results for quality, get_run_data for lines, "
            "get_download_url for the audio ZIP."
        )
    if status == "failed":
        return (
            "Failed (see error): call get_run_steps with failed_only=true for the failing node, "
            "then get_run_results view=overview for validator scores."
        )
    if status == "cancelled":
        return "Cancelled: nothing more will happen. Call start_run for a new run if needed."
    if status == "paused":
        return "Paused. " + pause_help(run)
    if is_pausing(run):
        return PAUSING
    if status == "pending":
        return "Queued, not started yet: call wait_for_run to wait for it to finish."
    return "Running: call wait_for_run to wait for the end."


def unchanged(run: AnyRun) -> str:
    """Said before the next step when a control call found the run already as asked."""
    return f"Nothing changed: the run was already {state_name(run)}."


def after_wait(run: RunState, waited_s: float, percent: int | None) -> str:
    """wait_for_run's advice once it stops waiting."""
    if run.is_terminal:
        return next_step(run)
    if run.status == "paused":
        return "Paused, so waiting will not finish it. " + pause_help(run)
    done_part = f", {percent}% done" if percent is not None else ""
    return (
        f"Still {state_name(run)} after {waited_s:g} s{done_part}: call wait_for_run again to "
        "keep waiting."
    )


def after_pause_wait(run: RunState, waited_s: float) -> str:
    """pause_run's note once its wait ends: which of paused, finished or out of time it was."""
    if run.status == "paused":
        return f"Paused after {waited_s:.0f} s of waiting."
    if run.is_terminal:
        return f"The run ended ({run.status}) before it could pause."
    return f"Not paused yet after {waited_s:.0f} s of waiting."


# --- refusals -----------------------------------------------------------------------------------


def pause_refused(run_id: str, run: RunState) -> str:
    """pause_run on a finished run: refused before anything is sent."""
    return (
        f"Run {run_id} is already {run.status}; only pending or running runs can be paused, so "
        f"no pause was sent. {next_step(run)}"
    )


def state_conflict(
    said: str, action: Action, workflow_id: str, run_id: str, run: RunState | None
) -> str:
    """OnePin refused to cancel, pause or resume a run (409); `said` quotes its answer and
    `run` is the run's state read right after (None when that read failed)."""
    ids = f"workflow_id={workflow_id}, run_id={run_id}"
    if run is None:
        return f"{said} Call get_run_status ({ids}) and act on the run's current state."
    if run.is_terminal:
        return (
            f"{said} Run {run_id} is {run.status}; a finished run cannot be {_DONE[action]}. "
            f"{next_step(run)}"
        )
    if action == "resume" and run.status == "paused":
        return (
            f"{said} Run {run_id} stays paused: another run of this workflow is active, or the "
            "workspace's limit of concurrent runs is reached. list_runs with "
            f"workflow_id={workflow_id} and status=pending,running shows what is running; wait "
            "for it or cancel it, then resume again."
        )
    if action == "resume" and is_pausing(run):
        return (
            f"{said} Run {run_id} is pausing, not paused yet: it can be resumed once the steps "
            f"under way have finished. Call pause_run with wait_s, or wait_for_run ({ids}), "
            "until it is paused, then resume_run."
        )
    if action == "resume":
        return (
            f"{said} Run {run_id} is {run.status}, not paused, so there is nothing to resume (it "
            f"may have been resumed already). Call wait_for_run ({ids}) to follow it."
        )
    return (
        f"{said} Run {run_id} is {state_name(run)} and changed state during the call. Call "
        f"{action}_run again ({ids}); it is safe to repeat."
    )


def describe_active(run: RunListItem) -> tuple[str, str]:
    """A workflow's active run in words, and a sentence on the tools that deal with it."""
    number = f"run #{run.run_number}, " if run.run_number is not None else ""
    created = run.created_at.isoformat() if run.created_at else "unknown time"
    what = f"{run.id} ({number}{state_name(run)}, created {created})"
    if run.status == "paused":
        how = f"To continue it, call resume_run with this workflow_id and run_id={run.id}"
    else:
        how = f"To wait for it, call wait_for_run with this workflow_id and run_id={run.id}"
    return what, f"{how}; to end it, cancel_run with the same ids."


def start_conflict(said: str, workflow_id: str, active: RunListItem | None, *, found: bool) -> str:
    """OnePin refused a start (409). `found` is false when looking up the active run failed."""
    if not found:
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
    what, how = describe_active(active)
    return (
        f"{said} The active run is {what}; a workflow has one active run at a time. {how} "
        "Then call start_run again if a new run is still wanted."
    )


# --- acting on a workflow's active run ----------------------------------------------------------


def no_active_run(action: Action, workflow_id: str, latest: RunListItem | None) -> str:
    """cancel_run, pause_run or resume_run given only a workflow_id, with no run to act on.
    `latest` is the workflow's newest run (None when it has none or it couldn't be read)."""
    wanted = "paused" if action == "resume" else "active (pending, running or paused)"
    head = f"Workflow {workflow_id} has no {wanted} run, so nothing was {_DONE[action]}."
    if latest is None:
        return (
            f"{head} Call list_runs with workflow_id={workflow_id} to see its runs, and pass "
            "run_id to act on one."
        )
    number = f"#{latest.run_number} " if latest.run_number is not None else ""
    about = (
        f"Its active run is {number}({latest.id}), which is {state_name(latest)}."
        if latest.status in ("pending", "running")
        else f"Its latest run is {number}({latest.id}), which is {state_name(latest)}."
    )
    return (
        f"{head} {about} {next_step(latest)} list_runs with workflow_id={workflow_id} lists "
        "its runs."
    )


def several_active(action: Action, workflow_id: str, runs: list[RunListItem]) -> str:
    """More than one candidate where OnePin allows one: none is chosen for the agent."""
    listed = "; ".join(describe_active(run)[0] for run in runs)
    return (
        f"Workflow {workflow_id} lists {len(runs)} runs that could be meant: {listed}. Nothing "
        f"was {_DONE[action]}: call {action}_run again with the run_id of the one meant."
    )
