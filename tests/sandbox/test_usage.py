"""Usage endpoints served from the sandbox's own runs: the figures add up with the runs."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from onepin_mcp.sandbox import ApiKey, Sandbox, seed

from .conftest import BASE_URL
from .test_runs import TERMINAL, run_until, start

pytestmark = pytest.mark.anyio

USAGE = "/api/v1/usage"


def charged_in(sandbox: Sandbox, days: int) -> int:
    """The credits charged for runs created in the last `days` UTC calendar days."""
    now = sandbox.clock.now()
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return sum(run.credits or 0 for run in sandbox.store.runs.values() if run.created_at >= first)


@pytest.mark.parametrize("window", ["30d", "60d", "90d"])
async def test_credits_by_language_and_by_day_add_up_to_the_runs_charged(
    client: httpx.AsyncClient, sandbox: Sandbox, window: str
) -> None:
    # One more run, finished on the sandbox clock, so the latest day has credits too.
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    await run_until(client, sandbox, seed.WORKFLOW_COMPLETES_ID, run["id"], TERMINAL)
    summary = (await client.get(USAGE + "/summary", params={"range": window})).json()["data"]
    by_language = (await client.get(USAGE + "/by-language", params={"range": window})).json()[
        "data"
    ]
    expected = charged_in(sandbox, int(window[:-1]))
    assert expected > 0
    assert sum(day["credits"] for day in summary["daily"]) == expected
    assert len(summary["daily"]) == int(window[:-1])
    assert by_language["total_credits"] == expected
    rows = by_language["languages"]
    assert sum(row["credits"] for row in rows) + by_language["untagged_credits"] == expected
    assert [row["credits"] for row in rows] == sorted(
        (row["credits"] for row in rows), reverse=True
    )
    assert sum(day["runs"] for day in summary["daily"]) == summary["runs"]["total"]
    assert sum(row["characters"] for row in rows) == summary["characters"]["total"]
    assert summary["daily"][-1]["runs"] >= 1
    assert summary["runs"]["total"] == sum(
        summary["runs"][s]
        for s in ("completed", "failed", "cancelled", "running", "pending", "paused")
    )


async def test_the_activity_chart_buckets_cover_their_view_and_total_their_credits(
    client: httpx.AsyncClient,
) -> None:
    for view, count, unit in (
        ("daily", 7, "day"),
        ("weekly", 12, "week"),
        ("monthly", 12, "month"),
    ):
        summary = (await client.get(USAGE + "/summary", params={"activity_view": view})).json()[
            "data"
        ]
        chart = summary["activity"]
        assert (chart["view"], chart["bucket_unit"], len(chart["buckets"])) == (view, unit, count)
        assert chart["total"] == sum(b["credits"] for b in chart["buckets"])
        ends = [b["end"] for b in chart["buckets"][:-1]]
        assert ends == [b["start"] for b in chart["buckets"][1:]], "buckets are contiguous"
        if chart["total"]:
            assert chart["peak"]["value"] == max(b["credits"] for b in chart["buckets"])
        by_language = (
            await client.get(USAGE + "/by-language", params={"activity_view": view})
        ).json()["data"]
        assert by_language["range"] is None
        assert by_language["period"]["start"] == chart["buckets"][0]["start"]
        assert by_language["total_credits"] == chart["total"]


async def test_days_are_local_to_the_requested_timezone(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    utc = (await client.get(USAGE + "/summary")).json()["data"]
    tokyo = (await client.get(USAGE + "/summary", params={"timezone": "Asia/Tokyo"})).json()["data"]
    assert tokyo["timezone"] == "Asia/Tokyo"
    start = datetime.fromisoformat(tokyo["period"]["start"].replace("Z", "+00:00"))
    assert start.hour == 15, "local midnight in Tokyo is 15:00 UTC"
    assert utc["period"]["start"].endswith("T00:00:00Z")


async def test_the_activity_feed_pages_newest_first_with_a_cursor(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    for _ in range(20):
        page = (await client.get(USAGE + "/activity", params=params)).json()
        seen.extend(event["timestamp"] for event in page["data"])
        following = page["pagination"]["next"]
        if following is None:
            break
        params = {"limit": "3", "cursor": httpx.URL(following).params["cursor"]}
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(sandbox.store.runs)
    mine = (
        await client.get(USAGE + "/activity", params={"user_id": seed.TEAMMATE_ID, "limit": 100})
    ).json()["data"]
    assert mine
    assert {e["user"]["id"] for e in mine} == {seed.TEAMMATE_ID}
    invites = (await client.get(USAGE + "/activity", params={"type": "member_invited"})).json()
    assert invites["data"] == []


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/summary", {"range": "7d"}, ["query", "range"]),
        ("/summary", {"activity_view": "hourly"}, ["query", "activity_view"]),
        ("/by-language", {"range": "1y"}, ["query", "range"]),
        ("/activity", {"limit": "0"}, ["query", "limit"]),
        ("/activity", {"limit": "101"}, ["query", "limit"]),
        ("/activity", {"type": "login"}, ["query", "type"]),
    ],
)
async def test_bad_usage_parameters_are_422_naming_them(
    client: httpx.AsyncClient, path: str, params: dict[str, str], loc: list[str]
) -> None:
    response = await client.get(USAGE + path, params=params)
    assert response.status_code == 422
    assert [issue["loc"] for issue in response.json()["detail"]] == [loc]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/summary", {"timezone": "Mars/Olympus"}, "timezone"),
        ("/activity", {"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_an_unknown_timezone_or_cursor_is_a_422_in_the_envelope(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(USAGE + path, params=params)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


async def test_usage_needs_the_workspace_read_scope() -> None:
    reader = "op_live_" + "R" * 32
    other = "op_live_" + "O" * 32
    sandbox = Sandbox(
        manual_clock=True,
        api_keys=[
            ApiKey(reader, scopes=frozenset({"workspace:read"})),
            ApiKey(other, scopes=frozenset({"workflows:read"})),
        ],
    )
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL) as http:
        for path in ("/summary", "/by-language", "/activity"):
            ok = await http.get(USAGE + path, headers={"Authorization": f"Bearer {reader}"})
            assert ok.status_code == 200
            refused = await http.get(USAGE + path, headers={"Authorization": f"Bearer {other}"})
            assert refused.status_code == 403
