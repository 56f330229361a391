"""Every private part of the `mcp` SDK this package relies on, each behind one named function.

The SDK (2.3) has no public way to do a handful of things the server needs; rather than reach
into its internals from wherever the need arose, the package calls these functions, and each
says why the private part is needed and what public API would replace it. `pyproject.toml`
bounds `mcp` to the minor version this was written and tested against, and
`tests/test_sdk_adapter.py` checks that every private name used here still exists with the
shape assumed, so that an SDK upgrade fails one clear test rather than many obscure ones.

Nothing here changes what the SDK does; it only names the places where we step past it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, BinaryIO, TypeVar

from mcp.server import MCPServer
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import RequestHandler, Server
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.stdio import _claim_fd, _open_stdin_diversion
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

# A type only: the write half of the streams the SDK's transports hand the server. The SDK
# exports it from a private module alone; `stdio` needs its name to keep the write stream.
from mcp.shared._context_streams import ContextSendStream
from mcp.types import ToolAnnotations
from pydantic import BaseModel, PrivateAttr

__all__ = [
    "ContextSendStream",
    "add_request_handler",
    "claim_stdin",
    "connection_of",
    "lowlevel_server",
    "registered_tools",
    "session_owners",
    "stateful_sessions",
    "tool_with_schemas",
    "wrap_lifespan",
    "wrap_request_handler",
]

_ParamsT = TypeVar("_ParamsT", bound=BaseModel)
_State = TypeVar("_State")


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level `Server` inside an `MCPServer` (`MCPServer._lowlevel_server`).

    Needed to register request handlers `MCPServer` has no decorator for (or whose decorator
    withholds the request context), to wrap its lifespan, and to run it on streams we own
    (stdio). Public replacement: an `MCPServer.add_request_handler` and a way to run it on
    given streams, neither of which 2.3 has.
    """
    return server._lowlevel_server


def add_request_handler(
    server: MCPServer[Any],
    method: str,
    params_type: type[_ParamsT],
    handler: RequestHandler[Any, _ParamsT],
) -> None:
    """Register (or replace) the handler of a request method on the low-level server."""
    lowlevel_server(server).add_request_handler(method, params_type, handler)


def wrap_request_handler(
    server: MCPServer[Any],
    method: str,
    wrap: Callable[[RequestHandler[Any, Any]], RequestHandler[Any, Any]],
) -> None:
    """Replace the SDK's own handler of `method` by `wrap(handler)`, same params model.

    Used instead of overriding `MCPServer._handle_list_tools` / calling
    `MCPServer._handle_read_resource`: the handler is found through the low-level server's
    public registry, so only `_lowlevel_server` is private here. Public replacement: request
    middleware on `MCPServer` that sees the method's result.
    """
    lowlevel = lowlevel_server(server)
    entry = lowlevel.get_request_handler(method)
    if entry is None:
        raise RuntimeError(f"the MCP SDK registered no {method} handler to wrap")
    lowlevel.add_request_handler(method, entry.params_type, wrap(entry.handler))


def registered_tools(server: MCPServer[Any]) -> list[Tool]:
    """The tools as registered (`MCPServer._tool_manager.list_tools()`), to edit in place.

    Needed to trim each tool's generated input schema once, at start; `MCPServer.list_tools()`
    returns copies. Public replacement: a schema hook on `add_tool`.
    """
    return server._tool_manager.list_tools()


class _ToolDerivedOnFirstCall(Tool):
    """A tool listed with schemas given to it, run by the tool the SDK derives on first call."""

    _derived: Tool | None = PrivateAttr(default=None)

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        if self._derived is None:
            self._derived = Tool.from_function(
                self.fn,
                name=self.name,
                title=self.title,
                description=self.description,
                annotations=self.annotations,
                icons=self.icons,
                meta=self.meta,
            )
        return await self._derived.run(arguments, context, convert_result=convert_result)


