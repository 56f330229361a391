"""Serving MCP over stdio: the SDK's transport, plus an answer to every malformed request.

The SDK's stdio reader turns a line that is not a valid JSON-RPC message into an exception on
its read stream, and its dispatcher drops that with a debug log line. So a request whose id is
fine but whose `params` is not an object, or whose `method` is not a string, gets no answer at
all, and the client waits out its own timeout (often minutes) before it learns anything.
JSON-RPC 2.0 §5 says such a request gets an error with its id, and a line that is not JSON at
all one with a null id.

Lines are therefore checked here before the SDK reads them: a valid message passes through
unchanged (the SDK parses it again, a few microseconds), an invalid one is answered on the
server's own write stream and never reaches the SDK. A malformed notification or response has
no id to answer and is only logged, as the spec asks.

Standard input is claimed with the SDK's own helper (fd 0 then points at the null device, so
nothing else in the process can read the wire), because the SDK skips its claim when it is
given a stream to read, and this module has to give it one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import mcp_types
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

from onepin_mcp.api.errors import redact
from onepin_mcp.sdk import ContextSendStream, claim_stdin, lowlevel_server
from onepin_mcp.serving import freeze_startup_heap

logger = logging.getLogger(__name__)

# How many of a refused request's problems the error names; the rest are counted.
MAX_PROBLEMS = 3
# A refused id is echoed in the log line, cut to this many characters.
MAX_LOGGED_ID_CHARS = 64

RequestId = str | int


@dataclass(frozen=True)
class Refusal:
    """What a malformed line gets: an error answer (`answer`), or only a log line."""

    request_id: RequestId | None
    code: int
    message: str
    answer: bool = True


def check_line(line: str) -> Refusal | None:
    """None when `line` is a JSON-RPC message the SDK accepts, else what to do about it."""
    try:
        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        return _refusal(line, exc)
    return None


def _refusal(line: str, error: ValidationError) -> Refusal:
    try:
        value: Any = json.loads(line)
    except ValueError:
        return Refusal(None, PARSE_ERROR, "Parse error: the message is not valid JSON.")
    if not isinstance(value, dict):
        return Refusal(
            None,
            INVALID_REQUEST,
            "Invalid request: a message is one JSON object (batches are not supported).",
        )
    if "method" not in value and ("result" in value or "error" in value):
        # A malformed answer to one of the server's own requests: answering an answer would
        # only start a loop of errors.
        return Refusal(None, INVALID_REQUEST, "Malformed response dropped.", answer=False)
    if "id" not in value:
        return Refusal(None, INVALID_REQUEST, "Malformed notification dropped.", answer=False)
    request_id = value["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return Refusal(
            None, INVALID_REQUEST, "Invalid request: the id must be a string or an integer."
        )
    # The request branch of the message union says what is wrong with it as a request.
    problems = [
        issue
        for issue in error.errors(include_url=False, include_input=False)
        if issue["loc"][:1] == ("JSONRPCRequest",)
    ]
    only_params = bool(problems) and all(issue["loc"][1:2] == ("params",) for issue in problems)
    listed = "; ".join(
        f"{'.'.join(str(part) for part in issue['loc'][1:]) or 'message'}: {issue['msg']}"
        for issue in problems[:MAX_PROBLEMS]
    )
    if len(problems) > MAX_PROBLEMS:
        listed += f"; and {len(problems) - MAX_PROBLEMS} more"
    if only_params:
        return Refusal(request_id, INVALID_PARAMS, f"Invalid params: {listed}.")
    return Refusal(request_id, INVALID_REQUEST, f"Invalid request: {listed or 'not a request'}.")


class CheckedLines:
    """Standard input's lines as the SDK's stdio reader takes them, malformed ones answered.

    Iterated once, by the SDK's reader task. Answers go through the server's write stream,
    handed over with `answer_through` once the SDK's transport has made it.
    """

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self._write: ContextSendStream[SessionMessage] | None = None
        self._ready = anyio.Event()

    def answer_through(self, write: ContextSendStream[SessionMessage]) -> None:
        self._write = write
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for raw in self._source:
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue  # a blank line carries no message; the SDK would only drop it
            refusal = check_line(line)
            if refusal is None:
                yield line
            else:
                await self._refuse(refusal)

    async def _refuse(self, refusal: Refusal) -> None:
        shown = redact(repr(refusal.request_id))[:MAX_LOGGED_ID_CHARS]
        logger.info(
            "%s a malformed message (id %s): %s",
            "Answered" if refusal.answer else "Dropped",
            shown,
            refusal.message,
        )
        if not refusal.answer:
            return
        await self._ready.wait()
        assert self._write is not None
        error = JSONRPCError(
            jsonrpc="2.0",
            id=refusal.request_id,
            error=ErrorData(code=refusal.code, message=redact(refusal.message)),
        )
        await self._write.send(SessionMessage(error))


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` on this process's stdin and stdout until the client closes stdin."""
    stdin, release = claim_stdin()
    try:
        lines = CheckedLines(anyio.wrap_file(stdin))
        # The SDK iterates whatever it is given line by line; CheckedLines yields str lines.
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", lines)) as (read, write):
            lines.answer_through(write)
            lowlevel = lowlevel_server(server)
            freeze_startup_heap()  # everything built so far lives as long as the process
            await lowlevel.run(read, write, lowlevel.create_initialization_options())
    finally:
        if release is not None:
            release()
