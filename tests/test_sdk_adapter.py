"""The private parts of `mcp` that `onepin_mcp.sdk` relies on exist, with the shape it assumes.

An SDK upgrade that moves one of them fails here, by name, instead of in forty tests that
happen to cross it. The last test keeps `sdk` the only module that steps past the SDK's public
surface, so that this file stays the whole list.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.types import PaginatedRequestParams, ReadResourceRequestParams, ToolAnnotations
from pydantic import BaseModel

from onepin_mcp import sdk

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parent.parent / "onepin_mcp"


def test_the_low_level_server_is_where_the_adapter_looks_for_it() -> None:
    server: MCPServer[Any] = MCPServer(name="probe")
    lowlevel = sdk.lowlevel_server(server)
    assert isinstance(lowlevel, Server)
    for method in ("add_request_handler", "get_request_handler", "run"):
        assert callable(getattr(lowlevel, method))
    assert callable(lowlevel.create_initialization_options)
    assert callable(lowlevel.lifespan)


@pytest.mark.parametrize(
    ("method", "params_type"),
    [("tools/list", PaginatedRequestParams), ("resources/read", ReadResourceRequestParams)],
)
def test_the_handlers_the_server_wraps_are_registered_by_the_sdk(
    method: str, params_type: type[Any]
) -> None:
    server: MCPServer[Any] = MCPServer(name="probe")
    entry = sdk.lowlevel_server(server).get_request_handler(method)
    assert entry is not None, f"the SDK no longer registers {method} on construction"
    assert entry.params_type is params_type


async def test_a_wrapped_handler_answers_in_place_of_the_sdks_own() -> None:
    server: MCPServer[Any] = MCPServer(name="probe")

    @server.tool()
    def probe() -> str:
        """A tool to list."""
        return "ok"

    seen: list[str] = []

    def renaming(list_tools: Any) -> Any:
        async def wrapped(ctx: Any, params: PaginatedRequestParams) -> Any:
            listed = await list_tools(ctx, params)
            seen.extend(tool.name for tool in listed.tools)
            return listed

        return wrapped

    sdk.wrap_request_handler(server, "tools/list", renaming)
    async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
        listed = await client.list_tools()
    assert [tool.name for tool in listed.tools] == seen == ["probe"]


async def test_registered_tools_are_the_ones_the_server_lists() -> None:
    # The server trims each tool's input schema in place, once: the manager must hand out its
    # own records, not copies.
    server: MCPServer[Any] = MCPServer(name="probe")

    @server.tool()
    def probe(workflow_id: str) -> str:
        """A tool with one argument."""
        return workflow_id

    (tool,) = sdk.registered_tools(server)
    assert tool.name == "probe"
    assert isinstance(tool.parameters, dict)
    tool.parameters = {"type": "object", "properties": {}, "x-trimmed": True}
    (listed,) = await server.list_tools()
    assert listed.input_schema.get("x-trimmed") is True


class Doubled(BaseModel):
    doubled: int


async def test_a_tool_with_given_schemas_is_listed_with_them_and_derived_on_its_first_call() -> (
    None
):
    # The server lists stored schemas and lets the SDK derive the rest when a tool is first
    # called: listing must read what was given, a call must run through the SDK's own
    # argument model and output validation.
    async def double(count: int) -> Doubled:
        """Double a count."""
        return Doubled(doubled=2 * count)

    given_input = {"type": "object", "properties": {"count": {"type": "integer"}}, "x-given": 1}
    given_output = {"type": "object", "properties": {"doubled": {"type": "integer"}}, "x-given": 2}
    tool = sdk.tool_with_schemas(
        double,
        name="double",
        title="Double",
        description="Double a count.",
        annotations=ToolAnnotations(read_only_hint=True),
        input_schema=given_input,
        output_schema=given_output,
    )
    server: MCPServer[Any] = MCPServer(name="probe", tools=[tool])
    async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
        (listed,) = (await client.list_tools()).tools
        answers = [await client.call_tool("double", {"count": n}) for n in (2, 3)]
        refused = await client.call_tool("double", {"count": "many"})
    assert (listed.input_schema, listed.output_schema) == (given_input, given_output)
    assert listed.title == "Double"
    assert [answer.structured_content for answer in answers] == [{"doubled": 4}, {"doubled": 6}]
    assert refused.is_error
    assert "count" in str(refused.content)


async def test_a_wrapped_lifespan_runs_inside_the_servers_own_with_its_state() -> None:
    entered: list[object] = []

    @asynccontextmanager
    async def own(_: MCPServer[Any]) -> AsyncIterator[str]:
        yield "state"

    @asynccontextmanager
    async def outer(state: str) -> AsyncIterator[None]:
        entered.append(state)
        yield
        entered.append("left")

    server: MCPServer[Any] = MCPServer(name="probe", lifespan=own)
    sdk.wrap_lifespan(server, outer)
    lowlevel = sdk.lowlevel_server(server)
    async with lowlevel.lifespan(lowlevel) as state:
        assert state == "state"
        assert entered == ["state"]
    assert entered == ["state", "left"]


async def test_a_request_session_leads_to_its_connection() -> None:
    server: MCPServer[Any] = MCPServer(name="probe")
    found: list[Connection | None] = []

    @server.tool()
    def probe(ctx: Context[Any, Any]) -> str:
        """Report whether the session's connection is reachable."""
        found.append(sdk.connection_of(ctx.request_context.session))
        return "ok"

    with anyio.fail_after(10):
        async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
            await client.call_tool("probe", {})
    assert len(found) == 1
    assert isinstance(found[0], Connection)
    assert sdk.connection_of(object()) is None


