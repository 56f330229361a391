"""The surface is deliberate: a committed snapshot and the README's tool, resource and prompt
tables must match the live server, so a change to a name, description, schema or hint is seen in
review, never by accident. After changing one on purpose, run `python scripts/update_docs.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.types import Prompt, PromptArgument, ResourceTemplate, Tool

from onepin_mcp.api.settings import Settings
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server
from onepin_mcp.surface import (
    PROMPT_TABLE,
    RESOURCE_TABLE,
    TOOL_TABLE,
    list_tools,
    live_surfaces,
    markers,
    prompt_table,
    readme_tables,
    render_readme,
    replace_table,
    resource_table,
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


async def test_the_readme_tables_are_generated_from_the_live_server() -> None:
    full, default = await live_surfaces()
    readme = README.read_text(encoding="utf-8")
    for name, table in readme_tables(full, default).items():
        assert readme == replace_table(readme, table, name), f"README {name} is stale; {REGENERATE}"


def test_the_readme_keeps_the_table_markers_once_each_in_order() -> None:
    readme = README.read_text(encoding="utf-8")
    for name in (TOOL_TABLE, RESOURCE_TABLE, PROMPT_TABLE):
        start, end = markers(name)
        assert readme.count(start) == readme.count(end) == 1, name
        assert readme.index(start) < readme.index(end), name


def test_rendering_replaces_only_the_text_between_each_pair_of_markers() -> None:
    (tool_start, tool_end), (prompt_start, prompt_end) = markers(TOOL_TABLE), markers(PROMPT_TABLE)
    stale = f"a\n{tool_start}\n| old |\n{tool_end}\nb\n{prompt_start}\n{prompt_end}\nc\n"
    rendered = render_readme(stale, {TOOL_TABLE: "| tools |", PROMPT_TABLE: "| prompts |"})
    assert rendered == (
        f"a\n{tool_start}\n| tools |\n{tool_end}\nb\n{prompt_start}\n| prompts |\n{prompt_end}\nc\n"
    )


def test_table_cells_stay_on_one_line_and_escape_what_markdown_would_misread() -> None:
    prompt = Prompt(
        name="p",
        description="Two\n  lines | one pipe.",
        arguments=[
            PromptArgument(name="a", required=True),
            PromptArgument(name="b", required=False),
        ],
    )
    assert prompt_table([prompt]).splitlines()[-1] == (
        "| `p` | `a`, `b` (optional) | Two lines \\| one pipe. |"
    )
    template = ResourceTemplate(name="r", uri_template="x://{id}", description="A <b> `<c>`")
    assert resource_table([template]).splitlines()[-1] == "| `r` | `x://{id}` | A \\<b> `<c>` |"


async def test_every_description_is_short_and_every_parameter_is_described() -> None:
    # Exempt: the two everyday ids, whose listing tools the server's instructions name once,
    # and choices whose values say what they are.
    from onepin_mcp.server import INSTRUCTIONS

    assert "workflow_id: list_workflows" in INSTRUCTIONS
    assert "run_id: list_runs or start_run" in INSTRUCTIONS
    for tool in await _tools(ToolSelection(toolsets=("all",))):
        assert tool.description, tool.name
        assert len(tool.description) <= MAX_DESCRIPTION_CHARS, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            if name in ("workflow_id", "run_id") and "description" not in schema:
                continue
            if "enum" in schema or "enum" in schema.get("items", {}):
                continue
            assert schema.get("description"), f"{tool.name}.{name} has no description"


def test_lean_schemas_drop_generated_titles_and_null_defaults_and_fold_null_into_type() -> None:
    from onepin_mcp.server import lean_schema

    schema = {
        "title": "toolArguments",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "limit": {"title": "Limit", "type": "integer", "default": 20},
            "search": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "order": {"anyOf": [{"enum": ["asc", "desc"], "type": "string"}, {"type": "null"}]},
            "run": {"anyOf": [{"$ref": "#/$defs/Run"}, {"type": "null"}]},
        },
        "required": ["title"],
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "limit": {"type": "integer", "default": 20},
            "search": {"type": ["string", "null"]},
            "order": {"enum": ["asc", "desc", None], "type": ["string", "null"]},
            "run": {"anyOf": [{"$ref": "#/$defs/Run"}, {"type": "null"}]},
        },
        "required": ["title"],
    }


async def test_no_listed_input_schema_carries_a_generated_title() -> None:
    for tool in await _tools(ToolSelection(toolsets=("all",))):
        assert "title" not in tool.input_schema, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert "title" not in schema, f"{tool.name}.{name}"


async def test_an_output_schemas_defs_name_means_one_shape_across_the_surface() -> None:
    # Clients and code generators key types by these names: two shapes under one name would
    # merge or overwrite each other's types. (Roots carry no title, so no root name can clash.)
    shapes: dict[str, dict[str, Any]] = {}
    clashes: set[str] = set()
    roots = 0
    for tool in await _tools(ToolSelection(toolsets=("all",))):
        schema = tool.output_schema
        if schema is None:
            continue
        roots += 1
        assert "title" not in schema, tool.name
        for name, shape in schema.get("$defs", {}).items():
            if shapes.setdefault(name, shape) != shape:
                clashes.add(name)

    assert not clashes, f"one name, several shapes: {sorted(clashes)}"
    assert roots >= 20
