"""Toolset `usage` (off by default): what the workspace spent, over the last 30, 60 or 90 days,
by language or by period, from OnePin's usage endpoints (one workflow's runs and their credits
are get_runs_summary's)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from onepin_mcp.api.errors import OnePinError
from onepin_mcp.api.models import UsageRange
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.usage import UsageReport

A = TypeVar("A")
B = TypeVar("B")
_RANGES: dict[int, UsageRange] = {30: "30d", 60: "60d", 90: "90d"}


async def get_usage(
    ctx: Context[AppState, Any],
    days: Literal[30, 60, 90] = 30,
    by: Literal["language", "day", "week", "month"] = "language",
    timezone: Annotated[
        str | None, Field(max_length=64, description="IANA, e.g. Europe/Paris; default UTC")
    ] = None,
) -> UsageReport:
    """The workspace's credits, runs, characters and audio over the last 30, 60 or 90 days,
    split by language or by day, week or month."""
    client = onepin(ctx)
    window = _RANGES[days]
    if by != "language":
        summary = await client.get_usage_summary(range=window, timezone=timezone)
        return UsageReport.of(days, by, summary, None)
    summary, languages = await _both(
        client.get_usage_summary(range=window, timezone=timezone),
        client.get_usage_by_language(range=window, timezone=timezone),
    )
    return UsageReport.of(days, by, summary, languages)


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Two requests at once. A failure is caught inside the task group and the first one raised
    as is after it: the group would wrap it in an ExceptionGroup, which the server's one place
    for wording OnePin failures doesn't unwrap."""
    results: list[Any] = [None, None]
    failures: list[OnePinError] = []

    async def run(index: int, request: Awaitable[Any]) -> None:
        try:
            results[index] = await request
        except OnePinError as error:
            failures.append(error)

    async with anyio.create_task_group() as group:
        group.start_soon(run, 0, first)
        group.start_soon(run, 1, second)
    if failures:
        raise failures[0]
    return results[0], results[1]


TOOLS: tuple[ToolSpec, ...] = (
    read_tool(get_usage, toolset="usage", title="Usage", scopes=("workspace:read",)),
)
