"""start_run, cancel_run, pause_run and resume_run: their effects on the sandbox, checked through
the OnePin client, and the words an agent gets when OnePin refuses or the connection drops."""

from __future__ import annotations

import json
import uuid

import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunStatus
from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import NO_WAIT_RETRY, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID
LONG = seed.WORKFLOW_LONG_ID
RUNS_PATH = f"/api/v1/workflows/{COMPLETES}/runs"


def posts_to(sandbox: Sandbox, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.path == path)


async def run_until(
    sandbox: Sandbox, api: OnePinClient, workflow_id: str, run_id: str, status: RunStatus
) -> None:
    """Move sandbox time in steps until the run reaches `status` (bounded: fails if it never
    does within an hour of sandbox time)."""
    for _ in range(720):
        if (await api.get_run_status(workflow_id, run_id)).status == status:
            return
        sandbox.advance(5)
    pytest.fail(f"run {run_id} never became {status}")


# --- start_run -----------------------------------------------------------------------------------


async def test_start_run_creates_one_pending_run_and_points_to_wait_for_run(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = await api.list_runs(COMPLETES)

    run = structured(await mcp_client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert run["workflow_id"] == COMPLETES
    assert run["status"] == "pending"
    assert run["is_terminal"] is False
    assert "call wait_for_run" in run["next"]
    assert (await api.get_run_status(COMPLETES, run["id"])).status == "pending"
    after = await api.list_runs(COMPLETES)
    assert after.total == (before.total or 0) + 1
    assert posts_to(sandbox, RUNS_PATH) == 1


async def test_start_run_with_a_script_runs_that_script_in_the_given_language(
    mcp_client: Client, api: OnePinClient
) -> None:
    script = "Our spring catalogue is here.\nFree shipping all week."
    run = structured(
        await mcp_client.call_tool(
            "start_run",
            {"workflow_id": COMPLETES, "script_text": script, "source_language": "en-US"},
        )
    )

    detail = await api.get_run(COMPLETES, run["id"])
    source = next(
        node
        for node in (detail.definition_snapshot or {})["graph"]["nodes"]
        if node["type"] == "source_script"
    )
    assert source["config"]["script_text"] == script
    assert source["config"]["source_language"] == "en-us"
    # The saved workflow keeps its own script: the override is for this run only.
    saved = await api.get_workflow(COMPLETES)
    assert script not in json.dumps(saved.definition.to_api())


async def test_starting_while_a_run_is_active_names_the_active_run_and_what_to_do(
    mcp_client: Client, api: OnePinClient
) -> None:
    active = await api.start_run(COMPLETES)

    text = error_text(await mcp_client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert "OnePin answered 409" in text
    assert "request id" in text
    assert f"The active run is {active.id}" in text
    assert "pending" in text
    assert f"wait_for_run with this workflow_id and run_id={active.id}" in text
    assert "cancel_run" in text
    runs = await api.list_runs(COMPLETES, status=["pending", "running", "paused"])
    assert [r.id for r in runs.items] == [active.id]


async def test_starting_a_workflow_whose_run_is_paused_suggests_resuming_it(
    mcp_client: Client,
) -> None:
    text = error_text(
        await mcp_client.call_tool("start_run", {"workflow_id": seed.WORKFLOW_IVR_ID})
    )

    assert f"The active run is {seed.RUN_PAUSED_ID}" in text
    assert f"resume_run with this workflow_id and run_id={seed.RUN_PAUSED_ID}" in text


async def test_starting_beyond_the_concurrent_run_limit_says_that_the_limit_is_the_reason(
    mcp_client: Client, api: OnePinClient
) -> None:
    # The seed holds two slots (a pending and a running run) of the plan's six.
    for workflow_id in (COMPLETES, seed.WORKFLOW_FAILS_ID, LONG):
        await api.start_run(workflow_id)
    copy = await api.duplicate_workflow(COMPLETES)
    await api.start_run(copy.id)
    idle = await api.duplicate_workflow(COMPLETES)

    text = error_text(await mcp_client.call_tool("start_run", {"workflow_id": idle.id}))

    assert "OnePin answered 409" in text
    assert "Concurrent run limit" in text
    assert "limit of concurrent runs is reached" in text
    assert (await api.list_runs(idle.id)).total == 0


async def test_start_run_on_an_unknown_workflow_names_the_listing_tool(mcp_client: Client) -> None:
    missing = str(uuid.uuid4())

    text = error_text(await mcp_client.call_tool("start_run", {"workflow_id": missing}))

    assert text.startswith("OnePin answered 404")
    assert missing in text
    assert "list_workflows" in text


async def test_start_run_refuses_a_malformed_language_without_calling_onepin(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool(
        "start_run",
        {"workflow_id": COMPLETES, "script_text": "Hello.", "source_language": "English please"},
    )

    assert "source_language" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_a_viewer_key_cannot_start_runs_and_is_told_which_role_is_needed(mode: str) -> None:
    key = "op_live_" + "V" * 32
    viewer = Sandbox(manual_clock=True, api_keys=[ApiKey(key, role="viewer")])
    server = create_server(
        sandbox_settings(viewer, api_key=key),
        selection=ToolSelection(toolsets=("run_control",)),
        transport=viewer.transport(),
        retry=NO_WAIT_RETRY,
    )
    async with Client(server, mode=mode) as client:
        text = error_text(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert text.startswith("OnePin answered 403")
    assert "editor role" in text
    assert key not in text
    starts = [r for r in viewer.requests if r.method == "POST" and r.path == RUNS_PATH]
    assert [r.status for r in starts] == [403]


# --- cancel_run -----------------------------------------------------------------------------------


async def test_cancel_run_cancels_an_active_run_and_a_second_cancel_changes_nothing(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(COMPLETES)
    arguments = {"workflow_id": COMPLETES, "run_id": run.id}

    first = structured(await mcp_client.call_tool("cancel_run", arguments))
    assert first["status"] == "cancelled"
    assert first["changed"] is True
    assert first["is_terminal"] is True
    assert (await api.get_run_status(COMPLETES, run.id)).status == "cancelled"

    second = structured(await mcp_client.call_tool("cancel_run", arguments))
    assert second["status"] == "cancelled"
    assert second["changed"] is False
    assert "already cancelled" in second["next"]
    assert posts_to(sandbox, f"{RUNS_PATH}/{run.id}/cancel") == 1


async def test_cancelling_a_finished_run_returns_it_unchanged(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    arguments = {"workflow_id": COMPLETES, "run_id": seed.RUN_COMPLETED_ID}

    run = structured(await mcp_client.call_tool("cancel_run", arguments))

    assert run["status"] == "completed"
    assert run["changed"] is False
    assert "get_run_results" in run["next"]
    assert (await api.get_run_status(COMPLETES, seed.RUN_COMPLETED_ID)).status == "completed"
    assert not any(r.method == "POST" for r in sandbox.requests)


async def test_cancel_run_with_an_unknown_run_names_list_runs(mcp_client: Client) -> None:
    missing = str(uuid.uuid4())

    result = await mcp_client.call_tool("cancel_run", {"workflow_id": COMPLETES, "run_id": missing})

    text = error_text(result)
    assert text.startswith("OnePin answered 404")
    assert f"list_runs with workflow_id={COMPLETES}" in text


# --- pause_run and resume_run ---------------------------------------------------------------------


async def test_pause_then_resume_a_running_run(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(LONG)
    await run_until(sandbox, api, LONG, run.id, "running")
    arguments = {"workflow_id": LONG, "run_id": run.id}

    pausing = structured(await mcp_client.call_tool("pause_run", arguments))
    assert pausing["changed"] is True
    assert pausing["status"] == "running"
    assert pausing["pause_requested"] is True
    assert "pause_run with wait_s or wait_for_run" in pausing["next"]
    assert (await api.get_run_status(LONG, run.id)).pause_requested_at is not None

    await run_until(sandbox, api, LONG, run.id, "paused")
    again = structured(await mcp_client.call_tool("pause_run", arguments))
    assert again["status"] == "paused"
    assert again["changed"] is False
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs/{run.id}/pause") == 1

    resumed = structured(await mcp_client.call_tool("resume_run", arguments))
    assert resumed["status"] == "running"
    assert resumed["changed"] is True
    assert "wait_for_run" in resumed["next"]
    state = await api.get_run_status(LONG, run.id)
    assert state.status == "running"
    assert state.paused_at is None


async def test_pausing_a_pending_run_parks_it_at_once(
    mcp_client: Client, api: OnePinClient
) -> None:
    run = await api.start_run(COMPLETES)

    paused = structured(
        await mcp_client.call_tool("pause_run", {"workflow_id": COMPLETES, "run_id": run.id})
    )

    assert paused["status"] == "paused"
    assert paused["changed"] is True
    assert "resume_run" in paused["next"]
    assert (await api.get_run_status(COMPLETES, run.id)).status == "paused"


async def test_pausing_a_finished_run_is_refused_without_sending_a_pause(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    arguments = {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}

    text = error_text(await mcp_client.call_tool("pause_run", arguments))

    assert f"Run {seed.RUN_FAILED_ID} is already failed" in text
    assert "get_run_steps" in text
    assert not any(r.method == "POST" for r in sandbox.requests)


async def test_resuming_a_run_that_is_not_paused_explains_the_conflict(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(LONG)
    await run_until(sandbox, api, LONG, run.id, "running")

    result = await mcp_client.call_tool("resume_run", {"workflow_id": LONG, "run_id": run.id})

    text = error_text(result)
    assert "OnePin answered 409" in text
    assert "request id" in text
    assert f"Run {run.id} is running, not paused" in text
    assert "wait_for_run" in text
    assert (await api.get_run_status(LONG, run.id)).status == "running"


async def test_resuming_a_finished_run_says_to_start_a_new_one(mcp_client: Client) -> None:
    arguments = {"workflow_id": LONG, "run_id": seed.RUN_CANCELLED_ID}

    text = error_text(await mcp_client.call_tool("resume_run", arguments))

    assert "OnePin answered 409" in text
    assert "is cancelled; a finished run cannot be resumed" in text
    assert "start_run" in text
