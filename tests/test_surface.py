"""The tool surface is deliberate: a committed snapshot and the README's table must match the
live server, so a change to a name, description, schema or hint is seen in review, never by
accident. After changing a tool on purpose, run `python scripts/update_docs.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp.types import Tool

from onepin_mcp.config import Settings
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server
from onepin_mcp.surface import (
    TABLE_END,
    TABLE_START,
    list_tools,
    markdown_table,
    replace_table,
    snapshot,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "tool_surface.json"
README = ROOT / "README.md"
REGENERATE = "run `python scripts/update_docs.py` if the change is intended"
# A description is read by the model on every turn: it says what, when and limits, no more.
MAX_DESCRIPTION_CHARS = 400


async def _tools(selection: ToolSelection) -> list[Tool]:
    return await list_tools(create_server(Settings(), selection=selection))


async def test_the_tool_surface_matches_the_committed_snapshot() -> None:
    live = snapshot(await _tools(ToolSelection(toolsets=("all",))))
    committed = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert [t["name"] for t in live] == [t["name"] for t in committed], REGENERATE
    for now, then in zip(live, committed, strict=True):
        assert now == then, f"tool {now['name']} changed; {REGENERATE}"


async def test_the_readme_tool_table_is_generated_from_the_live_server() -> None:
    full = await _tools(ToolSelection(toolsets=("all",)))
    default = await _tools(ToolSelection())
    readme = README.read_text(encoding="utf-8")
    expected = replace_table(readme, markdown_table(full, {t.name for t in default}))
    assert readme == expected, f"README tool table is stale; {REGENERATE}"


def test_the_readme_keeps_the_table_markers() -> None:
    readme = README.read_text(encoding="utf-8")
    assert readme.index(TABLE_START) < readme.index(TABLE_END)


async def test_every_description_is_short_and_every_parameter_is_described() -> None:
    for tool in await _tools(ToolSelection(toolsets=("all",))):
        assert tool.description, tool.name
        assert len(tool.description) <= MAX_DESCRIPTION_CHARS, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"


def test_lean_schemas_drop_generated_titles_and_null_defaults_but_keep_names() -> None:
    from onepin_mcp.server import lean_schema

    schema = {
        "title": "toolArguments",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "limit": {"title": "Limit", "type": "integer", "default": 20},
            "search": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["title"],
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "limit": {"type": "integer", "default": 20},
            "search": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["title"],
    }


async def test_no_listed_input_schema_carries_a_generated_title() -> None:
    for tool in await _tools(ToolSelection(toolsets=("all",))):
        assert "title" not in tool.input_schema, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert "title" not in schema, f"{tool.name}.{name}"
