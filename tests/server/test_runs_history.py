"""A workflow's history over a time range: list_runs with from_time/to_time, and the credits
get_runs_summary reports, through the MCP protocol against a sandbox holding hundreds of runs.

OnePin can filter neither by time when listing runs nor report credits in its summary, so both
come from reading the run list; these tests check the results against the sandbox's own records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.sandbox.store import Run

from .conftest import error_text, structured

pytestmark = pytest.mark.anyio

WORKFLOW = seed.WORKFLOW_COMPLETES_ID
SPACING = timedelta(hours=3)
HISTORY_RUNS = 300
LINE = "Welcome to the product tour, where every report updates in real time."


async def make_history(sandbox: Sandbox, api: OnePinClient, count: int) -> list[Run]:
    """Start `count` runs of WORKFLOW through the API, one every three hours of sandbox time,
    each with a script of a different length so that their credits differ (1 to 8); the last
    one is left active, so not charged yet. Returns every run of WORKFLOW, newest first."""
    sandbox.store.account.monthly_balance = 1_000_000  # enough for any history
    for i in range(count):
        script = "\n".join([LINE] * (1 + (i * 7) % 30))
        await api.start_run(WORKFLOW, script_text=script, source_language="en-us")
        if i < count - 1:
            sandbox.advance(SPACING.total_seconds())
    runs = sorted(sandbox.store.runs_of(WORKFLOW), key=lambda r: r.created_at, reverse=True)
    assert len({run.credits for run in runs}) > 5
    assert runs[0].credits is None
    return runs


@pytest.fixture
async def history(sandbox: Sandbox, api: OnePinClient) -> list[Run]:
    return await make_history(sandbox, api, HISTORY_RUNS)


def created(runs: Sequence[Run], start: datetime | None, end: datetime | None) -> list[Run]:
    """The oracle: runs created within the bounds (both included), newest first."""
    return [
        run
        for run in runs
        if (start is None or run.created_at >= start) and (end is None or run.created_at <= end)
    ]


def list_requests(sandbox: Sandbox) -> list[str]:
    """The queries of the list-runs requests the sandbox answered, in order."""
    return [
        r.query
        for r in sandbox.requests
        if r.method == "GET" and r.path == f"/api/v1/workflows/{WORKFLOW}/runs"
    ]


def text_bytes(result: CallToolResult) -> int:
    """The size of the answer an agent reads: its text content."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return len(block.text.encode())