def tool_with_schemas(
    fn: Callable[..., Any],
    *,
    name: str,
    title: str,
    description: str,
    annotations: ToolAnnotations,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any] | None,
) -> Tool:
    """A tool for `MCPServer(tools=...)` that `tools/list` shows with the schemas given, and
    that the SDK derives from `fn` (argument model, resolvers, output validation) on its first
    call, exactly as `MCPServer.add_tool` would have at registration.

    `add_tool` builds an argument model and generates both JSON schemas with pydantic for every
    tool it registers, most of the time a start spends on the package's own work before it can
    answer its first `tools/list`; the schemas are stored with the package instead
    (`onepin_mcp.tool_schemas`). Relies on the SDK running a tool through `Tool.run` and
    listing it from `Tool.parameters` and `Tool.output_schema` (`fn_metadata.output_schema`):
    the argument model here is a placeholder no call reaches. Public replacement: `add_tool`
    taking the schemas, and deriving the rest lazily.
    """
    return _ToolDerivedOnFirstCall(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=input_schema,
        fn_metadata=FuncMetadata(arg_model=ArgModelBase, output_schema=output_schema),
        is_async=inspect.iscoroutinefunction(fn),
        context_kwarg=None,
        annotations=annotations,
    )


def wrap_lifespan(
    server: MCPServer[Any],
    outer: Callable[[_State], AbstractAsyncContextManager[object]],
) -> None:
    """Run `outer(state)` inside the server's own lifespan, around every session's handlers.

    Swaps the low-level server's `lifespan` attribute (public on `Server`, reached through the
    private `_lowlevel_server`) for one that enters the SDK's and then `outer`. Public
    replacement: composable lifespans on `MCPServer`.
    """
    lowlevel = lowlevel_server(server)
    inner = lowlevel.lifespan

    @asynccontextmanager
    async def lifespan(low: Any) -> AsyncIterator[_State]:
        async with inner(low) as state, outer(state):
            yield state

    lowlevel.lifespan = lifespan


def connection_of(session: object) -> Connection | None:
    """The per-client `Connection` behind a request's `ServerSession` (`session._connection`).

    `ServerSession` is a per-request proxy; the `Connection` lives as long as the client does
    (its `exit_stack` unwinds when the client goes), which is what run subscriptions belong to.
    The SDK exposes it on the kernel's `Context` but not on `ServerRequestContext`. Public
    replacement: `ServerRequestContext.connection`. None when the session has none.
    """
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def claim_stdin() -> tuple[BinaryIO, Callable[[], None] | None]:
    """Standard input claimed as the SDK claims it (`mcp.server.stdio._claim_fd`).

    fd 0 then points at the null device, so nothing else in the process can read the wire; the
    SDK skips its claim when given a stream, and `stdio` must give it one. Returns the private
    duplicate to read and the release to call at the end (None when nothing was diverted).
    Public replacement: a claim helper exported by `mcp.server.stdio`.
    """
    return _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)


def _session_map(manager: StreamableHTTPSessionManager, name: str) -> Mapping[str, Any]:
    found = getattr(manager, name, None)
    if not isinstance(found, dict):
        raise RuntimeError(
            f"the MCP SDK's session manager has no {name} map: session limits cannot be "
            "counted with this SDK version"
        )
    return found


def stateful_sessions(manager: StreamableHTTPSessionManager) -> Mapping[str, Any]:
    """The open Streamable HTTP sessions by id (`StreamableHTTPSessionManager._server_instances`).

    The manager keeps them to route requests but has no public count; reading its map is exact
    where a count of our own would drift (it ends idle and crashed sessions without telling).
    Raises RuntimeError when the map is gone, so an SDK that renamed it fails at start rather
    than letting every session through. Public replacement: a session count on the manager.
    """
    return _session_map(manager, "_server_instances")


def session_owners(manager: StreamableHTTPSessionManager) -> Mapping[str, Mapping[str, Any]]:
    """Who opened each session (`StreamableHTTPSessionManager._session_owners`): its
    authorization context, whose `client_id` is the caller. Raises as `stateful_sessions`.
    Public replacement: the owner on a session listing."""
    return _session_map(manager, "_session_owners")
