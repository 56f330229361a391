"""wait_for_run through the MCP protocol, and its polling loop driven by sandbox time.

Through the protocol the loop sleeps for real, so those tests use runs that settle at once or a
one-second timeout. The loop itself takes its `sleep` as an argument: given one that moves the
sandbox clock instead, a run of many seconds plays out with no real waiting at all.
"""

from __future__ import annotations

import anyio
import pytest
from mcp import Client

from onepin_mcp.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.tools.runs import POLL_INTERVAL_S, poll_until_settled

from .conftest import error_text, structured

pytestmark = pytest.mark.anyio

RUNNING = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}


def status_polls(sandbox: Sandbox) -> int:
    return sum(1 for request in sandbox.requests if request.path.endswith("/status"))


class SandboxSleep:
    """A `sleep` that moves sandbox time instead of waiting, and records each pause."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.sandbox.advance(seconds)


# --- through the protocol -------------------------------------------------------------------------


async def test_waiting_for_a_finished_run_returns_at_once(
    mcp_client: Client, sandbox: Sandbox
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
    assert result["waited_s"] < 1
    assert "get_run_steps with failed_only=true" in result["next"]
    assert status_polls(sandbox) == 1


async def test_waiting_past_the_timeout_returns_the_state_with_done_false(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    with anyio.fail_after(5):
        result = structured(await mcp_client.call_tool("wait_for_run", {**RUNNING, "timeout_s": 1}))
    assert result["done"] is False
    assert result["status"] == "running"
    assert result["is_terminal"] is False
    assert result["waited_s"] >= 1
    assert "call wait_for_run again" in result["next"]
    assert f"{result['progress']['percent']}% done" in result["next"]
    assert status_polls(sandbox) == 2  # at the start, and once more when time was up


async def test_waiting_for_a_paused_run_stops_at_once_and_says_how_to_resume(
    mcp_client: Client,
) -> None:
    with anyio.fail_after(5):
        result = structured(
            await mcp_client.call_tool(
                "wait_for_run",
                {"workflow_id": seed.WORKFLOW_IVR_ID, "run_id": seed.RUN_PAUSED_ID},
            )
        )
    assert result["done"] is False
    assert result["status"] == "paused"
    assert "waiting will not finish it" in result["next"]
    assert "resume_run" in result["next"]


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


# --- the polling loop, on sandbox time ------------------------------------------------------------


async def test_the_poll_follows_a_run_to_completion_on_sandbox_time(
    api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    sleep = SandboxSleep(sandbox)
    with anyio.fail_after(5):
        state, waited_s = await poll_until_settled(
            lambda: api.get_run_status(seed.WORKFLOW_COMPLETES_ID, run.id),
            timeout_s=120,
            sleep=sleep,
        )
    assert state.status == "completed"
    # The seeded tour takes about 16.5 s of sandbox time: polled every 2 s, it ends within 20 s.
    assert set(sleep.pauses) == {POLL_INTERVAL_S}
    assert 16 <= waited_s <= 20
    assert status_polls(sandbox) == len(sleep.pauses) + 1


async def test_the_poll_gives_up_at_the_timeout_with_the_run_still_going(
    api: OnePinClient, sandbox: Sandbox
) -> None:
    sleep = SandboxSleep(sandbox)
    with anyio.fail_after(5):
        state, waited_s = await poll_until_settled(
            lambda: api.get_run_status(*RUNNING.values()),
            timeout_s=7,
            sleep=sleep,
        )
    assert state.status == "running"
    # The last pause is cut to end at the timeout (less the real time the fetches took).
    assert sleep.pauses[:3] == [2, 2, 2]
    assert len(sleep.pauses) == 4
    assert 0.5 < sleep.pauses[3] <= 1
    assert waited_s >= 7


async def test_the_poll_stops_when_the_run_pauses(api: OnePinClient, sandbox: Sandbox) -> None:
    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    sandbox.advance(5)
    await api.pause_run(seed.WORKFLOW_LONG_ID, run.id)
    sleep = SandboxSleep(sandbox)
    with anyio.fail_after(5):
        state, _ = await poll_until_settled(
            lambda: api.get_run_status(seed.WORKFLOW_LONG_ID, run.id),
            timeout_s=600,
            sleep=sleep,
        )
    assert state.status == "paused"
    assert state.pause_reason == "user"
    assert len(sleep.pauses) < 300  # stopped by the pause, long before the timeout
