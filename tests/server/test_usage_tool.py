"""get_usage: the workspace's spend over 30/60/90 days in one call, by language or by period,
adding up with OnePin's own usage figures and with the runs behind them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox

from .conftest import error_text, structured

pytestmark = pytest.mark.anyio


async def usage(client: Client, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool("get_usage", arguments))


async def test_the_last_30_days_by_language_is_one_call_whose_rows_add_up(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = len(sandbox.requests)
    report = await usage(mcp_client)

    by_language = await api.get_usage_by_language(range="30d")
    assert report["days"] == 30
    assert report["by"] == "language"
    assert report["credits"] > 0
    assert report["credits"] == by_language.total_credits
    rows = report["rows"]
    assert sum(row["credits"] for row in rows) + report["untagged_credits"] == report["credits"]
    assert [row["credits"] for row in rows] == sorted(
        (row["credits"] for row in rows), reverse=True
    )
    assert {row["key"] for row in rows} == {item.locale_code for item in by_language.languages}
    tagged = (report["credits"] - report["untagged_credits"]) / report["credits"]
    assert abs(sum(row["share"] for row in rows) - tagged) < 0.001
    # One tool call; the summary and the languages are read side by side.
    paths = {r.path for r in sandbox.requests[before:]}
    assert paths == {"/api/v1/usage/summary", "/api/v1/usage/by-language"}


@pytest.mark.parametrize("by", ["day", "week", "month"])
async def test_periods_add_up_to_the_window_and_start_on_their_first_day(
    mcp_client: Client, api: OnePinClient, by: str
) -> None:
    report = await usage(mcp_client, days=90, by=by)

    summary = await api.get_usage_summary(range="90d")
    assert report["credits"] == sum(day.credits for day in summary.daily or [])
    assert sum(row["credits"] for row in report["rows"]) == report["credits"]
    assert sum(row["runs"] for row in report["rows"]) == report["runs"]["total"]
    starts = [date.fromisoformat(row["key"]) for row in report["rows"]]
    assert starts == sorted(starts)
    if by == "week":
        assert all(start.weekday() == 0 for start in starts)
    if by == "month":
        assert all(start.day == 1 for start in starts)
    assert all(row["credits"] or row["runs"] for row in report["rows"])


async def test_a_longer_window_counts_at_least_as_much(mcp_client: Client) -> None:
    totals = [(await usage(mcp_client, days=days))["runs"]["total"] for days in (30, 60, 90)]
    assert totals == sorted(totals)


async def test_the_report_is_in_the_timezone_asked_for(mcp_client: Client) -> None:
    report = await usage(mcp_client, by="day", timezone="Asia/Tokyo")

    assert report["timezone"] == "Asia/Tokyo"
    assert report["start"].endswith("+09:00") or report["start"].endswith("Z")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [({"days": 45}, "days"), ({"by": "year"}, "by"), ({"timezone": "Mars/Olympus"}, "timezone")],
)
async def test_bad_arguments_are_refused_with_the_argument_named(
    mcp_client: Client, arguments: dict[str, Any], named: str
) -> None:
    result = await mcp_client.call_tool("get_usage", arguments)

    assert result.is_error
    assert named in error_text(result)
