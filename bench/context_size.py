"""What a model reads: the tool surface and typical answers, in bytes and estimated tokens.

Run: `python bench/context_size.py` (from the project root, in its venv; no network).

Everything runs in process against the sandbox (`Sandbox(manual_clock=True)`), through the MCP
protocol with the SDK's `Client`, so the figures are what clients really receive.

1. Tool surface: `tools/list` for the default tool set and for all toolsets; what a model reads
   of it is each tool's name, description and input schema, as compact JSON (UTF-8 bytes;
   `onepin_mcp.surface.model_view_bytes`). Per tool: the share of description vs schema, and how
   much of the schema is pydantic boilerplate: `title` keys, `anyOf: [X, {"type": "null"}]`
   wrappers (measured as the bytes saved by keeping X alone) and `"default": null`.
2. Answers: four typical tool calls, each against the raw API JSON for the same request (the
   `data` of the API envelope, re-serialised as compact JSON, so whitespace doesn't count for the
   API). The SDK sends every tool result twice: as text content (what most hosts hand the model)
   and as structured content (what some hosts hand the model instead); both are measured
   (structured as compact JSON). The target is judged on the larger of the two, since a host
   shows the model one or the other; "wire" is both together.

Tokens are ESTIMATED as ceil(UTF-8 bytes / 4), a common rule of thumb for English text and JSON
with a BPE tokenizer (no tokenizer is a dependency of this project). UUIDs, URLs and non-Latin
text tokenize more densely than that, so treat token figures as relative, not exact.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from onepin_mcp.api.client import API_PREFIX, OnePinClient
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.surface import list_tools, model_view_bytes
from onepin_mcp.tools.registry import DEFAULT_TOOLSETS

SANDBOX_URL = "http://sandbox.onepin.test"
SURFACE_TARGET_BYTES = 9_000
# The full set, proportionally smaller: 18,658 B x 9,000 / 13,180 B (the figures before).
FULL_SURFACE_TARGET_BYTES = 12_741
# The whole `tools/list` result for the default tools, output schemas and annotations included.
LISTED_TARGET_BYTES = 25_000
ANSWER_TARGET_RATIO = 0.35
LIST_ROWS = 20

JSONValue = Any
Schema = dict[str, Any]


def compact(value: JSONValue) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def tokens(size: int) -> int:
    """The token estimate used throughout: ceil(bytes / 4)."""
    return math.ceil(size / 4)


# --- schema boilerplate ------------------------------------------------------------------------

# Keys whose value maps names to schemas (so the keys there are property names, not keywords).
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def transform(schema: JSONValue, edit: Callable[[Schema], Schema]) -> JSONValue:
    """`schema` with `edit` applied to every schema node, bottom-up."""
    if not isinstance(schema, dict):
        return schema
    node: Schema = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            node[key] = {name: transform(sub, edit) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            node[key] = transform(value, edit)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            node[key] = [transform(sub, edit) for sub in value]
        else:
            node[key] = value
    return edit(node)


def drop_title(node: Schema) -> Schema:
    return {k: v for k, v in node.items() if k != "title"}


def unwrap_nullable(node: Schema) -> Schema:
    """`anyOf: [X, {"type": "null"}]` becomes X merged into the node."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = next(b for b in branches if b != {"type": "null"})
    if not isinstance(other, dict):
        return node
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged.update(other)
    return merged


def drop_default_null(node: Schema) -> Schema:
    if "default" in node and node["default"] is None:
        return {k: v for k, v in node.items() if k != "default"}
    return node


def drop_all(node: Schema) -> Schema:
    return drop_default_null(unwrap_nullable(drop_title(node)))


def saved(schema: Schema, edit: Callable[[Schema], Schema]) -> int:
    return nbytes(compact(schema)) - nbytes(compact(transform(schema, edit)))


def argument_description_bytes(schema: JSONValue) -> int:
    """UTF-8 bytes of the argument description strings inside a schema."""
    total = 0

    def visit(node: Schema) -> Schema:
        nonlocal total
        text = node.get("description")
        if isinstance(text, str):
            total += nbytes(text)
        return node

    transform(schema, visit)
    return total


@dataclass(frozen=True)
class ToolSize:
    name: str
    default: bool
    total: int  # the tool's compact JSON object as in model_view_bytes
    name_bytes: int
    description: int
    schema: int
    arg_descriptions: int
    titles: int
    nullable: int
    default_null: int
    boilerplate: int  # all three removed together

    @classmethod
    def of(cls, tool: Tool, default: bool) -> ToolSize:
        schema: Schema = tool.input_schema
        seen = {"name": tool.name, "description": tool.description or "", "inputSchema": schema}
        return cls(
            name=tool.name,
            default=default,
            total=nbytes(compact(seen)),
            name_bytes=nbytes(tool.name),
            description=nbytes(tool.description or ""),
            schema=nbytes(compact(schema)),
            arg_descriptions=argument_description_bytes(schema),
            titles=saved(schema, drop_title),
            nullable=saved(schema, unwrap_nullable),
            default_null=saved(schema, drop_default_null),
            boilerplate=saved(schema, drop_all),
        )


