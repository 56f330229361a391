"""cancel_run, pause_run and resume_run given only a workflow_id act on its active run; pause_run
with wait_s returns once the run is paused, so resume_run can follow at once. In both protocol
eras, on sandbox time (the server sleeps on `SandboxClock`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.state import ConfirmPolicy, WritePolicy
from tests.support.users import User

from .conftest import SandboxClock, ServerFactory, error_text, structured

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID
LONG = seed.WORKFLOW_LONG_ID
# Seeded: a running run that takes about 33 s of sandbox time to pause (a long step is under
# way), a paused run and a pending one, each the active run of its workflow.
COURSE = seed.WORKFLOW_COURSE_ID
IVR = seed.WORKFLOW_IVR_ID
ONBOARDING = seed.WORKFLOW_ONBOARDING_ID
REAL_BOUND_S = 20


class Session:
    """One client on a server that asks before every write and keeps an audit log."""

    def __init__(self, client: Client, user: User, audit_log: Path) -> None:
        self.client = client
        self.user = user
        self.audit_log = audit_log

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        with anyio.fail_after(REAL_BOUND_S):
            return await self.client.call_tool(tool, arguments)

    def records(self) -> list[dict[str, Any]]:
        lines = self.audit_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
async def session(make_server: ServerFactory, mode: str, tmp_path: Path) -> Any:
    audit_log = tmp_path / "writes.jsonl"
    confirm: ConfirmPolicy = "writes"
    server = make_server(
        toolsets=("all",), policy=WritePolicy(confirm=confirm, audit_log=str(audit_log))
    )
    user = User()
    async with Client(server, mode=mode, elicitation_callback=user) as client:  # type: ignore[arg-type]
        yield Session(client, user, audit_log)


def posts(sandbox: Sandbox) -> list[str]:
    return [r.path for r in sandbox.requests if r.method == "POST"]


# --- acting on the active run ---------------------------------------------------------------------


async def test_cancel_run_given_only_the_workflow_cancels_its_active_run_as_asked_and_audited(
    session: Session, api: OnePinClient
) -> None:
    run = await api.start_run(COMPLETES)
    name = (await api.get_workflow(COMPLETES)).name

    cancelled = structured(await session.call("cancel_run", {"workflow_id": COMPLETES}))

    assert cancelled["id"] == run.id
    assert cancelled["status"] == "cancelled"
    assert (await api.get_run_status(COMPLETES, run.id)).status == "cancelled"
    assert session.user.questions == [
        f"Cancel run #{run.run_number} of workflow '{name}'? It cannot be resumed."
    ]
    [record] = session.records()
    assert (record["tool"], record["run_id"], record["outcome"]) == ("cancel_run", run.id, "ok")
    assert record["confirmed"] is True


async def test_cancelling_everything_running_takes_one_list_and_one_cancel_per_workflow(
    session: Session, api: OnePinClient
) -> None:
    runs = {COURSE: seed.RUN_RUNNING_ID, IVR: seed.RUN_PAUSED_ID, ONBOARDING: seed.RUN_PENDING_ID}

    listed = structured(await session.call("list_workflows", {"status": "running"}))
    active = [row["id"] for row in listed["items"]]
    assert sorted(active) == sorted(runs)
    for workflow_id in active:
        structured(await session.call("cancel_run", {"workflow_id": workflow_id}))

    for workflow_id, run_id in runs.items():
        assert (await api.get_run_status(workflow_id, run_id)).status == "cancelled"
    assert [r["run_id"] for r in session.records()] == [runs[w] for w in active]


async def test_pause_run_given_only_the_workflow_pauses_its_active_run_as_asked_and_audited(
    session: Session, api: OnePinClient
) -> None:
    name = (await api.get_workflow(ONBOARDING)).name
    number = (await api.get_run_status(ONBOARDING, seed.RUN_PENDING_ID)).run_number

    paused = structured(await session.call("pause_run", {"workflow_id": ONBOARDING}))

    assert (paused["id"], paused["status"]) == (seed.RUN_PENDING_ID, "paused")
    assert session.user.questions == [
        f"Pause run #{number} of workflow '{name}'? Steps under way finish first; it can be "
        "resumed."
    ]
    [record] = session.records()
    assert (record["tool"], record["run_id"], record["outcome"]) == (
        "pause_run",
        seed.RUN_PENDING_ID,
        "ok",
    )


async def test_resume_run_given_only_the_workflow_resumes_its_paused_run(
    session: Session, api: OnePinClient
) -> None:
    number = (await api.get_run_status(IVR, seed.RUN_PAUSED_ID)).run_number

    resumed = structured(await session.call("resume_run", {"workflow_id": IVR}))

    assert (resumed["id"], resumed["status"]) == (seed.RUN_PAUSED_ID, "running")
    assert (await api.get_run_status(IVR, seed.RUN_PAUSED_ID)).status == "running"
    assert session.user.questions[0].startswith(f"Resume run #{number} of workflow ")
    [record] = session.records()
    assert (record["run_id"], record["outcome"]) == (seed.RUN_PAUSED_ID, "ok")


async def test_cancel_run_on_a_workflow_without_an_active_run_names_its_latest_and_sends_nothing(
    session: Session, sandbox: Sandbox
) -> None:
    text = error_text(await session.call("cancel_run", {"workflow_id": COMPLETES}))

    assert text.startswith(
        f"Workflow {COMPLETES} has no active (pending, running or paused) run, so nothing was "
        "cancelled."
    )
    assert f"Its latest run is #2 ({seed.RUN_COMPLETED_ID}), which is completed." in text
    assert f"list_runs with workflow_id={COMPLETES}" in text
    assert session.user.questions == []
    assert posts(sandbox) == []
    [record] = session.records()
    assert (record["run_id"], record["outcome"]) == (None, "refused")


async def test_pause_run_on_a_workflow_that_never_ran_points_to_list_runs(
    session: Session, sandbox: Sandbox
) -> None:
    draft = seed.WORKFLOW_DRAFT_ID

    text = error_text(await session.call("pause_run", {"workflow_id": draft}))

    assert f"Workflow {draft} has no active (pending, running or paused) run" in text
    assert f"Call list_runs with workflow_id={draft}" in text
    assert posts(sandbox) == []


async def test_resume_run_on_a_workflow_whose_active_run_is_not_paused_names_it_and_what_to_do(
    session: Session, sandbox: Sandbox
) -> None:
    text = error_text(await session.call("resume_run", {"workflow_id": COURSE}))

    assert f"Workflow {COURSE} has no paused run, so nothing was resumed." in text
    assert f"({seed.RUN_RUNNING_ID}), which is running." in text
    assert "wait_for_run" in text
    assert posts(sandbox) == []


async def test_acting_on_the_active_run_of_an_unknown_workflow_names_list_workflows(
    session: Session,
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"

    text = error_text(await session.call("cancel_run", {"workflow_id": missing}))

    assert text.startswith("OnePin answered 404")
    assert "list_workflows" in text
    [record] = session.records()
    assert record["outcome"] == "error:NOT_FOUND"


# --- pause_run with wait_s ----------------------------------------------------------------------


async def test_pause_run_with_wait_s_returns_once_paused_so_resume_run_follows_at_once(
    mcp_client: Client, api: OnePinClient, sandbox_clock: SandboxClock
) -> None:
    paused = structured(
        await mcp_client.call_tool("pause_run", {"workflow_id": COURSE, "wait_s": 50})
    )

    assert (paused["id"], paused["status"], paused["changed"]) == (
        seed.RUN_RUNNING_ID,
        "paused",
        True,
    )
    waited = sum(sandbox_clock.slept)
    assert 0 < waited <= 50
    assert paused["next"].startswith(f"Paused after {waited:.0f} s of waiting. Paused.")
    assert (await api.get_run_status(COURSE, seed.RUN_RUNNING_ID)).status == "paused"

    resumed = structured(await mcp_client.call_tool("resume_run", {"workflow_id": COURSE}))

    assert (resumed["id"], resumed["status"]) == (seed.RUN_RUNNING_ID, "running")


async def test_pause_run_whose_wait_ends_first_says_it_is_not_paused_yet_and_how_to_wait_on(
    mcp_client: Client, sandbox_clock: SandboxClock
) -> None:
    pausing = structured(
        await mcp_client.call_tool("pause_run", {"workflow_id": COURSE, "wait_s": 5})
    )

    assert (pausing["status"], pausing["pause_requested"]) == ("running", True)
    assert sum(sandbox_clock.slept) == 5
    assert pausing["next"].startswith("Not paused yet after 5 s of waiting. Pausing:")
    assert "pause_run with wait_s or wait_for_run" in pausing["next"]

    # Waiting on a run that is already pausing sends no second pause and reaches the pause.
    paused = structured(
        await mcp_client.call_tool("pause_run", {"workflow_id": COURSE, "wait_s": 50})
    )
    assert (paused["status"], paused["changed"]) == ("paused", False)


async def test_pause_run_without_wait_s_returns_at_once_with_the_run_still_pausing(
    mcp_client: Client, sandbox_clock: SandboxClock
) -> None:
    pausing = structured(await mcp_client.call_tool("pause_run", {"workflow_id": COURSE}))

    assert (pausing["status"], pausing["pause_requested"]) == ("running", True)
    assert sandbox_clock.slept == []


async def test_resuming_a_pausing_run_says_to_wait_for_the_pause_not_that_it_was_resumed(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    arguments = {"workflow_id": COURSE, "run_id": seed.RUN_RUNNING_ID}
    structured(await mcp_client.call_tool("pause_run", arguments))

    text = error_text(await mcp_client.call_tool("resume_run", arguments))

    assert "OnePin answered 409" in text
    assert f"Run {seed.RUN_RUNNING_ID} is pausing, not paused yet" in text
    assert "pause_run with wait_s, or wait_for_run" in text
    assert "resumed already" not in text
