"""What `tools/list` carries beyond names, descriptions and input schemas is lean: output
schemas hold what validates and types an answer, each control tool lists only the fields its
answers can have, hints don't repeat the title, and an optional parameter is not offered a
`null` that means the same as leaving it out (while an explicit `null` is still accepted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.sandbox import seed

pytestmark = pytest.mark.anyio

START_ONLY = {"recovered", "done", "expected_credits", "max_credits"}
# Keys whose values map names (of fields, of definitions) to schemas.
NAME_MAPS = ("properties", "$defs")


def schema_nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema node of `schema`, the root included; names under `properties` and `$defs`
    are not nodes themselves (a field may well be called `description`)."""
    if isinstance(schema, list):
        for item in schema:
            yield from schema_nodes(item)
    elif isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key in NAME_MAPS and isinstance(value, dict):
                for sub in value.values():
                    yield from schema_nodes(sub)
            else:
                yield from schema_nodes(value)


async def test_only_start_run_lists_and_answers_the_fields_only_a_start_can_tell(
    mcp_client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}

    started = set((tools["start_run"].output_schema or {})["properties"])
    assert started >= START_ONLY
    for name in ("cancel_run", "pause_run", "resume_run"):
        listed = set((tools[name].output_schema or {})["properties"])
        assert not listed & START_ONLY, name
        assert {"id", "status", "changed", "next"} <= listed, name

    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
    unchanged = (await mcp_client.call_tool("cancel_run", ids)).structured_content or {}
    assert unchanged["changed"] is False
    assert not set(unchanged) & START_ONLY, unchanged


async def test_output_schemas_hold_no_descriptions_and_no_type_an_enum_already_says(
    mcp_client: Client,
) -> None:
    checked = 0
    for tool in (await mcp_client.list_tools()).tools:
        for node in schema_nodes(tool.output_schema or {}):
            checked += 1
            assert "description" not in node, (tool.name, node)
            assert node.get("additionalProperties") is not True, (tool.name, node)
            if isinstance(node.get("enum"), list):
                assert "type" not in node, (tool.name, node)
    assert checked > 300


async def test_tool_hints_leave_the_title_to_the_tool(mcp_client: Client) -> None:
    for tool in (await mcp_client.list_tools()).tools:
        assert tool.title, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.annotations.title is None, tool.name


async def test_an_optional_parameter_lists_no_null_yet_an_explicit_null_is_accepted(
    mcp_client: Client,
) -> None:
    optional = 0
    for tool in (await mcp_client.list_tools()).tools:
        required = set(tool.input_schema.get("required", []))
        for name, schema in tool.input_schema.get("properties", {}).items():
            if name in required:
                continue
            optional += 1
            types = schema.get("type")
            assert types != "null", (tool.name, name, schema)
            assert "null" not in (types or []), (tool.name, name, schema)
            assert None not in schema.get("enum", []), (tool.name, name, schema)
    assert optional >= 40

    # A client (or a model) that sends null for an omitted optional parameter is still served.
    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_runs", {"workflow_id": ids["workflow_id"], "status": None, "sort": None}),
        ("get_run_steps", {**ids, "node_id": None, "tail": None}),
        ("get_download_url", {**ids, "node_id": None, "audio_id": None}),
        ("list_workflows", {"search": None, "has_failed_run": None}),
    ]
    for tool, arguments in calls:
        result = await mcp_client.call_tool(tool, arguments)
        assert not result.is_error, (tool, result.content)
