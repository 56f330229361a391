"""list_workflows and get_workflow, through the MCP protocol, against the seeded sandbox."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel
import httpx
import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import (
    NO_WAIT_RETRY,
    SandboxClock,
    ServerFactory,
    error_text,
    sandbox_settings,
    structured,
)

pytestmark = pytest.mark.anyio

UNKNOWN_ID = "0f6c2b8e-4a1d-4c9f-b3e7-000000000000"
SEEDED_WORKFLOWS = 7


# --- list_workflows -------------------------------------------------------------------------------


async def test_list_workflows_gives_compact_rows_with_run_counts(mcp_client: Client) -> None:
    page = structured(await mcp_client.call_tool("list_workflows", {"limit": 100}))
    assert page["total"] == SEEDED_WORKFLOWS
    assert page["next_offset"] is None
    assert "next" not in page
    rows = {row["id"]: row for row in page["items"]}
    tour = rows[seed.WORKFLOW_COMPLETES_ID]
    assert tour["name"] == "Product tour EN+KO"
    assert tour["runs_count"] == 2
    assert tour["run_status_counts"] == {"completed": 2}
    assert tour["last_run_status"] == "completed"
    assert tour["last_run_at"] is not None
    draft = rows[seed.WORKFLOW_DRAFT_ID]
    assert draft["runs_count"] == 0
    assert draft["run_status_counts"] == {}
    assert "last_run_status" not in draft
    assert set(tour) == {
        "id",
        "name",
        "runs_count",
        "run_status_counts",
        "last_run_id",
        "last_run_number",
        "last_run_status",
        "last_run_at",
    }


def runs_lookups(sandbox: Sandbox) -> list[str]:
    """The workflow ids whose runs were listed, one per request, in order."""
    return [
        r.path.split("/")[4]
        for r in sandbox.requests
        if r.method == "GET"
        and r.path.startswith("/api/v1/workflows/")
        and r.path.endswith("/runs")
    ]


async def test_list_workflows_rows_carry_the_latest_runs_id_number_and_status(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    page = structured(await mcp_client.call_tool("list_workflows", {"limit": 100}))
    rows = {row["id"]: row for row in page["items"]}
    # Every state a latest run can be in, read from the sandbox's own records.
    for workflow_id, run_id in [
        (seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID),
        (seed.WORKFLOW_FAILS_ID, seed.RUN_FAILED_ID),
        (seed.WORKFLOW_LONG_ID, seed.RUN_CANCELLED_ID),
        (seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID),
        (seed.WORKFLOW_COURSE_ID, seed.RUN_RUNNING_ID),
        (seed.WORKFLOW_ONBOARDING_ID, seed.RUN_PENDING_ID),
    ]:
        run = sandbox.store.runs[run_id]
        row = rows[workflow_id]
        assert (row["last_run_id"], row["last_run_number"], row["last_run_status"]) == (
            run_id,
            run.run_number,
            run.status,
        ), workflow_id
    assert rows[seed.WORKFLOW_IVR_ID]["last_run_status"] == "paused"
    assert rows[seed.WORKFLOW_ONBOARDING_ID]["last_run_status"] == "pending"
    assert rows[seed.WORKFLOW_LONG_ID]["last_run_number"] == 2
    draft = rows[seed.WORKFLOW_DRAFT_ID]
    assert "last_run_id" not in draft
    assert "last_run_number" not in draft
    assert "note" not in page
    # One lookup per workflow that has runs, none for the draft.
    lookups = runs_lookups(sandbox)
    assert sorted(lookups) == sorted(set(rows) - {seed.WORKFLOW_DRAFT_ID})
    assert all("limit=1" in r.query for r in sandbox.requests if r.path.endswith("/runs"))


async def test_a_run_started_after_the_seed_becomes_the_rows_latest_run(
    mcp_client: Client, api: OnePinClient
) -> None:
    started = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    page = structured(await mcp_client.call_tool("list_workflows", {"search": "Product tour"}))
    [row] = page["items"]
    assert row["last_run_id"] == started.id
    assert row["last_run_number"] == 3
    assert row["last_run_status"] == "pending"


async def test_status_running_lists_workflows_whose_latest_run_is_pending_running_or_paused(
    mcp_client: Client,
) -> None:
    page = structured(
        await mcp_client.call_tool("list_workflows", {"status": "running", "limit": 100})
    )
    active = {row["id"]: (row["last_run_status"], row["last_run_id"]) for row in page["items"]}
    assert active == {
        seed.WORKFLOW_ONBOARDING_ID: ("pending", seed.RUN_PENDING_ID),
        seed.WORKFLOW_COURSE_ID: ("running", seed.RUN_RUNNING_ID),
        seed.WORKFLOW_IVR_ID: ("paused", seed.RUN_PAUSED_ID),
    }
    tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}
    status = tools["list_workflows"].input_schema["properties"]["status"]
    assert "pending, running or paused" in status["description"]


async def test_a_failing_latest_run_lookup_leaves_only_that_row_without_its_run(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add(
        {
            "method": "GET",
            "path": f"/api/v1/workflows/{seed.WORKFLOW_IVR_ID}/runs",
            "status": 503,
            "times": None,
        }
    )
    page = structured(await mcp_client.call_tool("list_workflows", {"limit": 100}))
    rows = {row["id"]: row for row in page["items"]}
    assert len(rows) == SEEDED_WORKFLOWS
    ivr = rows[seed.WORKFLOW_IVR_ID]
    assert "last_run_id" not in ivr
    assert "last_run_number" not in ivr
    assert ivr["last_run_status"] == "paused"  # the listing's own field still stands
    assert rows[seed.WORKFLOW_COURSE_ID]["last_run_id"] == seed.RUN_RUNNING_ID
    assert page["note"].startswith("The latest run of 1 workflow(s) could not be looked up")
    assert "list_runs" in page["note"]
    assert runs_lookups(sandbox).count(seed.WORKFLOW_IVR_ID) == NO_WAIT_RETRY.max_attempts


class InFlightCounter(httpx.AsyncBaseTransport):
    """The sandbox's transport, counting how many requests are in flight at once. Each request
    yields to the event loop before it is handled, so requests sent concurrently overlap."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await anyio.lowlevel.checkpoint()
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