def test_the_sdks_stdin_claim_takes_what_the_adapter_passes() -> None:
    # Not called: it would divert this test process's own standard input.
    from mcp.server import stdio

    claim = inspect.signature(stdio._claim_fd)
    assert list(claim.parameters) == ["fd", "stream", "mode", "open_diversion"]
    assert callable(stdio._open_stdin_diversion)
    assert not inspect.signature(stdio._open_stdin_diversion).parameters


def test_the_write_stream_type_is_where_the_adapter_imports_it() -> None:
    from mcp.shared import _context_streams

    assert sdk.ContextSendStream is _context_streams.ContextSendStream
    assert callable(sdk.ContextSendStream.send)


def test_the_session_manager_keeps_its_sessions_and_owners_in_maps() -> None:
    manager = StreamableHTTPSessionManager(app=sdk.lowlevel_server(MCPServer(name="probe")))
    assert dict(sdk.stateful_sessions(manager)) == {}
    assert dict(sdk.session_owners(manager)) == {}


def test_a_session_manager_without_the_maps_is_refused() -> None:
    manager = StreamableHTTPSessionManager(app=sdk.lowlevel_server(MCPServer(name="probe")))
    del manager._server_instances
    with pytest.raises(RuntimeError, match="_server_instances"):
        sdk.stateful_sessions(manager)


# `os._exit` ends a forked worker without running the parent's cleanup: documented, public.
PUBLIC_UNDERSCORE_NAMES = frozenset({"os._exit"})


def _private_reaches(path: Path) -> list[str]:
    """Private names of other objects or modules that a source file uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mcp":
            private_module = any(part.startswith("_") for part in (node.module or "").split("."))
            names = [alias.name for alias in node.names if alias.name.startswith("_")]
            if private_module or names:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            # The standard library's documented underscore names are public API.
            if ast.unparse(node) in PUBLIC_UNDERSCORE_NAMES:
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _is_private(node.args[1].value)
        ):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "sdk.py" and "sandbox" not in p.relative_to(PACKAGE).parts
    ],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_adapter_reaches_into_private_parts(path: Path) -> None:
    assert not _private_reaches(path), f"{path.name}: use onepin_mcp.sdk instead"


def test_the_private_reach_scan_sees_each_kind(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from mcp.server.stdio import _claim_fd\nfrom mcp.shared._context_streams import X\n"
        "server._lowlevel_server\nsuper()._handle_list_tools\ngetattr(s, '_connection')\n"
        "self._fine\n",
        encoding="utf-8",
    )
    assert len(_private_reaches(probe)) == 5
