"""Every tool name an agent reads is a tool the server registers.

Agent-facing text names tools all over: descriptions, parameter descriptions, the server's
instructions, prompts, failure wordings, next steps, refusals. A renamed or removed tool leaves
advice that sends the agent to a tool that doesn't exist. The texts are read as clients receive
them (through the MCP client, in both protocol eras) or as the agent would (every failure
wording `failures.explain` can produce for a matrix of errors), and, for branches no call here
reaches (the wording of conflicts, recoveries, refusals), from the string literals of the
modules that word agent-facing text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.errors import (
    FieldError,
    OnePinAPIError,
    OnePinAuthConfigError,
    OnePinConnectionError,
    OnePinError,
    OnePinFileError,
    OnePinInputError,
    OnePinResponseError,
    OnePinTimeoutError,
)
from onepin_mcp.failures import explain
from onepin_mcp.sandbox import seed
from onepin_mcp.selection import ToolSelection, all_tools, refusals
from onepin_mcp.server import INSTRUCTIONS

from .conftest import ServerFactory

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parents[2] / "onepin_mcp"
REGISTERED = frozenset(spec.name for spec in all_tools())

# An identifier shaped like a tool name: one of the verbs tools start with, then snake_case
# words. Not part of a longer identifier, not an attribute (`client.get_run`), not a call in
# code (`get_run(`): those are code, not advice.
VERBS = (
    "get|list|start|cancel|pause|resume|wait_for|preview|create|update|delete|duplicate|validate"
)
TOOL_NAME = re.compile(rf"(?<![\w.])(?:{VERBS})_[a-z0-9]+(?:_[a-z0-9]+)*(?![\w(])")

# The modules whose string literals become agent-facing text (descriptions, results, errors,
# prompts); the API side, the sandbox and the transports word nothing an agent reads.
WORDING_MODULES = (
    "tools",
    "views",
    "failures.py",
    "prompts.py",
    "resources.py",
    "clips.py",
    "writes",
    "server.py",
    "selection.py",
    "subscriptions.py",
)


def tool_names_in(text: str, fields: frozenset[str] = frozenset()) -> set[str]:
    """The tool-like identifiers in `text`, except names of fields an agent sees in a schema
    (`pause_reason` is a field of a run's status, not a tool)."""
    return {name for name in TOOL_NAME.findall(text) if name not in fields}


def test_the_detector_catches_a_made_up_tool_name_and_passes_fields_and_code() -> None:
    text = (
        "Call list_runz for its runs, then get_run_status (workflow_id=…); wait_for_run_to_end "
        "blocks. pause_reason says why. client.get_audio_url is code; so is get_run(x)."
    )
    found = tool_names_in(text, fields=frozenset({"pause_reason"}))

    assert found - REGISTERED == {"list_runz", "wait_for_run_to_end"}
    assert found & REGISTERED == {"get_run_status"}


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (descriptions, next steps, titles)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _field_names(schema: Any) -> Iterator[str]:
    """Every property name in a JSON schema, nested ones and `$defs` included."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _field_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _field_names(item)


def failure_wordings() -> list[str]:
    """What `explain` says for every kind of failure, status and id the tools meet."""
    argument_sets: list[dict[str, str]] = [
        {},
        {"workflow_id": seed.WORKFLOW_COMPLETES_ID},
        {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID},
        {"workflow_id": "w", "run_id": "r", "node_id": "n"},
        {"workflow_id": "w", "run_id": "r", "audio_id": "0123456789abcdef"},
    ]
    errors: list[OnePinError] = [OnePinAuthConfigError()]
    for argument in ("workflow_id", "run_id", "node_id", "audio_id", "status", "from_"):
        errors.append(OnePinInputError(argument, "is malformed"))
    for method in ("GET", "POST"):
        path = "/api/v1/workflows/w/runs/r/nodes/n/download"
        for status in (400, 401, 402, 403, 404, 409, 422, 426, 429, 500, 502, 503):
            error = OnePinAPIError(
                status=status,
                code="CODE",
                message="message",
                method=method,
                path=path,
                details=[FieldError("script_text", "too long")],
            )
            errors.append(error)
        retried = OnePinAPIError(status=503, code="C", message="m", method=method, path=path)
        retried.attempts = 3
        errors.append(retried)
        for sent in (True, False):
            errors.append(OnePinConnectionError("lost", method=method, path=path, sent=sent))
            errors.append(OnePinTimeoutError("slow", method=method, path=path, sent=sent))
        errors.append(OnePinResponseError("bad JSON", status=200, method=method, path=path))
    for status in (None, 403, 404, 500, 400):
        errors.append(OnePinFileError("gone", status=status))
    return [explain(error, arguments) for error in errors for arguments in argument_sets]


def literal_wordings() -> list[str]:
    """The prose string literals (anything with a space) of the modules that word what agents
    read: the branches that no call in this test reaches are covered here."""
    texts: list[str] = []
    for entry in WORDING_MODULES:
        path = PACKAGE / entry
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            tree = ast.parse(source.read_text(encoding="utf-8"))
            texts.extend(
                node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                if " " in node.value
            )
    return texts


async def live_wordings(client: Client) -> tuple[list[str], frozenset[str]]:
    """What a client with every toolset on reads: the instructions, every tool's description and
    schemas, resource templates, prompts as listed and as rendered, and the results (with their
    next steps) of reading every seeded run, plus a control call that changes nothing. Also
    the field names of every schema."""
    tools = (await client.list_tools()).tools
    texts = [client.instructions or "", INSTRUCTIONS]
    fields: set[str] = set()
    for tool in tools:
        texts.append(tool.description or "")
        texts.extend(_strings(tool.input_schema))
        texts.extend(_strings(tool.output_schema or {}))
        fields.update(_field_names(tool.input_schema))
        fields.update(_field_names(tool.output_schema or {}))
    for template in (await client.list_resource_templates()).resource_templates:
        texts.append(template.description or "")
    for prompt in (await client.list_prompts()).prompts:
        texts.append(prompt.description or "")
        texts.extend(argument.description or "" for argument in prompt.arguments or [])
        for workflow in (seed.WORKFLOW_FAILS_ID, "Release notes"):
            arguments = {"workflow_id": workflow, "run_id": seed.RUN_FAILED_ID}
            wanted = {argument.name for argument in prompt.arguments or []}
            rendered = await client.get_prompt(
                prompt.name, {k: v for k, v in arguments.items() if k in wanted}
            )
            texts.extend(_strings(rendered.model_dump(mode="json")))
    workflows = await client.call_tool("list_workflows", {"limit": 100})
    texts.extend(_strings(workflows.structured_content))
    for row in (workflows.structured_content or {}).get("items", []):
        runs = await client.call_tool("list_runs", {"workflow_id": row["id"], "limit": 100})
        texts.extend(_strings(runs.structured_content))
        for run in (runs.structured_content or {}).get("items", []):
            ids = {"workflow_id": row["id"], "run_id": run["id"]}
            for tool in ("get_run_status", "get_run"):
                texts.extend(_strings((await client.call_tool(tool, ids)).structured_content))
    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
    unchanged = await client.call_tool("cancel_run", ids)
    texts.extend(_strings(unchanged.structured_content))
    return texts, frozenset(fields)


async def test_every_tool_name_in_agent_facing_text_is_a_registered_tool(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(toolsets=("all",)), mode=mode) as client:  # type: ignore[arg-type]
        live, fields = await live_wordings(client)
    selections = (ToolSelection(), ToolSelection(read_only=True, exclude_tools=("get_run",)))
    refused = [text for selection in selections for text in refusals(selection).values()]
    texts = [*live, *failure_wordings(), *refused, *literal_wordings()]

    named = {name: text for text in texts for name in tool_names_in(text, fields)}
    unknown = {name: text[:120] for name, text in named.items() if name not in REGISTERED}

    assert not unknown, f"tool names that no tool has: {unknown}"
    # The scan reaches far: most tools are named somewhere, and by live text.
    assert len(named) >= 20, sorted(named)
    assert len(texts) > 1000
