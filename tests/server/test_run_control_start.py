"""start_run made safe and affordable: sent at most once when its answer is lost, previewed
against the budget cap and the balance first, and optionally waited on for a short while."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunListItem
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.state import WritePolicy
from onepin_mcp.writes.start import RunsBefore
from tests.support.advice import invites_a_second_start

from .conftest import (
    NO_WAIT_RETRY,
    SandboxClock,
    ServerFactory,
    error_text,
    sandbox_settings,
    structured,
)

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID  # costs 1 credit at most
LONG = seed.WORKFLOW_LONG_ID  # 64 / 70 / 214 credits, no run active
RUNS_PATH = f"/api/v1/workflows/{COMPLETES}/runs"
ANY_START = {"method": "POST", "path": "/api/v1/workflows/*/runs"}
# Long enough for any real call to finish, short enough to fail a broken test quickly.
REAL_BOUND_S = 20


def posts_to(sandbox: Sandbox, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.path == path)


async def call(client: Client, tool: str, arguments: dict[str, object]) -> CallToolResult:
    with anyio.fail_after(REAL_BOUND_S):
        return await client.call_tool(tool, arguments)


class SkewedClock(SandboxClock):
    """The server's clock, `skew_s` off OnePin's: a host whose clock is wrong."""

    def __init__(self, sandbox: Sandbox, skew_s: float) -> None:
        super().__init__(sandbox)
        self.skew_s = skew_s

    def now(self) -> float:
        return super().now() + self.skew_s


class HookedClock(SandboxClock):
    """A clock that lets something happen at OnePin while the server sleeps."""

    def __init__(self, sandbox: Sandbox, meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(sandbox)
        self.meanwhile = meanwhile

    async def sleep(self, seconds: float) -> None:
        await self.meanwhile()
        await super().sleep(seconds)


def server_on(
    sandbox: Sandbox, clock: SandboxClock, settings: Settings | None = None
) -> OnePinServer:
    return create_server(
        settings or sandbox_settings(sandbox),
        selection=ToolSelection(),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=clock,
    )


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


@pytest.mark.parametrize("skew_s", [-600.0, 600.0], ids=["host-10-min-behind", "host-10-min-ahead"])
async def test_a_lost_start_is_recovered_whatever_the_host_clock_says(
    mode: str, api: OnePinClient, sandbox: Sandbox, skew_s: float
) -> None:
    # The server's clock is ten minutes off OnePin's: the run is told apart by OnePin's run
    # numbers and ids, so recovery doesn't depend on the two clocks agreeing.
    before = await api.list_runs(COMPLETES)
    sandbox.faults.add({**ANY_START, "drop": "after"})

    server = server_on(sandbox, SkewedClock(sandbox, skew_s))
    async with Client(server, mode=mode) as client:
        run = structured(await call(client, "start_run", {"workflow_id": COMPLETES}))

    assert run["recovered"] is True
    assert run["run_number"] == max(r.run_number or 0 for r in before.items) + 1
    after = await api.list_runs(COMPLETES)
    assert (after.total or 0) == (before.total or 0) + 1
    assert after.items[0].id == run["id"]


@pytest.mark.parametrize("late_s", [5, 30, 120, None], ids=lambda s: f"late-{s}")
async def test_an_agent_that_follows_every_piece_of_advice_literally_gets_exactly_one_run(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox, late_s: int | None
) -> None:
    # The start times out at the client; OnePin creates the run `late_s` seconds later (within
    # the server's own looks, within the wait it advises, after it, or never: None drops the
    # request unprocessed). The agent does exactly what each answer says: waits and calls
    # list_runs when told, and calls start_run again whenever an answer invites it to.
    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    highest = max(r.run_number or 0 for r in (await api.list_runs(COMPLETES)).items)
    before = (await api.list_runs(COMPLETES)).total or 0
    fault = {"late_s": late_s} if late_s is not None else {"drop": "before"}
    sandbox.faults.add({**ANY_START, **fault})

    async with Client(make_server(settings=settings), mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})
        starts = 1
        text = error_text(result) if result.is_error else ""
        found = not result.is_error or await follow_list_runs_advice(client, sandbox, text, highest)
        if not found and invites_a_second_start(text):
            starts += 1
            await call(client, "start_run", {"workflow_id": COMPLETES})

    sandbox.advance(3600)  # long after any late request; the next read processes it
    created = ((await api.list_runs(COMPLETES)).total or 0) - before
    assert created == (0 if late_s is None else 1), text
    assert starts == 1, text
    if result.is_error:
        assert "The outcome is unknown" in text
        assert f"numbered above #{highest} is this start's run" in text
    else:
        assert structured(result)["recovered"] is True


async def follow_list_runs_advice(
    client: Client, sandbox: Sandbox, text: str, highest: int
) -> bool:
    """Do what the answer says about list_runs (wait first if it says how long); return
    whether a run numbered above the highest before the start is listed."""
    if "list_runs" not in text:
        return False
    advised = re.search(r"list_runs with workflow_id=\S+ in (\d+) s", text)
    if advised is not None:
        sandbox.advance(float(advised.group(1)))
    listed = structured(await call(client, "list_runs", {"workflow_id": COMPLETES}))
    return any((row.get("run_number") or 0) > highest for row in listed["items"])


async def test_a_start_dropped_before_processing_is_reported_unknown_without_inviting_another(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "drop": "before"})

    async with Client(make_server(), mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert text.startswith("The connection to OnePin was lost before it answered start_run")
    assert "after 10 s of looking" in text
    assert "The outcome is unknown" in text
    assert f"list_runs with workflow_id={COMPLETES} in 60 s" in text
    assert not invites_a_second_start(text), text
    assert posts_to(sandbox, RUNS_PATH) == 1
    assert (await api.list_runs(COMPLETES)).total == before


async def test_a_start_that_times_out_before_onepin_handles_it_is_reported_as_unknown(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # In process, the client's deadline cancels the request while the fault's latency holds it,
    # so OnePin never handles it: the tool must find no run and say so, not invent one.
    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "latency_ms": 5000})

    async with Client(make_server(settings=settings), mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert text.startswith("OnePin did not answer start_run in time")
    assert "The outcome is unknown" in text
    assert not invites_a_second_start(text), text
    assert (await api.list_runs(COMPLETES)).total == before


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_to_a_start_is_treated_as_a_lost_answer(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox, status: int
) -> None:
    # A gateway's 502/504 or OnePin's own 500 doesn't say whether the run was created: the
    # run is looked for, and the answer never calls another start safe.
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, "status": status})

    async with Client(make_server(), mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert text.startswith(f"OnePin answered {status} ")
    assert "does not say whether the run was started" in text
    assert "The outcome is unknown" in text
    assert not invites_a_second_start(text), text
    assert (await api.list_runs(COMPLETES)).total == before


@pytest.mark.parametrize(
    "fault",
    [
        # The run is created, then its answer dribbles out past the client's deadline.
        {"slow_body_ms": 5000},
        # OnePin takes the request, the client's attempt times out, and the run is created 5 s
        # later: the first look finds nothing, a later one (the clock's sleeps move OnePin's
        # time) finds the run.
        {"late_s": 5},
    ],
    ids=["answered-late", "processed-late"],
)
async def test_a_start_whose_answer_came_too_late_is_recovered(
    make_server: ServerFactory,
    mode: str,
    api: OnePinClient,
    sandbox: Sandbox,
    fault: dict[str, Any],
) -> None:
    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    before = (await api.list_runs(COMPLETES)).total or 0
    sandbox.faults.add({**ANY_START, **fault})

    async with Client(make_server(settings=settings), mode=mode) as client:
        run = structured(await call(client, "start_run", {"workflow_id": COMPLETES}))

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
        result = await call(client, "start_run", {"workflow_id": workflow})

    text = error_text(result)
    assert f"{seed.RUN_PAUSED_ID} (run #" in text
    assert "was already active before this start and still is" in text
    assert "so OnePin most likely refused this start" in text
    assert "resume_run" in text
    assert not invites_a_second_start(text), text
    active = await api.list_runs(workflow, status=["pending", "running", "paused"])
    assert [r.id for r in active.items] == [seed.RUN_PAUSED_ID]


async def test_a_lost_start_whose_runs_could_not_be_read_beforehand_claims_nothing(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # Listing the runs fails (every retry), so there is no picture from before the start; the
    # start itself goes through but its answer is lost. The new run can't be told from the old
    # ones by OnePin's data, so none is claimed, and no second start is invited.
    sandbox.faults.add({"method": "GET", "path": RUNS_PATH, "status": 503, "times": None})
    sandbox.faults.add({**ANY_START, "drop": "after"})

    async with Client(make_server(), mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert "could not be read just before it was sent" in text
    assert "the outcome is unknown" in text
    assert not invites_a_second_start(text), text
    assert posts_to(sandbox, RUNS_PATH) == 1


async def test_when_two_new_runs_appear_after_a_lost_start_both_are_listed_and_neither_claimed(
    mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    # Our start is processed 1 s late; just before that, while the server waits to look again,
    # another caller starts a run of the same workflow and cancels it. The next look sees two
    # new runs, and which is ours can't be told.
    other: list[str] = []

    async def another_caller_starts_and_cancels() -> None:
        if not other:
            run = await api.start_run(COMPLETES)
            await api.cancel_run(COMPLETES, run.id)
            other.append(run.id)

    settings = sandbox_settings(sandbox, request_timeout_s=0.2)
    sandbox.faults.add({**ANY_START, "late_s": 1})
    server = server_on(sandbox, HookedClock(sandbox, another_caller_starts_and_cancels), settings)
    async with Client(server, mode=mode) as client:
        result = await call(client, "start_run", {"workflow_id": COMPLETES})

    text = error_text(result)
    assert "2 new runs of workflow" in text
    assert other[0] in text
    assert "none is claimed" in text
    assert not invites_a_second_start(text), text


def _row(run_id: str, number: int | None, status: str = "completed") -> RunListItem:
    return RunListItem.model_validate({"id": run_id, "status": status, "run_number": number})


def test_a_new_run_is_one_not_seen_before_and_numbered_above_every_run_seen() -> None:
    before = RunsBefore((_row("r3", 3, "failed"), _row("r2", 2), _row("r1", 1)))

    assert [r.id for r in before.new_runs([_row("r4", 4), _row("r3", 3), _row("r2", 2)])] == ["r4"]
    assert before.new_runs([_row("r3", 3), _row("r2", 2)]) == []
    # Numbered at or below the highest seen: an older run beyond the first picture, not new.
    assert before.new_runs([_row("old", 3), _row("r3", 3)]) == []
    # Without numbers, order decides: only rows listed above the first run seen are new.
    assert [r.id for r in before.new_runs([_row("x", None), _row("r3", 3), _row("y", None)])] == [
        "x"
    ]
    # A workflow with no runs before: whatever is listed is new.
    assert [r.id for r in RunsBefore(()).new_runs([_row("a", 1)])] == ["a"]
    assert before.claim() == "a run numbered above #3 is this start's run"


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
    assert "Nothing billable was sent, so no run was started" in text
    assert posts_to(sandbox, RUNS_PATH) == 0


async def test_a_per_call_max_credits_refuses_a_run_that_may_cost_more_before_anything_is_sent(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            refused = await client.call_tool("start_run", {"workflow_id": LONG, "max_credits": 213})
            allowed = structured(
                await client.call_tool("start_run", {"workflow_id": LONG, "max_credits": 214})
            )

    text = error_text(refused)
    assert "this call's max_credits of 213" in text
    assert "min 64, expected 70, max 214 credits" in text
    assert "a higher max_credits allows it" in text
    assert "ONEPIN_MCP_MAX_RUN_CREDITS" not in text
    assert allowed["max_credits"] == 214
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs") == 1


@pytest.mark.parametrize(
    ("server_cap", "per_call", "named"),
    [
        (100, 500, "this server's cap of 100 credits"),  # a caller can't raise the server's cap
        (500, 100, "this call's max_credits of 100"),
        (100, 100, "this server's cap of 100 credits"),
    ],
)
async def test_the_lower_of_the_server_cap_and_the_call_max_credits_applies(
    make_server: ServerFactory,
    mode: str,
    sandbox: Sandbox,
    server_cap: int,
    per_call: int,
    named: str,
) -> None:
    policy = WritePolicy(max_run_credits=server_cap)
    async with Client(make_server(policy=policy), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool(
                "start_run", {"workflow_id": LONG, "max_credits": per_call}
            )

    assert named in error_text(result)
    assert posts_to(sandbox, f"/api/v1/workflows/{LONG}/runs") == 0


async def test_with_a_per_call_max_credits_a_start_whose_cost_cannot_be_checked_is_not_sent(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    preview = {"method": "POST", "path": "/api/v1/workflows/*/runs/preview"}
    sandbox.faults.add({**preview, "drop": "before", "times": None})

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool(
                "start_run", {"workflow_id": COMPLETES, "max_credits": 50}
            )

    text = error_text(result)
    assert "could not be checked against this call's max_credits of 50" in text
    assert posts_to(sandbox, RUNS_PATH) == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, "ten"])
async def test_start_run_refuses_a_max_credits_that_is_not_a_positive_whole_number(
    make_server: ServerFactory, mode: str, sandbox: Sandbox, bad: object
) -> None:
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            result = await client.call_tool(
                "start_run", {"workflow_id": COMPLETES, "max_credits": bad}
            )

    assert result.is_error
    assert "max_credits" in error_text(result)
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
