"""Start recovery through real processes and sockets.

OnePin is the sandbox as its own process on a loopback port, run as users run it: at `--speed 10`
(its clock gains nine seconds on the host's every second) or on `--manual-clock` (months away
from the host's date). The server is `python -m onepin_mcp` over stdio, talking to it over that
socket on its real clock. A start whose answer is lost must come back as the run it created,
told apart by OnePin's run numbers whatever the two clocks say; a start that OnePin processes
after the server's attempt timed out must be found by the server looking again, or, when it
appears later still, reported as unknown with advice that leads to exactly one run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, TextContent

from onepin_mcp.sandbox import seed
from tests.support.advice import invites_a_second_start
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import stdio_params

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID
RUNS_PATH = f"/api/v1/workflows/{COMPLETES}/runs"
# Real seconds: a server start, a few calls, and up to 10 s of the server looking again.
DEADLINE_S = 60
# Short enough that a start held by a late fault times out at once.
REQUEST_TIMEOUT_S = "0.5"


@pytest.fixture(scope="module")
def speed_10() -> Iterator[ServedSandbox]:
    served = start_sandbox("--speed", "10")
    yield served
    stop_sandbox(served)


@pytest.fixture(scope="module")
def manual_clock() -> Iterator[ServedSandbox]:
    served = start_sandbox("--manual-clock")
    yield served
    stop_sandbox(served)


def server_params(onepin: ServedSandbox, home: Path) -> StdioServerParameters:
    return stdio_params(
        home,
        env={
            "ONEPIN_BASE_URL": onepin.base_url,
            "ONEPIN_API_KEY": onepin.key,
            "ONEPIN_MCP_REQUEST_TIMEOUT_S": REQUEST_TIMEOUT_S,
        },
    )


def runs_of(onepin: ServedSandbox) -> tuple[int, list[dict[str, Any]]]:
    """The workflow's run count and newest runs, read straight from OnePin."""
    response = httpx.get(
        f"{onepin.base_url}{RUNS_PATH}",
        headers={"Authorization": f"Bearer {onepin.key}"},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    return int(body["pagination"]["total"]), list(body["data"])


def skew_s(onepin: ServedSandbox) -> float:
    """How far the sandbox's clock is ahead of the host's, in seconds."""
    raw = onepin.control("GET", "/_sandbox/clock").json()["data"]["now"]
    sandbox_now = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return (sandbox_now - datetime.now(timezone.utc)).total_seconds()


def start_posts(onepin: ServedSandbox) -> list[int]:
    """Statuses of the start requests OnePin saw (0: no answer reached the client)."""
    log = onepin.control("GET", "/_sandbox/requests").json()["data"]
    return [r["status"] for r in log if r["method"] == "POST" and r["path"] == RUNS_PATH]


def fault(onepin: ServedSandbox, **action: Any) -> None:
    rule = {"method": "POST", "path": RUNS_PATH, **action}
    onepin.control("POST", "/_sandbox/faults", json=rule)


def recovered(result: CallToolResult, note: str = "") -> dict[str, Any]:
    assert not result.is_error, (result.content, note)
    run = result.structured_content
    assert run is not None
    assert run["recovered"] is True
    return dict(run)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_start_processed_after_the_server_gave_up_is_found_by_looking_again(
    speed_10: ServedSandbox, tmp_path: Path, mode: str
) -> None:
    # OnePin processes the start 10 sandbox seconds (one real second at speed 10) after it
    # arrived, long after the server's 0.5 s attempt timed out: within the server's looks.
    speed_10.reset()
    total, rows = runs_of(speed_10)
    highest = max(row["run_number"] for row in rows)
    fault(speed_10, late_s=10)

    with anyio.fail_after(DEADLINE_S):
        async with Client(server_params(speed_10, tmp_path), mode=mode) as client:
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})

    run = recovered(result)
    assert run["run_number"] == highest + 1
    assert runs_of(speed_10)[0] == total + 1
    assert start_posts(speed_10) == [0]


# After the test above, on purpose: by then the speed-10 sandbox has run for several seconds, so
# its clock is well over the 30 s ahead of the host's that the clock-based recovery this replaced
# tolerated (the manual clock is months off from the start).
@pytest.mark.parametrize("flavour", ["speed_10", "manual_clock"])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_start_whose_answer_is_dropped_is_recovered_across_processes_whatever_the_clocks(
    request: pytest.FixtureRequest, flavour: str, tmp_path: Path, mode: str
) -> None:
    onepin: ServedSandbox = request.getfixturevalue(flavour)
    onepin.reset()
    total, rows = runs_of(onepin)
    highest = max(row["run_number"] for row in rows)
    fault(onepin, drop="after")

    with anyio.fail_after(DEADLINE_S):
        async with Client(server_params(onepin, tmp_path), mode=mode) as client:
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})

    run = recovered(result, f"OnePin's clock is {skew_s(onepin):+.0f} s off the host's")
    assert run["run_number"] == highest + 1
    total_after, rows_after = runs_of(onepin)
    assert total_after == total + 1
    assert rows_after[0]["id"] == run["id"]
    assert start_posts(onepin) == [0]  # sent once; its answer lost


async def test_following_the_advice_after_a_start_that_appears_late_leads_to_one_run(
    manual_clock: ServedSandbox, tmp_path: Path
) -> None:
    # OnePin's clock stands still while the server looks again, so the late start is not
    # processed in time and the outcome is reported unknown. The agent then does what it is
    # told, literally: waits the advised time (moving OnePin's clock) and calls list_runs, and
    # would call start_run again if any sentence invited it to.
    onepin = manual_clock
    onepin.reset()
    total, rows = runs_of(onepin)
    highest = max(row["run_number"] for row in rows)
    fault(onepin, late_s=30)

    with anyio.fail_after(DEADLINE_S):
        async with Client(server_params(onepin, tmp_path), mode="auto") as client:
            result = await client.call_tool("start_run", {"workflow_id": COMPLETES})
            assert result.is_error
            block = result.content[0]
            assert isinstance(block, TextContent)
            text = block.text
            advised = re.search(r"list_runs with workflow_id=\S+ in (\d+) s", text)
            assert advised is not None, text
            onepin.advance(float(advised.group(1)))
            listed = await client.call_tool("list_runs", {"workflow_id": COMPLETES})
            assert listed.structured_content is not None
            numbers = [row["run_number"] for row in listed.structured_content["items"]]
            if max(numbers) <= highest and invites_a_second_start(text):
                await client.call_tool("start_run", {"workflow_id": COMPLETES})

    assert "The outcome is unknown" in text
    assert f"numbered above #{highest} is this start's run" in text
    assert not invites_a_second_start(text), text
    assert max(numbers) == highest + 1  # the run the answer described, where it said to look
    onepin.advance(3600)
    assert runs_of(onepin)[0] == total + 1
    assert start_posts(onepin) == [0]