async def test_latest_runs_are_looked_up_concurrently_five_at_a_time(
    sandbox: Sandbox, mode: str
) -> None:
    counter = InFlightCounter(sandbox.transport())
    server = create_server(
        sandbox_settings(sandbox),
        selection=ToolSelection(toolsets=("workflows",)),
        transport=counter,
        retry=NO_WAIT_RETRY,
        clock=SandboxClock(sandbox),
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        page = structured(await client.call_tool("list_workflows", {"limit": 100}))
    # Six seeded workflows have runs: all six looked up, never more than five at once.
    assert sum(1 for row in page["items"] if "last_run_id" in row) == 6
    assert counter.most == 5


async def test_list_workflows_pages_until_next_offset_is_none(mcp_client: Client) -> None:
    first = structured(await mcp_client.call_tool("list_workflows", {"limit": 3}))
    assert first["total"] == SEEDED_WORKFLOWS
    assert len(first["items"]) == 3
    assert first["next_offset"] == 3
    assert "offset=3" in first["next"]

    seen = [row["id"] for row in first["items"]]
    offset = first["next_offset"]
    pages = 1
    while offset is not None:
        page = structured(
            await mcp_client.call_tool("list_workflows", {"limit": 3, "offset": offset})
        )
        seen += [row["id"] for row in page["items"]]
        offset = page["next_offset"]
        pages += 1
    assert pages == 3
    assert page["items"]
    assert "next" not in page
    assert len(seen) == len(set(seen)) == SEEDED_WORKFLOWS


async def test_list_workflows_filters_by_status_search_and_failed_runs(
    mcp_client: Client,
) -> None:
    failed = structured(await mcp_client.call_tool("list_workflows", {"status": "failed"}))
    assert [row["id"] for row in failed["items"]] == [seed.WORKFLOW_FAILS_ID]

    found = structured(await mcp_client.call_tool("list_workflows", {"search": "AUDIOBOOK"}))
    assert [row["id"] for row in found["items"]] == [seed.WORKFLOW_LONG_ID]

    drafts = structured(await mcp_client.call_tool("list_workflows", {"status": "draft"}))
    assert [row["id"] for row in drafts["items"]] == [seed.WORKFLOW_DRAFT_ID]

    never_failed = structured(
        await mcp_client.call_tool("list_workflows", {"has_failed_run": False, "limit": 100})
    )
    assert never_failed["total"] == SEEDED_WORKFLOWS - 1
    assert seed.WORKFLOW_FAILS_ID not in {row["id"] for row in never_failed["items"]}


async def test_list_workflows_sorts_by_name(mcp_client: Client) -> None:
    page = structured(
        await mcp_client.call_tool("list_workflows", {"sort": "name", "order": "asc", "limit": 100})
    )
    names = [row["name"] for row in page["items"]]
    assert names == sorted(names, key=str.lower)
    descending = structured(
        await mcp_client.call_tool(
            "list_workflows", {"sort": "name", "order": "desc", "limit": 100}
        )
    )
    assert [row["name"] for row in descending["items"]] == names[::-1]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "paused"}, "status"),
        ({"sort": "created_at"}, "sort"),
    ],
)
async def test_list_workflows_refuses_out_of_range_arguments_before_calling_onepin(
    mcp_client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str
) -> None:
    text = error_text(await mcp_client.call_tool("list_workflows", arguments))
    assert field in text
    assert len(sandbox.requests) == 0


