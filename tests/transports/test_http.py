"""`onepin-mcp --sandbox` over Streamable HTTP and SSE on loopback ports: real processes, real
sockets, the SDK's own HTTP clients; plus `/healthz`, Host/Origin protection and clean stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from onepin_mcp import __version__
from tests.transports.sequence import agent_sequence
from tests.transports.served import Served, start_server, stop_server

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_POST_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def streamable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("home")
    served = start_server("--sandbox", "--transport", "streamable-http", home=home)
    yield served
    assert stop_server(served) == 0, served.stderr_text()


@pytest.fixture(scope="module")
def sse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("home")
    served = start_server("--sandbox", "--transport", "sse", home=home)
    yield served
    assert stop_server(served) == 0, served.stderr_text()


def test_streamable_http_is_announced_on_loopback_at_the_sdk_path(streamable: Served) -> None:
    assert streamable.url.startswith("http://127.0.0.1:")
    assert streamable.url.endswith("/mcp")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_agent_runs_the_whole_sequence_over_streamable_http(
    streamable: Served, mode: str
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with Client(streamable.url, mode=mode, read_timeout_seconds=30) as client:
            await agent_sequence(client)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_agent_runs_the_whole_sequence_over_sse(sse: Served, mode: str) -> None:
    assert sse.url.endswith("/sse")
    with anyio.fail_after(DEADLINE_S):
        async with Client(sse_client(sse.url), mode=mode, read_timeout_seconds=30) as client:
            await agent_sequence(client)


@pytest.mark.parametrize("fixture", ["streamable", "sse"])
def test_healthz_answers_ok_and_the_version_without_auth(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(fixture)
    response = httpx.get(f"{served.base}/healthz", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_a_foreign_host_header_is_refused_with_421(streamable: Served) -> None:
    response = httpx.post(
        streamable.url,
        json=INITIALIZE,
        headers={**MCP_POST_HEADERS, "Host": "evil.example"},
        timeout=30,
    )
    assert response.status_code == 421


def test_a_foreign_origin_is_refused_with_403(streamable: Served) -> None:
    response = httpx.post(
        streamable.url,
        json=INITIALIZE,
        headers={**MCP_POST_HEADERS, "Origin": "http://evil.example"},
        timeout=30,
    )
    assert response.status_code == 403


def test_a_loopback_origin_is_accepted(streamable: Served) -> None:
    # The control for the two refusals above: the same request from a local page goes through.
    port = streamable.url.split(":")[2].split("/")[0]
    response = httpx.post(
        streamable.url,
        json=INITIALIZE,
        headers={**MCP_POST_HEADERS, "Origin": f"http://localhost:{port}"},
        timeout=30,
    )
    assert response.status_code == 200


def test_sse_refuses_a_foreign_host_header_with_421(sse: Served) -> None:
    with httpx.stream("GET", sse.url, headers={"Host": "evil.example"}, timeout=30) as response:
        assert response.status_code == 421


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_stateless_server_serves_the_sequence_without_sessions(
    tmp_path: Path, mode: str
) -> None:
    served = start_server(
        "--sandbox", "--transport", "streamable-http", "--stateless", home=tmp_path
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            initialize = await http.post(served.url, json=INITIALIZE, headers=MCP_POST_HEADERS)
        assert initialize.status_code == 200
        assert "mcp-session-id" not in initialize.headers
        with anyio.fail_after(DEADLINE_S):
            async with Client(served.url, mode=mode, read_timeout_seconds=30) as client:
                await agent_sequence(client)
    finally:
        assert stop_server(served) == 0


def test_an_http_server_stops_cleanly_on_sigterm_and_never_writes_to_stdout(
    tmp_path: Path,
) -> None:
    served = start_server("--sandbox", "--transport", "streamable-http", home=tmp_path)
    httpx.get(f"{served.base}/healthz", timeout=30).raise_for_status()
    assert stop_server(served) == 0
    assert served.stdout_text() == ""
    assert "uvicorn" in served.stderr_text()
