"""`onepin-mcp --sandbox` over stdio: a real child process, real pipes, the SDK's stdio client."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter, ValidationError

from onepin_mcp.sandbox import seed
from tests.transports.sequence import agent_sequence
from tests.transports.served import REPO, child_env

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
MESSAGE = TypeAdapter(JSONRPCMessage)


def _params(home: Path, *args: str) -> StdioServerParameters:
    # The child gets only this environment (the SDK does not pass the parent's through).
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "onepin_mcp", "--sandbox", *args],
        env=child_env(home),
        cwd=REPO,
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_agent_lists_previews_starts_follows_reads_and_cancels_over_stdio(
    tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with Client(_params(tmp_path), mode=mode, read_timeout_seconds=30) as client:
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