async def test_a_persistent_outage_is_explained_after_the_retries(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows", "status": 503, "times": None})
    text = error_text(await mcp_client.call_tool("list_workflows", {}))
    assert text.startswith("OnePin answered 503")
    assert "request id" in text
    assert "Try again in a minute" in text
    assert len(sandbox.requests) == NO_WAIT_RETRY.max_attempts


async def test_names_and_descriptions_from_onepin_are_cleaned_of_control_and_bidi_characters(
    mcp_client: Client, api: OnePinClient
) -> None:
    created = await api.create_workflow(
        name="Invoice\u202egnp.exe\x1b[31m red",
        description="Looks\u2066 harmless\x07 but \u202ereads backwards",
    )
    page = structured(await mcp_client.call_tool("list_workflows", {"search": "Invoice"}))
    assert [row["id"] for row in page["items"]] == [created.id]
    assert page["items"][0]["name"] == "Invoicegnp.exe[31m red"

    workflow = structured(await mcp_client.call_tool("get_workflow", {"workflow_id": created.id}))
    assert workflow["name"] == "Invoicegnp.exe[31m red"
    assert workflow["description"] == "Looks harmless but reads backwards"


# --- get_workflow ---------------------------------------------------------------------------------


async def test_get_workflow_summary_lists_nodes_script_and_the_last_run(
    mcp_client: Client,
) -> None:
    workflow = structured(
        await mcp_client.call_tool("get_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    )
    assert workflow["view"] == "summary"
    assert workflow["name"] == "Product tour EN+KO"
    assert workflow["description"] == "Narrated product tour in English with a Korean dub."
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert list(nodes) == ["src-1", "norm-1", "tr-1", "gen-1", "wer-1", "sink-1"]
    assert nodes["tr-1"]["type"] == "operator_translator"
    assert nodes["tr-1"]["target_languages"] == ["ko-kr"]
    assert nodes["wer-1"]["name"] == "Word accuracy"
    assert nodes["wer-1"]["threshold"] == 85
    assert nodes["wer-1"]["max_retries"] == 2
    assert "threshold" not in nodes["gen-1"]
    assert workflow["source_language"] == "en-us"
    assert workflow["script_lines"] == 4
    assert workflow["runs_count"] == 2
    assert workflow["run_status_counts"] == {"completed": 2}
    assert workflow["last_run"]["id"] == seed.RUN_COMPLETED_ID
    assert workflow["last_run"]["status"] == "completed"
    assert "definition" not in workflow
    assert "markdown" not in workflow


async def test_get_workflow_summary_of_a_never_run_draft_asks_for_no_runs(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    workflow = structured(
        await mcp_client.call_tool("get_workflow", {"workflow_id": seed.WORKFLOW_DRAFT_ID})
    )
    assert workflow["runs_count"] == 0
    assert "last_run" not in workflow
    assert workflow["script_lines"] == 0
    assert [node["type"] for node in workflow["nodes"]] == ["source_script"]
    assert not any("/runs" in request.path for request in sandbox.requests)


async def test_get_workflow_definition_is_the_stored_graph(mcp_client: Client) -> None:
    workflow = structured(
        await mcp_client.call_tool(
            "get_workflow", {"workflow_id": seed.WORKFLOW_FAILS_ID, "view": "definition"}
        )
    )
    assert workflow["view"] == "definition"
    assert "nodes" not in workflow
    assert workflow["truncated"] is False
    graph = workflow["definition"]["graph"]
    ids = [node["id"] for node in graph["nodes"]]
    assert ids == ["src-1", "tr-1", "phon-1", "gen-1", "pron-1", "sink-1"]
    pron = graph["nodes"][4]
    assert pron["config"] == {"threshold": 85, "max_retries": 1}
    fail_edge = next(edge for edge in graph["edges"] if edge["sourcePort"] == "fail")
    assert (fail_edge["source"], fail_edge["target"]) == ("pron-1", "gen-1")
    assert workflow["definition"]["execution"]["steps"][0] == "src-1"


async def test_get_workflow_definition_cuts_a_long_script_and_says_so(mcp_client: Client) -> None:
    workflow = structured(
        await mcp_client.call_tool(
            "get_workflow", {"workflow_id": seed.WORKFLOW_COURSE_ID, "view": "definition"}
        )
    )
    assert workflow["truncated"] is True
    script = workflow["definition"]["graph"]["nodes"][0]["config"]["script_text"]
    assert len(script) <= 4000
    assert script.endswith("…")


async def test_get_workflow_markdown_is_the_rendered_pipeline(mcp_client: Client) -> None:
    workflow = structured(
        await mcp_client.call_tool(
            "get_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "view": "markdown"}
        )
    )
    assert workflow["view"] == "markdown"
    assert workflow["markdown"].startswith("# Product tour EN+KO")
    assert "id `wer-1`" in workflow["markdown"]
    assert workflow["truncated"] is False


async def test_an_unknown_workflow_points_to_list_workflows_with_the_request_id(
    mcp_client: Client,
) -> None:
    for view in ("summary", "definition", "markdown"):
        text = error_text(
            await mcp_client.call_tool("get_workflow", {"workflow_id": UNKNOWN_ID, "view": view})
        )
        assert text.startswith("OnePin answered 404")
        assert "Call list_workflows" in text
        assert "request id " in text
        assert "no request id" not in text


async def test_a_malformed_workflow_id_is_refused_without_a_request(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    text = error_text(await mcp_client.call_tool("get_workflow", {"workflow_id": "wf-1"}))
    assert "Invalid argument workflow_id" in text
    assert "list_workflows" in text
    assert len(sandbox.requests) == 0


async def test_get_workflow_refuses_an_unknown_view(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "get_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "view": "graph"}
        )
    )
    assert "view" in text


async def test_the_workflow_tools_are_listed_in_order_as_read_only(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(toolsets=("workflows",)), mode=mode) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == ["list_workflows", "get_workflow"]
    for tool in tools:
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.description
        assert len(tool.description) < 300
