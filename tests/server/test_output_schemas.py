"""The output schemas `tools/list` carries are lean, and every answer still validates against
its tool's schema, checked by a real JSON Schema validator (`jsonschema`, which the SDK itself
uses), not by the views' own pydantic models the schemas were made from."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.types import Tool

from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.server import create_server, lean_output_schema
from onepin_mcp.surface import list_tools

pytestmark = pytest.mark.anyio

W = seed.WORKFLOW_COMPLETES_ID
F = seed.WORKFLOW_FAILS_ID
L = seed.WORKFLOW_LONG_ID


class Checked:
    """Calls tools and validates each structured answer against the listed output schema."""

    def __init__(self, client: Client, tools: list[Tool]) -> None:
        self.client = client
        self.validators = {
            tool.name: Draft202012Validator(
                tool.output_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            for tool in tools
            if tool.output_schema is not None
        }
        self.answers: dict[str, int] = {}

    async def call(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool}({arguments}): {result.content}"
        answer = result.structured_content
        assert answer is not None, tool
        errors = [error.message for error in self.validators[tool].iter_errors(answer)]
        assert not errors, f"{tool}({arguments}) does not match its output schema: {errors}"
        self.answers[tool] = self.answers.get(tool, 0) + 1
        return answer


async def test_every_tool_answers_within_its_listed_output_schema(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    tools = (await mcp_client.list_tools()).tools
    for tool in tools:
        assert tool.output_schema is not None, f"{tool.name} lost its structured output"
        Draft202012Validator.check_schema(tool.output_schema)
    checked = Checked(mcp_client, tools)
    call = checked.call

    await call("get_account")
    await call("list_workflows")
    await call("list_workflows", status="failed", limit=1)
    for view in ("summary", "definition", "markdown"):
        await call("get_workflow", workflow_id=W, view=view)
    definition = (await call("get_workflow", workflow_id=W, view="definition"))["definition"]
    await call("list_runs", workflow_id=W)
    await call("list_runs", workflow_id=W, from_time="2020-01-01T00:00:00Z")
    await call("get_run_status", workflow_id=W, run_id=seed.RUN_COMPLETED_ID)
    await call("get_run_status", workflow_id=F, run_id=seed.RUN_FAILED_ID)
    await call("get_run", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, include_definition=True)
    await call("get_run_steps", workflow_id=F, run_id=seed.RUN_FAILED_ID, include_result=True)
    for view in ("overview", "analysis", "outputs"):
        await call("get_run_results", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, view=view)
    data = await call("get_run_data", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, limit=2)
    clip = data["rows"][0]["cards"][0]["audio_id"]
    await call("get_audio_clip", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, audio_id=clip)
    await call("get_runs_summary", workflow_id=W)
    await call("get_runs_summary", workflow_id=W, from_time="2020-01-01T00:00:00Z")
    await call("get_download_url", workflow_id=W, run_id=seed.RUN_COMPLETED_ID)
    await call("get_download_url", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, audio_id=clip)
    await call("preview_run", workflow_id=W)

    run = await call("start_run", workflow_id=W)
    sandbox.advance(60)
    await call("wait_for_run", workflow_id=W, run_id=run["id"], timeout_s=30)
    await call("cancel_run", workflow_id=W, run_id=run["id"])  # finished: changed=false
    long_run = await call("start_run", workflow_id=L)
    sandbox.advance(5)
    await call("wait_for_run", workflow_id=L, run_id=long_run["id"], timeout_s=1)  # not done
    await call("pause_run", workflow_id=L)
    sandbox.advance(120)
    await call("get_run_status", workflow_id=L, run_id=long_run["id"])  # paused
    await call("resume_run", workflow_id=L)
    await call("cancel_run", workflow_id=L)

    created = await call("create_workflow", name="Schema check")
    await call("update_workflow", workflow_id=created["id"], description="checked")
    await call("update_workflow", workflow_id=W, script_text="One line.", source_language="en-us")
    copy = await call("duplicate_workflow", workflow_id=created["id"])
    await call("duplicate_workflow", workflow_id=W, name="Canary copy", script_text="Two words.")
    await call("validate_workflow", definition=definition)
    await call("validate_workflow", workflow_id=W)
    await call("delete_workflow", workflow_id=copy["id"])
    await call("list_workflow_uploads", workflow_id=L)
    await call("list_node_types")
    await call("list_voices")
    await call("list_templates")
    await call("list_dictionary")
    await call("list_dictionary", language="en-us")
    await call("list_dictionary", search="kube")
    await call("suggest_pronunciation", word="kubectl", language="ja-jp")
    added = await call(
        "add_dictionary_entries",
        language="ja-jp",
        entries=[{"word": "kubectl"}, {"word": "OnePin", "pronunciation": "WUN-pin"}],
    )
    await call(
        "add_dictionary_entries", language="en-us", entries=[{"word": "OnePin"}, {"word": "x1"}]
    )
    entry = added["added"][0]["id"]
    await call("update_dictionary_entry", entry_id=entry, pronunciation="KOOB-c-t-l")
    await call("delete_dictionary_entry", entry_id=entry)
    for by in ("language", "day", "week", "month"):
        await call("get_usage", by=by)

    assert set(checked.answers) == {tool.name for tool in tools}, "a tool went unchecked"
    assert sum(checked.answers.values()) == 56


async def test_listed_output_schemas_carry_no_generated_boilerplate(mcp_client: Client) -> None:
    for tool in (await mcp_client.list_tools()).tools:
        schema = tool.output_schema or {}
        text = json.dumps(schema)
        assert '"additionalProperties": false' not in text, tool.name
        assert '"default":' not in text, tool.name
        # No titles at all (the root's was a class name); "title" as a field name stays.
        assert '"title": "' not in text.replace('"title": {', ""), tool.name
        assert '{"type": "null"}' not in text or '"$ref"' in text, tool.name


def test_lean_output_schemas_inline_single_use_definitions_and_keep_shared_ones() -> None:
    schema = {
        "title": "RunView",
        "description": "A class docstring.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "progress": {"$ref": "#/$defs/Progress", "description": "done over total"},
            "first": {"$ref": "#/$defs/Step"},
            "last": {"anyOf": [{"$ref": "#/$defs/Step"}, {"type": "null"}], "default": None},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "next_offset": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "count": {"type": "integer", "default": 0, "title": "Count"},
        },
        "required": ["progress", "first", "next_offset"],
        "$defs": {
            "Progress": {
                "title": "Progress",
                "description": "Another docstring.",
                "type": "object",
                "properties": {"percent": {"type": "integer", "title": "Percent"}},
            },
            "Step": {"title": "Step", "type": "object", "properties": {}},
        },
    }
    assert lean_output_schema(schema) == {
        # The root is an object, as MCP requires; inside, `properties` says so already.
        "type": "object",
        "$defs": {"Step": {"properties": {}}},
        "properties": {
            # A field's description is for readers of its view, not for the wire.
            "progress": {"properties": {"percent": {"type": "integer"}}},
            "first": {"$ref": "#/$defs/Step"},
            # Left out while null by every view, so never null in an answer.
            "last": {"$ref": "#/$defs/Step"},
            "note": {"type": "string"},
            # Required: a null here means "no more", so it stays nullable.
            "next_offset": {"type": ["integer", "null"]},
            "count": {"type": "integer"},
        },
        "required": ["progress", "first", "next_offset"],
    }


async def test_the_default_tools_list_is_at_most_half_its_former_size() -> None:
    # Not a timing: bytes of what the server lists. Before the lean schemas the default tools'
    # `tools/list` was 58,193 B (42,087 B of output schemas), after their first round 35,334 B
    # (22,212 B); see bench/context_size.py.
    tools = await list_tools(create_server(Settings()))
    listed = json.dumps(
        {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]},
        separators=(",", ":"),
    )
    assert len(listed.encode()) <= 29_000
    outputs = sum(len(json.dumps(t.output_schema, separators=(",", ":"))) for t in tools)
    assert outputs <= 16_000
