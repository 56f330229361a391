"""The fix loop through an MCP client, as an agent would run it: the seeded Release notes failure
fixed with dictionary entries in one round (every rejected take's words from one call), a copy
of Product tour with a new script checked and started in four calls, and the last 30 days' cost
by language in one."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client

from onepin_mcp.sandbox import Sandbox, seed

from .conftest import ServerFactory, structured

pytestmark = pytest.mark.anyio

BOUND_S = 30
NEW_SCRIPT = "Welcome to the spring tour.\nYour dashboard now has dark mode."


class Agent:
    """Calls tools and counts what it wrote."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[str] = []
        self.written = 0

    async def __call__(self, tool: str, **arguments: Any) -> dict[str, Any]:
        self.calls.append(tool)
        self.written += len(json.dumps(arguments, separators=(",", ":"), ensure_ascii=False))
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        return structured(result)


async def english_lines(client: Client, workflow_id: str, run_id: str) -> list[str]:
    data = structured(
        await client.call_tool(
            "get_run_data", {"workflow_id": workflow_id, "run_id": run_id, "language": "en-us"}
        )
    )
    return [
        card["text"] if "text" in card else row["script"]
        for row in data["rows"]
        for card in row["cards"]
    ]


async def test_release_notes_is_fixed_with_dictionary_entries_in_one_round(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    wf, failed = seed.WORKFLOW_FAILS_ID, seed.RUN_FAILED_ID
    async with Client(make_server(toolsets=("all",)), mode=mode) as client:
        agent = Agent(client)
        with anyio.fail_after(BOUND_S):
            steps = await agent("get_run_steps", workflow_id=wf, run_id=failed, failed_only=True)
            [step] = steps["steps"]
            takes = step["rejected"]
            words = sorted({word for take in takes for word in take["words"]})
            [locale] = {take["locale"] for take in takes}
            await agent(
                "add_dictionary_entries",
                language=locale,
                entries=[{"word": word} for word in words],
            )
            rerun = await agent("start_run", workflow_id=wf, wait_s=50)
            after = await agent("get_run_steps", workflow_id=wf, run_id=rerun["id"])
            english_before = await english_lines(client, wf, failed)
            english_after = await english_lines(client, wf, rerun["id"])

    # Every rejected take, with its words and a line_index counted from 0 as everywhere else.
    assert [take["line_index"] for take in takes] == [1, 2, 3]
    assert words == ["Grafana", "Kubernetes", "OAuth", "kubectl"]
    assert all(take["score"] < take["threshold"] for take in takes)
    assert rerun["status"] == "completed"
    pronunciation = [s for s in after["steps"] if s["node_type"] == "validator_pronunciation"]
    assert [s["status"] for s in pronunciation] == ["completed"]  # passed, no retry
    assert english_after == english_before
    assert agent.calls == ["get_run_steps", "add_dictionary_entries", "start_run", "get_run_steps"]


async def test_a_copy_with_a_new_script_is_checked_and_started_in_four_calls(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(toolsets=("all",)), mode=mode) as client:
        agent = Agent(client)
        with anyio.fail_after(BOUND_S):
            rows = (await agent("list_workflows", search="Product tour"))["items"]
            [tour] = [row for row in rows if row["name"] == "Product tour EN+KO"]
            copy = await agent(
                "duplicate_workflow",
                workflow_id=tour["id"],
                name="Product tour, spring",
                script_text=NEW_SCRIPT,
            )
            report = await agent("validate_workflow", workflow_id=copy["id"])
            run = await agent("start_run", workflow_id=copy["id"])

    assert report["valid"] is True
    assert run["status"] in ("pending", "running")
    assert run["workflow_id"] == copy["id"]
    assert len(agent.calls) == 4
    assert agent.written < 500


async def test_the_last_30_days_cost_by_language_is_one_call(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(toolsets=("usage",)), mode=mode) as client:
        agent = Agent(client)
        with anyio.fail_after(BOUND_S):
            report = await agent("get_usage", days=30, by="language")

    assert report["credits"] > 0
    assert {row["key"] for row in report["rows"]} >= {"en-us", "ja-jp", "ko-kr"}
    assert agent.calls == ["get_usage"]
