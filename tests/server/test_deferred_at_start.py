"""What a start leaves for later changes nothing a client sees, in both eras.

A server whose tools are listed from the schemas stored with the package lists and answers
exactly as one whose tools the SDK derives at registration: the same `tools/list`, the same
argument checks (resolvers included) and the same answers. Resource templates and prompts,
registered on the first request that reads either, are all there whichever request that is."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

import onepin_mcp.server
from onepin_mcp.prompts import PROMPTS
from onepin_mcp.sandbox import seed
from onepin_mcp.server import OnePinServer
from onepin_mcp.tool_schemas import stored_schemas

from .conftest import ServerFactory

pytestmark = pytest.mark.anyio

IDS = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}

# (tool, arguments, whether the call is refused)
CALLS: list[tuple[str, dict[str, Any], bool]] = [
    ("get_run_status", IDS, False),
    ("list_workflows", {"limit": 2}, False),
    # Arguments the SDK's argument model refuses, worded by the server.
    ("list_workflows", {"limit": "many"}, True),
    ("get_run_status", {"workflow_id": seed.WORKFLOW_COMPLETES_ID}, True),
    # A tool with a parameter its resolver fills, on a run that has ended.
    ("cancel_run", IDS, False),
]


def _derived(make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> OnePinServer:
    with monkeypatch.context() as patch:
        patch.setattr(onepin_mcp.server, "stored_schemas", lambda: None)
        return make_server(toolsets=("all",))


def _answer(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude_none=True)


async def test_stored_schemas_list_the_tools_as_the_sdk_derives_them(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    assert stored_schemas() is not None, "stale: see tests/test_tool_schemas.py"
    derived = _derived(make_server, monkeypatch)
    stored = make_server(toolsets=("all",))
    async with Client(stored, mode=mode) as a, Client(derived, mode=mode) as b:  # type: ignore[arg-type]
        listed = [tool.model_dump(mode="json") for tool in (await a.list_tools()).tools]
        expected = [tool.model_dump(mode="json") for tool in (await b.list_tools()).tools]
    assert len(listed) >= 20
    assert listed == expected


async def test_a_tool_listed_from_stored_schemas_checks_and_answers_as_a_derived_one(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    derived = _derived(make_server, monkeypatch)
    stored = make_server(toolsets=("all",))
    async with Client(stored, mode=mode) as a, Client(derived, mode=mode) as b:  # type: ignore[arg-type]
        for name, arguments, refused in CALLS:
            # Twice: the first call derives what the SDK needs, the second reuses it.
            for _ in range(2):
                got = _answer(await a.call_tool(name, arguments))
                want = _answer(await b.call_tool(name, arguments))
                assert got == want, name
                assert got.get("is_error", False) is refused, got


FIRST_REQUESTS = ["resources/read", "resources/templates/list", "prompts/get", "prompts/list"]


@pytest.mark.parametrize("first", FIRST_REQUESTS)
async def test_templates_and_prompts_are_there_whichever_request_reads_them_first(
    make_server: ServerFactory, mode: str, first: str
) -> None:
    async with Client(make_server(), mode=mode) as client:  # type: ignore[arg-type]
        await client.list_tools()
        if first == "resources/read":
            uri = f"onepin://workflows/{IDS['workflow_id']}/runs/{IDS['run_id']}"
            read = await client.read_resource(uri)
            assert seed.RUN_COMPLETED_ID in str(read.contents[0])
        elif first == "prompts/get":
            got = await client.get_prompt("diagnose_run", IDS)
            assert seed.RUN_COMPLETED_ID in str(got.messages[0].content)
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    assert len(templates) == 4
    assert len(prompts) == len(PROMPTS)
