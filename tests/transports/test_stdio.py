"""`onepin-mcp --sandbox` over stdio: a real child process, real pipes, the SDK's stdio client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter, ValidationError

from onepin_mcp.sandbox import seed
from tests.transports.sequence import agent_sequence
from tests.transports.served import REPO, child_env, stdio_params

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
MESSAGE = TypeAdapter(JSONRPCMessage)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_agent_lists_previews_starts_follows_reads_and_cancels_over_stdio(
    tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with Client(
            stdio_params(tmp_path, "--sandbox"), mode=mode, read_timeout_seconds=30
        ) as client:
            await agent_sequence(client)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_byte_on_stdout_is_json_rpc_even_with_debug_logging(
    tmp_path: Path, mode: str
) -> None:
    # A shell in between copies the server's stdout to a file on its way to the client, and
    # sends its stderr to another: the client sees the real stream, the test sees its bytes.
    wire, log = tmp_path / "stdout.bin", tmp_path / "stderr.txt"
    params = StdioServerParameters(
        command="/bin/sh",
        args=[
            "-c",
            'exec "$0" -m onepin_mcp --sandbox --log-level debug 2>"$2" | tee "$1"',
            sys.executable,
            str(wire),
            str(log),
        ],
        env=child_env(tmp_path),
        cwd=REPO,
    )
    with anyio.fail_after(DEADLINE_S):
        async with Client(params, mode=mode, read_timeout_seconds=30) as client:
            assert (await client.list_tools()).tools
            account = await client.call_tool("get_account", {})
            assert not account.is_error
            unknown = await client.call_tool("no_such_tool", {})
            assert unknown.is_error
            await client.list_resource_templates()

    raw = wire.read_bytes()
    assert raw.endswith(b"\n"), "the last message is incomplete or something trails it"
    lines = raw.split(b"\n")[:-1]
    assert len(lines) >= 4, raw
    for line in lines:
        try:
            MESSAGE.validate_json(line)
        except ValidationError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"stdout line is not a JSON-RPC message: {line[:200]!r}\n{exc}")
    stderr = log.read_text(encoding="utf-8")
    assert " DEBUG " in stderr, "debug logging was not on, so the test proves less"
    assert seed.EXAMPLE_KEY not in stderr
    assert seed.EXAMPLE_KEY.encode() not in raw


# --- malformed requests: answered, never left hanging ---------------------------------------------

MALFORMED = [
    # (line sent, id expected in the answer, error code expected)
    ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":"oops"}', 7, -32602),
    ('{"jsonrpc":"2.0","id":"s-8","method":"tools/call","params":[1,2]}', "s-8", -32602),
    ('{"jsonrpc":"2.0","id":9}', 9, -32600),
    ('{"jsonrpc":"2.0","id":10,"method":5}', 10, -32600),
    ('{"jsonrpc":"1.0","id":11,"method":"ping"}', 11, -32600),
    ("this is not JSON", None, -32700),
    ("[1, 2]", None, -32600),
    ('{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":"x"}', None, -32600),
]


async def test_a_malformed_request_with_an_id_gets_an_error_with_that_id_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    # A raw pipe, since no client library sends these. Before, the SDK dropped each line
    # silently and the client waited out its own timeout; the bound here is far shorter.
    def line(message: dict[str, object]) -> bytes:
        return json.dumps(message).encode() + b"\n"

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    with anyio.fail_after(DEADLINE_S):
        async with await anyio.open_process(
            [sys.executable, "-m", "onepin_mcp", "--sandbox"],
            env=child_env(tmp_path),
            cwd=REPO,
        ) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            answers = BufferedByteReceiveStream(process.stdout)
            await process.stdin.send(line(initialize))
            assert json.loads(await answers.receive_until(b"\n", 1 << 20))["id"] == 1
            await process.stdin.send(
                line({"jsonrpc": "2.0", "method": "notifications/initialized"})
            )
            for sent, expected_id, expected_code in MALFORMED:
                await process.stdin.send(sent.encode() + b"\n")
                # Each refusal comes before the next line is even sent: nothing waits for a
                # timeout, and the order of answers is the order of the lines.
                answer = json.loads(await answers.receive_until(b"\n", 1 << 20))
                assert answer["id"] == expected_id, (sent, answer)
                assert answer["error"]["code"] == expected_code, (sent, answer)
            # A malformed notification has no id to answer; the next request is still served.
            await process.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/x","params":1}\n')
            await process.stdin.send(line({"jsonrpc": "2.0", "id": 99, "method": "ping"}))
            assert json.loads(await answers.receive_until(b"\n", 1 << 20)) == {
                "jsonrpc": "2.0",
                "id": 99,
                "result": {},
            }
            await process.stdin.aclose()
            assert await process.wait() == 0


# --- keys stay out of the log, at debug too -----------------------------------------------------

PASTED_KEY = "op_live_" + "Xk4" * 10 + "qq"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_key_in_a_resource_uri_or_a_tool_argument_stays_out_of_the_debug_log(
    tmp_path: Path, mode: str
) -> None:
    # The SDK logs a failed read's URI at INFO and raw messages at debug; httpx logs the
    # request URL, where a search term ends up. The command line's log filter masks them all.
    log = tmp_path / "stderr.txt"
    params = stdio_params(tmp_path, "--sandbox", "--log-level", "debug", stderr_to=log)
    with anyio.fail_after(DEADLINE_S):
        async with Client(params, mode=mode, read_timeout_seconds=30) as client:
            with pytest.raises(MCPError) as refused:
                await client.read_resource(f"onepin://elsewhere/{PASTED_KEY}")
            assert PASTED_KEY not in f"{refused.value.error.message} {refused.value.error.data}"
            found = await client.call_tool("list_workflows", {"search": PASTED_KEY})
            assert not found.is_error, found.content
    stderr = log.read_text(encoding="utf-8")
    assert "HTTP Request: GET http://sandbox.onepin.test/api/v1/workflows?" in stderr, (
        "httpx did not log the request URL, so the test proves less"
    )
    assert "onepin://elsewhere/[redacted]" in stderr, "the failed read was not logged"
    assert PASTED_KEY not in stderr
    assert PASTED_KEY.lower() not in stderr.lower()
