"""The shape every tool answer shares: its text twin is the structured content as compact JSON,
optional fields that are null are left out, and what is left still matches the output schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from mcp import Client
from mcp.types import TextContent

from onepin_mcp.sandbox import seed

pytestmark = pytest.mark.anyio

COMPLETED = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
RUNNING = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_workflows", {"limit": 5}),
    ("get_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID}),
    ("list_runs", {"workflow_id": seed.WORKFLOW_COMPLETES_ID}),
    ("get_run_status", COMPLETED),
    ("get_run_status", RUNNING),
    ("get_run", COMPLETED),
    ("get_run_steps", COMPLETED),
    ("get_run_results", COMPLETED),
    ("get_run_data", {**COMPLETED, "limit": 2}),
    ("get_runs_summary", {"workflow_id": seed.WORKFLOW_COMPLETES_ID}),
]


def _nulls(value: Any, path: str = "") -> list[str]:
    """Paths of every null in a JSON value."""
    if value is None:
        return [path or "(root)"]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _nulls(item, f"{path}[{i}]")]
    return []


def _required_nullable(schema: dict[str, Any]) -> set[str]:
    """Names of required properties anywhere in the schema that admit null: the only places a
    null may still appear (a null `next_offset` means "no more")."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            required = set(node.get("required", []))
            for name, sub in node.get("properties", {}).items():
                if name in required and "null" in json.dumps(sub):
                    names.add(name)
            for sub in node.values():
                visit(sub)
        elif isinstance(node, list):
            for sub in node:
                visit(sub)

    visit(schema)
    return names


@pytest.mark.parametrize(
    ("tool", "arguments"), CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CALLS)]
)
async def test_answers_are_compact_and_carry_no_empty_optional_fields(
    mcp_client: Client, tool: str, arguments: dict[str, Any]
) -> None:
    listed = {t.name: t for t in (await mcp_client.list_tools()).tools}
    result = await mcp_client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    structured = result.structured_content
    assert structured is not None

    [content] = result.content
    assert isinstance(content, TextContent)
    assert json.loads(content.text) == structured
    assert content.text == json.dumps(structured, separators=(",", ":"), ensure_ascii=False)

    schema = listed[tool].output_schema
    assert schema is not None
    jsonschema.validate(structured, schema)
    allowed = _required_nullable(schema)
    stray = [p for p in _nulls(structured) if p.rsplit(".", 1)[-1].split("[")[0] not in allowed]
    assert stray == [], f"{tool} answered nulls for optional fields: {stray}"
