"""wait_for_run through the MCP protocol, in both eras, on sandbox time.

The server sleeps on `SandboxClock`, which moves the sandbox's manual clock instead of waiting:
a wait over minutes of a run takes no real time, and every pause is on record
(`sandbox_clock.slept`). The cancellation tests use a clock whose sleep really blocks, so that
the call can be abandoned while the server is waiting.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
import anyio.lowlevel
import pytest
from mcp import Client, MCPError

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server
from onepin_mcp.tools.runs import DEFAULT_WAIT_S
from onepin_mcp.watch import PollSchedule

from .conftest import (
    NO_WAIT_RETRY,
    GateClock,
    SandboxClock,
    ServerFactory,
    error_text,
    sandbox_settings,
    structured,
)

pytestmark = pytest.mark.anyio

RUNNING = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
Notification = tuple[float, float | None, str | None]


def status_polls(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.method == "GET" and r.path.endswith("/status"))


class Progress:
    """A progress_callback that keeps every notification."""

    def __init__(self) -> None:
        self.seen: list[Notification] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- waiting to the end ---------------------------------------------------------------------------


async def test_waiting_for_a_finished_run_returns_at_once(
    mcp_client: Client, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run",
                {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID},
            )
        )
    assert result["done"] is True
    assert result["status"] == "failed"
    assert result["waited_s"] == 0
    assert "get_run_steps with failed_only=true" in result["next"]
    assert status_polls(sandbox) == 1
    assert sandbox_clock.slept == []


async def test_a_wait_returns_the_terminal_state_within_one_poll_of_the_end(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": run.id}
            )
        )
    returned_at = sandbox.clock.now()
    assert result["done"] is True
    assert result["status"] == "completed"
    assert result["progress"]["percent"] == 100
    late_s = (returned_at - parse_time(result["completed_at"])).total_seconds()
    # The run ended during the last pause; the poll right after it saw the end and returned.
    assert 0 <= late_s <= sandbox_clock.slept[-1] <= PollSchedule().max_s
    assert result["waited_s"] == pytest.approx(sum(sandbox_clock.slept), abs=0.05)
    assert status_polls(sandbox) == len(sandbox_clock.slept) + 1


async def test_progress_notifications_strictly_increase_carry_totals_and_say_the_state(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    progress = Progress()
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run",
                {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": run.id},
                progress_callback=progress,
            )
        )
    seen = progress.seen
    values = [value for value, _, _ in seen]
    assert all(a < b for a, b in itertools.pairwise(values)), values
    total = int(result["progress"]["nodes"].split("/")[1])
    assert total
    assert all(t == total for _, t, _ in seen)
    assert seen[0] == (0, total, f"pending: 0/{total} nodes, 0 steps")
    assert seen[1][2] == f"running: 0/{total} nodes, 0 steps"  # status moved, count did not
    assert 0 < seen[1][0] < 1
    assert seen[-1][0] == total
    assert seen[-1][2] is not None
    assert seen[-1][2].startswith(f"completed: {total}/{total} nodes")
    # Only changes were sent: far fewer notifications than polls.
    assert len(seen) < status_polls(sandbox)
    assert len({message for _, _, message in seen}) == len(seen)


async def test_without_a_progress_callback_the_wait_still_returns_the_end(
    mcp_client: Client, api: OnePinClient
) -> None:
    run = await api.start_run(seed.WORKFLOW_FAILS_ID)
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run", {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": run.id}
            )
        )
    assert (result["done"], result["status"]) == (True, "failed")


# --- timeouts and pauses --------------------------------------------------------------------------


async def test_waiting_past_the_timeout_returns_the_state_with_done_false_and_a_hint(
    mcp_client: Client, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    with anyio.fail_after(5):
        result = structured(await mcp_client.call_tool("wait_for_run", RUNNING))
    assert result["done"] is False
    assert result["status"] == "running"
    assert result["is_terminal"] is False
    assert result["waited_s"] == DEFAULT_WAIT_S < 60  # under the common client limit
    assert sum(sandbox_clock.slept) == pytest.approx(DEFAULT_WAIT_S)
    assert "call wait_for_run again" in result["next"]
    assert f"{result['progress']['percent']}% done" in result["next"]
    # Backed off while the run was quiet: far fewer polls than one every 2 s.
    assert status_polls(sandbox) == len(sandbox_clock.slept) + 1 < DEFAULT_WAIT_S / 2


async def test_a_caller_set_timeout_is_honoured_on_the_clock(
    mcp_client: Client, sandbox_clock: SandboxClock
) -> None:
    with anyio.fail_after(5):
        result = structured(await mcp_client.call_tool("wait_for_run", {**RUNNING, "timeout_s": 7}))
    assert (result["done"], result["waited_s"]) == (False, 7)
    assert sum(sandbox_clock.slept) == pytest.approx(7)


async def test_waiting_for_a_paused_run_stops_at_once_with_the_reason(
    mcp_client: Client, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    progress = Progress()
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run",
                {"workflow_id": seed.WORKFLOW_IVR_ID, "run_id": seed.RUN_PAUSED_ID},
                progress_callback=progress,
            )
        )
    assert result["done"] is False
    assert result["status"] == "paused"
    assert result["pause_reason"] == "user"
    assert "waiting will not finish it" in result["next"]
    assert "resume_run" in result["next"]
    assert sandbox_clock.slept == []
    assert status_polls(sandbox) == 1
    steps_done = result["progress"]["steps"].split("/")[0]
    assert [message for _, _, message in progress.seen] == [
        f"paused (user): {result['progress']['nodes']} nodes, {steps_done} steps"
    ]


async def test_a_run_paused_during_the_wait_ends_the_wait_with_the_reason(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    sandbox.advance(5)  # running, in the middle of a step
    await api.pause_run(seed.WORKFLOW_LONG_ID, run.id)  # takes effect when the step ends
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run",
                {"workflow_id": seed.WORKFLOW_LONG_ID, "run_id": run.id, "timeout_s": 600},
            )
        )
    assert (result["done"], result["status"], result["pause_reason"]) == (False, "paused", "user")
    assert 0 < result["waited_s"] < 600


@pytest.mark.parametrize("timeout_s", [0.5, 601])
async def test_wait_for_run_refuses_a_timeout_out_of_range(
    mcp_client: Client, sandbox: Sandbox, timeout_s: float
) -> None:
    text = error_text(
        await mcp_client.call_tool("wait_for_run", {**RUNNING, "timeout_s": timeout_s})
    )
    assert "timeout_s" in text
    assert len(sandbox.requests) == 0


async def test_waiting_for_an_unknown_run_points_to_list_runs(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "wait_for_run",
            {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_COMPLETED_ID},
        )
    )
    assert text.startswith("OnePin answered 404")
    assert f"Call list_runs with workflow_id={seed.WORKFLOW_COURSE_ID}" in text


async def test_the_description_states_the_bounds(make_server: ServerFactory) -> None:
    async with Client(make_server(toolsets=("runs",))) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "wait_for_run")
    timeout = tool.input_schema["properties"]["timeout_s"]
    assert (timeout["default"], timeout["minimum"], timeout["maximum"]) == (50, 1, 600)
    assert "60 s" in timeout["description"]


# --- cancellation ---------------------------------------------------------------------------------


@pytest.fixture
def gate_clock(sandbox: Sandbox) -> GateClock:
    return GateClock(sandbox)


@pytest.fixture
async def gated_client(sandbox: Sandbox, gate_clock: GateClock, mode: str) -> AsyncIterator[Client]:
    server = create_server(
        sandbox_settings(sandbox),
        selection=ToolSelection(toolsets=("all",)),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=gate_clock,
    )
    async with Client(server, mode=mode) as client:
        yield client


async def _prove_polling_stopped(client: Client, sandbox: Sandbox, clock: GateClock) -> None:
    """After the server's handler was cancelled in its sleep: open the gate (a handler that had
    survived would wake and poll now), let the server run, and check the log did not grow."""
    polls = status_polls(sandbox)
    await clock.cancelled.wait()
    clock.gate.set()
    for _ in range(20):
        await anyio.lowlevel.checkpoint()
    await client.list_tools()  # a full round trip through the server after the gate opened
    assert clock.woke == 0
    assert status_polls(sandbox) == polls == 1


async def test_a_client_timeout_stops_the_servers_polling(
    gated_client: Client, sandbox: Sandbox, gate_clock: GateClock
) -> None:
    with anyio.fail_after(5):
        with pytest.raises(MCPError):
            await gated_client.call_tool("wait_for_run", RUNNING, read_timeout_seconds=0.2)
        assert gate_clock.asleep.is_set()
        await _prove_polling_stopped(gated_client, sandbox, gate_clock)


async def test_cancelling_the_call_stops_the_servers_polling(
    gated_client: Client, sandbox: Sandbox, gate_clock: GateClock
) -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await gated_client.call_tool("wait_for_run", RUNNING)

            tg.start_soon(call)
            await gate_clock.asleep.wait()
            tg.cancel_scope.cancel()  # the caller gives up: notifications/cancelled
        await _prove_polling_stopped(gated_client, sandbox, gate_clock)