def listed_bytes(tools: list[Tool]) -> int:
    """The whole `tools/list` result as compact JSON, as a client receives it: every field
    of every tool (titles, annotations, input and output schemas)."""
    listed = {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]}
    return nbytes(compact(listed))


def output_schema_bytes(tools: list[Tool]) -> int:
    return sum(nbytes(compact(t.output_schema)) for t in tools if t.output_schema is not None)


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table (pastes straight into bench/README.md)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# --- the sandbox and servers ---------------------------------------------------------------------


def settings_for(sandbox: Sandbox) -> Settings:
    return Settings(api_key=SecretStr(sandbox.example_key), key_source="env", base_url=SANDBOX_URL)


def server_for(sandbox: Sandbox, selection: ToolSelection) -> OnePinServer:
    return create_server(settings_for(sandbox), selection=selection, transport=sandbox.transport())


async def surface(sandbox: Sandbox) -> tuple[list[ToolSize], int]:
    default_tools = await list_tools(server_for(sandbox, ToolSelection()))
    all_tools = await list_tools(server_for(sandbox, ToolSelection(toolsets=("all",))))
    print("## Whole tools/list vs what a model reads\n")
    print(
        "tools/list = the whole result as compact JSON (names, titles, descriptions, input and "
        "output schemas, annotations); model view = names, descriptions and input schemas "
        "(`onepin_mcp.surface.model_view_bytes`).\n"
    )
    whole_rows: list[list[str]] = []
    for label, tools, model_target in (
        ("default", default_tools, SURFACE_TARGET_BYTES),
        ("all", all_tools, FULL_SURFACE_TARGET_BYTES),
    ):
        whole = listed_bytes(tools)
        model = model_view_bytes(tools)
        whole_target = (
            f"<= {LISTED_TARGET_BYTES:,}: {mark(whole <= LISTED_TARGET_BYTES)}"
            if label == "default"
            else "-"
        )
        whole_rows.append(
            [
                label,
                str(len(tools)),
                f"{whole:,}",
                f"{output_schema_bytes(tools):,}",
                whole_target,
                f"{model:,}",
                f"{tokens(model):,}",
                f"<= {model_target:,}: {mark(model <= model_target)}",
            ]
        )
    print_table(
        [
            "tool set",
            "tools",
            "tools/list B",
            "of which output schemas B",
            "target",
            "model view B",
            "~tokens",
            "target",
        ],
        whole_rows,
    )
    default_listed = listed_bytes(default_tools)
    default_names = {t.name for t in default_tools}
    sizes = [ToolSize.of(t, t.name in default_names) for t in all_tools]
    # model_view_bytes is the project's own measure; the sum of the parts must agree with it.
    for tools, chosen in ((default_tools, True), (all_tools, False)):
        parts = [s for s in sizes if s.default or not chosen]
        array_overhead = 2 + len(parts) - 1  # "[", "]" and commas
        assert sum(s.total for s in parts) + array_overhead == model_view_bytes(tools)

    print("## Tool surface (names, descriptions, input schemas as compact JSON)\n")
    print(f"Default toolsets: {', '.join(DEFAULT_TOOLSETS)}. Tokens ~ ceil(bytes / 4).\n")
    rows: list[list[str]] = []
    for label, chosen in (("default", True), ("all", False)):
        parts = [s for s in sizes if s.default or not chosen]
        total = sum(s.total for s in parts) + 1 + len(parts)
        description = sum(s.description for s in parts)
        schema = sum(s.schema for s in parts)
        boiler = sum(s.boilerplate for s in parts)
        limit = SURFACE_TARGET_BYTES if chosen else FULL_SURFACE_TARGET_BYTES
        target = f"<= {limit:,}: {mark(total <= limit)}"
        rows.append(
            [
                label,
                str(len(parts)),
                f"{total:,}",
                f"{tokens(total):,}",
                f"{description:,} ({pct(description, total)})",
                f"{schema:,} ({pct(schema, total)})",
                f"{sum(s.arg_descriptions for s in parts):,}",
                f"{boiler:,} ({pct(boiler, schema)})",
                f"{total - boiler:,}",
                target,
            ]
        )
    print_table(
        [
            "tool set",
            "tools",
            "bytes",
            "~tokens",
            "descriptions B",
            "schemas B",
            "arg descriptions B (in schemas)",
            "boilerplate B (of schemas)",
            "bytes w/o boilerplate",
            "target",
        ],
        rows,
    )

    print("### Per tool, largest first\n")
    print(
        "desc/schema = share of the tool's bytes; boilerplate = bytes saved in its schema by "
        'dropping `title` keys, unwrapping `anyOf: [X, {"type": "null"}]` to X, and dropping '
        '`"default": null` (each alone, then all together).\n'
    )
    per_tool = [
        [
            f"`{s.name}`",
            "on" if s.default else "off",
            f"{s.total:,}",
            f"{tokens(s.total):,}",
            pct(s.description, s.total),
            pct(s.schema, s.total),
            f"{s.arg_descriptions:,}",
            f"{s.titles:,}",
            f"{s.nullable:,}",
            f"{s.default_null:,}",
            f"{s.boilerplate:,} ({pct(s.boilerplate, s.schema)})",
        ]
        for s in sorted(sizes, key=lambda s: s.total, reverse=True)
    ]
    print_table(
        [
            "tool",
            "default",
            "bytes",
            "~tokens",
            "desc",
            "schema",
            "arg desc B",
            "titles B",
            "nullable anyOf B",
            "default null B",
            "boilerplate B (of schema)",
        ],
        per_tool,
    )
    return sizes, default_listed


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    tool: str
    arguments: dict[str, Any]
    path: str  # relative to /api/v1
    params: dict[str, Any]