async def all_pages(mcp_client: Client, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a listing, following next_offset (bounded)."""
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    for _ in range(20):
        if offset is None:
            return rows
        page = structured(
            await mcp_client.call_tool("list_runs", {**arguments, "offset": offset, "limit": 100})
        )
        assert page["range_complete"] is True
        rows += page["items"]
        offset = page["next_offset"]
    raise AssertionError("the listing never ended")


# --- get_runs_summary: credits --------------------------------------------------------------------


async def test_runs_summary_reports_the_credits_of_the_runs_in_its_range_only(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    now = sandbox.clock.now()
    start, end = now - timedelta(days=20), now - timedelta(days=10)
    in_range = created(history, start, end)
    summary = structured(
        await mcp_client.call_tool(
            "get_runs_summary",
            {"workflow_id": WORKFLOW, "from_time": start.isoformat(), "to_time": end.isoformat()},
        )
    )
    assert summary["total_runs"] == len(in_range) == 81
    assert summary["credits_used"] == sum(run.credits or 0 for run in in_range)
    # Neither the newer runs nor the older ones are in the sum.
    assert summary["credits_used"] < sum(run.credits or 0 for run in history) / 2
    assert "credits_unknown_runs" not in summary
    assert "credits_note" not in summary


async def test_runs_summary_counts_a_run_not_charged_yet_as_zero_and_says_how_many(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    everything = structured(
        await mcp_client.call_tool("get_runs_summary", {"workflow_id": WORKFLOW})
    )
    assert everything["total_runs"] == len(history) == HISTORY_RUNS + 2
    assert everything["credits_used"] == sum(run.credits or 0 for run in history)
    assert everything["credits_unknown_runs"] == 1
    # All 302 runs are read in four pages of 100.
    assert len(list_requests(sandbox)) == 4


async def test_runs_summary_of_an_empty_range_reports_zero_credits_without_listing_runs(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    future = (sandbox.clock.now() + timedelta(days=1)).isoformat()
    summary = structured(
        await mcp_client.call_tool(
            "get_runs_summary", {"workflow_id": WORKFLOW, "from_time": future}
        )
    )
    assert summary["total_runs"] == 0
    assert summary["credits_used"] == 0
    assert list_requests(sandbox) == []


async def test_runs_summary_says_when_its_credit_sum_is_partial(
    mcp_client: Client, sandbox: Sandbox, api: OnePinClient
) -> None:
    runs = await make_history(sandbox, api, 1_050)
    summary = structured(await mcp_client.call_tool("get_runs_summary", {"workflow_id": WORKFLOW}))
    newest = runs[:1_000]
    assert summary["total_runs"] == len(runs)
    assert summary["credits_used"] == sum(run.credits or 0 for run in newest)
    oldest_read = newest[-1].created_at.isoformat()
    assert summary["credits_note"].startswith("Partial:")
    assert f"to_time={oldest_read}" in summary["credits_note"]
    assert len(list_requests(sandbox)) == 10

    listed = structured(
        await mcp_client.call_tool(
            "list_runs", {"workflow_id": WORKFLOW, "to_time": sandbox.clock.now().isoformat()}
        )
    )
    assert listed["range_complete"] is False
    assert listed["total"] == 1_000
    assert f"to_time={oldest_read}" in listed["next"]
    assert "Only the newest 1000 runs were read" in listed["next"]


# --- list_runs over a time range ------------------------------------------------------------------


async def test_the_last_30_days_and_their_cost_take_two_small_calls(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    start = sandbox.clock.now() - timedelta(days=30)
    in_range = created(history, start, None)
    arguments = {"workflow_id": WORKFLOW, "from_time": start.isoformat()}
    summary_result = await mcp_client.call_tool("get_runs_summary", arguments)
    listing_result = await mcp_client.call_tool("list_runs", arguments)
    summary, listing = structured(summary_result), structured(listing_result)

    assert summary["total_runs"] == listing["total"] == len(in_range) == 241
    assert summary["credits_used"] == sum(run.credits or 0 for run in in_range)
    assert [row["id"] for row in listing["items"]] == [run.id for run in in_range[:20]]
    assert listing["range_complete"] is True
    assert listing["next_offset"] == 20
    assert "offset=20" in listing["next"]
    # Each call read three pages of 100 (the third holding the first run before the range).
    assert len(list_requests(sandbox)) == 6
    # Small whatever the history's length: the two answers an agent reads.
    assert text_bytes(summary_result) < 600
    assert text_bytes(listing_result) < 5_000


async def test_list_runs_over_a_range_pages_through_hundreds_of_runs_in_either_order(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    now = sandbox.clock.now()
    start, end = now - timedelta(days=35), now - timedelta(days=2)
    in_range = created(history, start, end)
    assert len(in_range) > 250
    bounds = {"workflow_id": WORKFLOW, "from_time": start.isoformat(), "to_time": end.isoformat()}
    newest_first = await all_pages(mcp_client, bounds)
    assert [row["id"] for row in newest_first] == [run.id for run in in_range]
    oldest_first = await all_pages(mcp_client, {**bounds, "order": "asc"})
    assert [row["id"] for row in oldest_first] == [run.id for run in reversed(in_range)]
    assert {row["credits"] for row in newest_first} == {run.credits for run in in_range}


async def test_list_runs_range_bounds_are_inclusive_and_exact_around_page_boundaries(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    # Each range starts exactly at one run's creation time and ends exactly at another's. Its
    # oldest run is the last of a page of the scan (99, 199), the first of the next (100), or
    # neither (98): the scan must read exactly up to the page holding the first older run.
    for oldest_index in (98, 99, 100, 199):
        requests_before = len(list_requests(sandbox))
        start, end = history[oldest_index].created_at, history[3].created_at
        page = structured(
            await mcp_client.call_tool(
                "list_runs",
                {
                    "workflow_id": WORKFLOW,
                    "from_time": start.isoformat(),
                    "to_time": end.isoformat(),
                    "limit": 100,
                },
            )
        )
        expected = history[3 : oldest_index + 1]
        assert page["total"] == len(expected), oldest_index
        assert page["range_complete"] is True
        assert [row["id"] for row in page["items"]] == [run.id for run in expected[:100]]
        assert page["next_offset"] == (100 if len(expected) > 100 else None)
        pages_read = len(list_requests(sandbox)) - requests_before
        assert pages_read == (oldest_index + 1) // 100 + 1, oldest_index


async def test_list_runs_range_combines_with_the_status_filter(
    mcp_client: Client, sandbox: Sandbox, history: list[Run]
) -> None:
    start = sandbox.clock.now() - timedelta(days=30)
    completed = [run for run in created(history, start, None) if run.status == "completed"]
    page = structured(
        await mcp_client.call_tool(
            "list_runs",
            {"workflow_id": WORKFLOW, "from_time": start.isoformat(), "status": ["completed"]},
        )
    )
    assert page["total"] == len(completed) == 240
    assert [row["id"] for row in page["items"]] == [run.id for run in completed[:20]]
    # The status filter is OnePin's own, sent with every page of the scan.
    assert all("status=completed" in query for query in list_requests(sandbox))


async def test_list_runs_refuses_naive_times_reversed_ranges_and_other_sorts(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    naive = error_text(
        await mcp_client.call_tool(
            "list_runs", {"workflow_id": WORKFLOW, "to_time": "2026-03-01T00:00:00"}
        )
    )
    assert "to_time" in naive
    assert "timezone" in naive

    now = sandbox.clock.now()
    reversed_range = error_text(
        await mcp_client.call_tool(
            "list_runs",
            {
                "workflow_id": WORKFLOW,
                "from_time": now.isoformat(),
                "to_time": (now - timedelta(days=1)).isoformat(),
            },
        )
    )
    assert "is after to_time" in reversed_range

    other_sort = error_text(
        await mcp_client.call_tool(
            "list_runs",
            {"workflow_id": WORKFLOW, "from_time": now.isoformat(), "sort": "completed_at"},
        )
    )
    assert "by created_at only" in other_sort
    assert len(sandbox.requests) == 0
