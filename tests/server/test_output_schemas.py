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
from onepin_mcp.sandbox import Sandbox
from onepin_mcp.server import create_server, lean_output_schema
from onepin_mcp.surface import list_tools
from tests.support.tool_tour import tour_every_tool

pytestmark = pytest.mark.anyio


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

    await tour_every_tool(checked.call, sandbox.advance)

    assert set(checked.answers) == {tool.name for tool in tools}, "a tool went unchecked"
    assert sum(checked.answers.values()) == 57


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