def field_bytes(
    value: JSONValue, path: str = "", into: dict[str, int] | None = None
) -> dict[str, int]:
    """Bytes of each leaf field, `"key":value` in compact JSON, summed by path (list items
    collapsed to `[]`)."""
    into = {} if into is None else into
    if isinstance(value, dict):
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if isinstance(sub, dict | list) and sub:
                field_bytes(sub, where, into)
            else:
                into[where] = into.get(where, 0) + nbytes(compact({key: sub})) - 2 + 1
    elif isinstance(value, list):
        for item in value:
            field_bytes(item, f"{path}[]", into)
    return into


def null_bytes(value: JSONValue) -> int:
    """Bytes spent on fields whose value is null (`"key":null,`)."""
    if isinstance(value, dict):
        return sum(
            nbytes(compact({k: v})) - 1 if v is None else null_bytes(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(null_bytes(item) for item in value)
    return 0


def where_bytes_go(result: CallToolResult, text: int, structured: int) -> str:
    """One line: whitespace in the text, nulls, and the largest fields of the structured
    content."""
    content = result.structured_content or {}
    parts = []
    for block in result.content:
        if isinstance(block, TextContent):
            try:
                parts.append(
                    f"text whitespace {text - nbytes(compact(json.loads(block.text))):,} B"
                )
            except json.JSONDecodeError:
                parts.append("text is not JSON")
    parts.append(f"null fields {null_bytes(content):,} B")
    top = sorted(field_bytes(content).items(), key=lambda kv: kv[1], reverse=True)[:6]
    parts.append(
        "largest fields: "
        + ", ".join(f"`{path}` {size:,} B ({pct(size, structured)})" for path, size in top)
    )
    return "; ".join(parts)


def answer_sizes(result: CallToolResult) -> tuple[int, int]:
    """(text content bytes, structured content bytes as compact JSON)."""
    if result.is_error:
        raise RuntimeError(f"tool call failed: {result.content}")
    text = sum(nbytes(b.text) for b in result.content if isinstance(b, TextContent))
    structured = (
        nbytes(compact(result.structured_content)) if result.structured_content is not None else 0
    )
    return text, structured


async def seed_workflows(sandbox: Sandbox) -> int:
    """Create workflows until the workspace has at least LIST_ROWS; return the total."""
    async with OnePinClient(settings_for(sandbox), transport=sandbox.transport()) as api:
        total = (await api.list_workflows(limit=1)).total or 0
        for n in range(total, LIST_ROWS + 3):
            await api.create_workflow(
                name=f"Bench workflow {n + 1:02d}",
                description=f"Narrated onboarding clip {n + 1}, English and Korean voices.",
            )
        return (await api.list_workflows(limit=1)).total or 0


async def answers(sandbox: Sandbox) -> list[tuple[str, bool]]:
    total = await seed_workflows(sandbox)
    run = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
    long_run = {"workflow_id": seed.WORKFLOW_LONG_ID, "run_id": seed.RUN_LONG_COMPLETED_ID}
    running = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}

    def run_path(ids: dict[str, str], tail: str) -> str:
        return f"/workflows/{ids['workflow_id']}/runs/{ids['run_id']}/{tail}"

    # The raw request is the one OnePinClient sends for the same tool call.
    cases = [
        Case(
            f"workflow list ({LIST_ROWS} rows of {total})",
            "list_workflows",
            {"limit": LIST_ROWS},
            "/workflows",
            {"offset": 0, "limit": LIST_ROWS},
        ),
        Case("run status (completed)", "get_run_status", run, run_path(run, "status"), {}),
        Case("run status (running)", "get_run_status", running, run_path(running, "status"), {}),
        Case("steps (completed run, 8 steps)", "get_run_steps", run, run_path(run, "steps"), {}),
        Case(
            "run data page (20 lines x 6 locales)",
            "get_run_data",
            {**long_run, "limit": 20},
            run_path(long_run, "data"),
            {"offset": 0, "limit": 20},
        ),
        Case(
            "run data page (Product tour, 4 lines)",
            "get_run_data",
            {**run, "limit": 20},
            run_path(run, "data"),
            {"offset": 0, "limit": 20},
        ),
    ]

    raw_http = httpx.AsyncClient(
        base_url=SANDBOX_URL + API_PREFIX,
        transport=sandbox.transport(),
        headers={"Authorization": f"Bearer {sandbox.example_key}"},
    )
    rows: list[list[str]] = []
    verdicts: list[tuple[str, bool]] = []
    notes: list[str] = []
    async with raw_http, Client(server_for(sandbox, ToolSelection())) as mcp:
        for case in cases:
            response = await raw_http.get(case.path, params=case.params)
            response.raise_for_status()
            body = response.json()
            raw = nbytes(compact(body["data"]))
            served = len(response.content)
            result = await mcp.call_tool(case.tool, case.arguments)
            text, structured = answer_sizes(result)
            raw_top = sorted(field_bytes(body["data"]).items(), key=lambda kv: -kv[1])[:4]
            notes.append(
                f"- {case.label}: {where_bytes_go(result, text, structured)}; raw's largest: "
                + ", ".join(f"`{path}` {size:,} B ({pct(size, raw)})" for path, size in raw_top)
            )
            seen = max(text, structured)
            ok = seen <= ANSWER_TARGET_RATIO * raw
            verdicts.append((case.label, ok))
            rows.append(
                [
                    case.label,
                    f"`{case.tool}`",
                    f"{raw:,} / {tokens(raw):,}",
                    f"{served:,}",
                    f"{text:,} / {tokens(text):,}",
                    f"{structured:,} / {tokens(structured):,}",
                    f"{text / raw:.2f}",
                    f"{structured / raw:.2f}",
                    f"{(text + structured) / raw:.2f}",
                    mark(ok),
                ]
            )

    print("## Typical answers vs the raw API JSON for the same request\n")
    print(
        "raw = the API envelope's `data`, compact JSON; body = the API response as served; "
        "text = the tool result's text content; structured = its structured content, compact "
        "JSON; wire = text + structured (the SDK sends both). Target: the larger of text and "
        f"structured <= {ANSWER_TARGET_RATIO:.0%} of raw.\n"
    )
    print_table(
        [
            "answer",
            "tool",
            "raw B / ~tok",
            "body B",
            "text B / ~tok",
            "structured B / ~tok",
            "text/raw",
            "structured/raw",
            "wire/raw",
            f"target <= {ANSWER_TARGET_RATIO:.2f}",
        ],
        rows,
    )
    print("### Where the answer bytes go (structured content; field bytes include the key)\n")
    print("\n".join(notes) + "\n")
    return verdicts


async def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sandbox = Sandbox(manual_clock=True)
    sizes, listed = await surface(sandbox)
    verdicts = await answers(sandbox)
    default = [s for s in sizes if s.default]
    surface_bytes = sum(s.total for s in default) + 1 + len(default)
    print("## Targets\n")
    print(
        f"- default tool surface <= {SURFACE_TARGET_BYTES:,} bytes: {surface_bytes:,} -> "
        f"{mark(surface_bytes <= SURFACE_TARGET_BYTES)}"
    )
    every = sum(s.total for s in sizes) + 1 + len(sizes)
    print(
        f"- all tools' surface <= {FULL_SURFACE_TARGET_BYTES:,} bytes: {every:,} -> "
        f"{mark(every <= FULL_SURFACE_TARGET_BYTES)}"
    )
    print(
        f"- default tools/list, output schemas included, <= {LISTED_TARGET_BYTES:,} bytes: "
        f"{listed:,} -> {mark(listed <= LISTED_TARGET_BYTES)}"
    )
    missed = [label for label, ok in verdicts if not ok]
    print(
        f"- answers <= {ANSWER_TARGET_RATIO:.0%} of raw: {len(verdicts) - len(missed)} of "
        f"{len(verdicts)} met" + (f"; missed: {', '.join(missed)}" if missed else "")
    )


if __name__ == "__main__":
    anyio.run(main)
