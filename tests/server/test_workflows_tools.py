"""list_workflows and get_workflow, through the MCP protocol, against the seeded sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import NO_WAIT_RETRY, ServerFactory, error_text, structured

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
        "last_run_status",
        "last_run_at",
    }


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
    assert [node["id"] for node in graph["nodes"]] == ["src-1", "tr-1", "gen-1", "pron-1", "sink-1"]
    pron = graph["nodes"][3]
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
