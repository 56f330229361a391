"""start_run made safe and affordable: sent at most once when its answer is lost, previewed
against the budget cap and the balance first, and optionally waited on for a short while."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anyio
import pytest
from mcp import Client

from onepin_mcp.client import OnePinClient
from onepin_mcp.models import RunListItem
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.state import WritePolicy
from onepin_mcp.tools.run_control import pick_started

from .conftest import ServerFactory, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID  # costs 1 credit at most
LONG = seed.WORKFLOW_LONG_ID  # 64 / 70 / 214 credits, no run active
RUNS_PATH = f"/api/v1/workflows/{COMPLETES}/runs"
ANY_START = {"method": "POST", "path": "/api/v1/workflows/*/runs"}
# Long enough for any real call to finish, short enough to fail a broken test quickly.
REAL_BOUND_S = 20


def posts_to(sandbox: Sandbox, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.path == path)


async def call(client: Client, tool: str, arguments: dict[str, object]) -> object:
    with anyio.fail_after(REAL_BOUND_S):
        return await client.call_tool(tool, arguments)


# --- at most once -------------------------------------------------------------------------------


async def test_a_start_whose_answer_is_dropped_returns_the_run_it_created_marked_recovered(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "drop": "after"})

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert run["recovered"] is True
    assert "answer was lost; this is the run it created" in run["next"]
    assert "do not call start_run again" in run["next"]
    assert posts_to(sandbox, RUNS_PATH) == 1
    after = await api.list_runs(COMPLETES)
    assert (after.total or 0) == before + 1
    assert after.items[0].id == run["id"]
    assert run["status"] == "pending"


async def test_a_start_dropped_before_processing_creates_nothing_and_says_to_check_list_runs(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "drop": "before"})

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert "most likely did not happen" in text
    assert f"list_runs with workflow_id={COMPLETES}" in text
    assert posts_to(sandbox, RUNS_PATH) == 1
    assert (await api.list_runs(COMPLETES)).total == before


async def test_a_start_that_times_out_before_onepin_handles_it_is_reported_as_not_started(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # In process, the client's deadline cancels the request while the fault's latency holds it,
    # so OnePin never handles it: the tool must find no run and say so, not invent one.
    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "latency_ms": 5000})

    async with Client(make_server(settings=settings), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert text.startswith("OnePin did not answer start_run in time")
    assert "most likely did not happen" in text
    assert (await api.list_runs(COMPLETES)).total == before


async def test_a_start_handled_but_answered_after_the_timeout_is_recovered(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # The run is created, then its answer dribbles out past the client's deadline.
    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "slow_body_ms": 5000})

    async with Client(make_server(settings=settings), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert run["recovered"] is True
    after = await api.list_runs(COMPLETES)
    assert (after.total or 0) == before + 1
    assert after.items[0].id == run["id"]
    assert posts_to(sandbox, RUNS_PATH) == 1


async def test_a_lost_answer_does_not_claim_a_run_that_was_already_active_before_the_start(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # OnePin refuses the start with 409 (the run below is active) and the answer is lost: the
    # old run is not this start's, and must not be handed back as if it were.
    workflow = seed.WORKFLOW_IVR_ID  # its seeded run has been paused since before the test
    sandbox.faults.add({**ANY_START, "drop": "after"})

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": workflow})

    text = error_text(result)
    assert f"{seed.RUN_PAUSED_ID} (run #" in text
    assert "was already active, so OnePin most likely refused this start" in text
    assert "resume_run" in text
    active = await api.list_runs(workflow, status=["pending", "running", "paused"])
    assert [r.id for r in active.items] == [seed.RUN_PAUSED_ID]


def _row(run_id: str, created_at: datetime | None, status: str = "completed") -> RunListItem:
    return RunListItem.model_validate({"id": run_id, "status": status, "created_at": created_at})


def test_the_started_run_is_the_newest_created_within_the_window_whatever_its_status() -> None:
    sent = datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc)
    window = (sent - timedelta(seconds=30), sent + timedelta(seconds=5))
    runs = [
        _row("old", sent - timedelta(minutes=5)),
        _row("ours", sent + timedelta(seconds=1), status="completed"),
        _row("undated", None),
        _row("earlier-in-window", sent - timedelta(seconds=10), status="failed"),
    ]

    assert (found := pick_started(runs, window)) is not None
    assert found.id == "ours"
    assert pick_started([_row("old", sent - timedelta(minutes=5))], window) is None
    assert pick_started([], window) is None


# --- the budget guard ---------------------------------------------------------------------------


async def test_the_cap_refuses_an_expensive_run_without_starting_it_and_allows_a_cheap_one(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    policy = WritePolicy(max_run_credits=100)
    before = (await api.list_runs(LONG)).total

    async with Client(make_server(policy=policy), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            refused = await client.call_tool("start_run", {"workflow_id": LONG})
            cheap = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    text = error_text(refused)
    assert "cap of 100 credits" in text
    assert "min 64, expected 70, max 214 credits" in text
    assert "ONEPIN_MCP_MAX_RUN_CREDITS" in text
    assert "--max-run-credits" in text
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs") == 0
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs/preview") == 1
    assert (await api.list_runs(LONG)).total == before
    assert cheap["status"] == "pending"
    assert cheap["max_credits"] == 1
    assert posts_to(sandbox, RUNS_PATH) == 1


async def test_a_cap_equal_to_the_maximum_estimate_allows_the_run(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(policy=WritePolicy(max_run_credits=214)), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": LONG}))

    assert (run["expected_credits"], run["max_credits"]) == (70, 214)
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs") == 1


async def test_a_run_the_balance_cannot_cover_is_refused_with_the_balance_and_deficit(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    # No cap: the preview's balance check still applies, since OnePin would refuse with 402.
    sandbox.store.account.monthly_balance = 50
    sandbox.store.account.free_balance = 0

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": LONG})

    text = error_text(result)
    assert "balance of 50 credits does not cover" in text
    assert "min 64, expected 70, max 214 credits" in text
    assert "short by 164 credits at the maximum" in text
    assert "preview_run" in text
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs") == 0


async def test_with_a_cap_a_start_whose_cost_cannot_be_checked_is_not_sent(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    # Every attempt fails: a preview is safe to retry, and the client does.
    preview = {"method": "POST", "path": "/api/v1/workflows/*/runs/preview"}
    sandbox.faults.add({**preview, "drop": "before", "times": None})

    async with Client(make_server(policy=WritePolicy(max_run_credits=500)), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert "could not be checked against this server's cap of 500 credits" in text
    assert "calling start_run again is safe" in text
    assert posts_to(sandbox, RUNS_PATH) == 0


# --- the short wait -----------------------------------------------------------------------------


async def test_start_run_with_a_wait_returns_the_finished_run_with_done_true(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(
                await client.call_tool("start_run", {"workflow_id": COMPLETES, "wait_s": 50})
            )

    assert run["done"] is True
    assert run["status"] == "completed"
    assert run["is_terminal"] is True
    assert "get_run_results" in run["next"]


async def test_start_run_with_a_wait_shorter_than_the_run_returns_done_false(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(
                await client.call_tool("start_run", {"workflow_id": LONG, "wait_s": 2})
            )

    assert run["done"] is False
    assert run["is_terminal"] is False
    assert "Not finished after" in run["next"]
    assert "wait_for_run" in run["next"]


async def test_start_run_without_a_wait_does_not_poll(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    assert "done" not in run
    assert not any(r.path.endswith("/status") for r in sandbox.requests)


async def test_start_run_refuses_a_wait_beyond_fifty_seconds(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES, "wait_s": 51})

    assert "wait_s" in error_text(result)
    assert len(sandbox.requests) == 0
