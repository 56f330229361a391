"""A base URL copied with the API's own path (`…/api/v1`): served without it, with one notice.

Through real processes: the sandbox API on a loopback port as OnePin, and `onepin-mcp` over
stdio with the configured key, and over HTTP in passthrough mode (each caller's key checked with
OnePin before a session opens). Before the path was dropped, every call went to
`/api/v1/api/v1/…` and OnePin answered 404 to all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from onepin_mcp.sandbox import seed
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import Served, start_passthrough, stdio_params, stop_server

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
KEY = "op_live_" + "U" * 32
NOTICE = "ONEPIN_BASE_URL ends in /api/v1, which onepin-mcp adds to every request itself"


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    served = start_sandbox("--manual-clock", "--api-key", KEY)
    yield served
    stop_sandbox(served)


@pytest.fixture(scope="module")
def passthrough(
    onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    served = start_passthrough(f"{onepin.base_url}/api/v1/", tmp_path_factory.mktemp("home"))
    yield served
    assert stop_server(served) == 0, served.stderr_text()


def _workflow_ids(result: object) -> list[str]:
    content = getattr(result, "structured_content", None)
    assert content is not None, getattr(result, "content", result)
    return [row["id"] for row in content["items"]]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_serves_a_base_url_ending_in_the_api_path_and_says_once_what_it_dropped(
    onepin: ServedSandbox, tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "stderr.txt"
    env = {"ONEPIN_BASE_URL": f"{onepin.base_url}/api/v1", "ONEPIN_API_KEY": KEY}
    params = stdio_params(tmp_path, env=env, stderr_to=log)
    with anyio.fail_after(DEADLINE_S):
        async with Client(params, mode=mode, read_timeout_seconds=30) as client:
            found = await client.call_tool("list_workflows", {})
    assert not found.is_error, found.content
    assert seed.WORKFLOW_COMPLETES_ID in _workflow_ids(found)
    stderr = log.read_text(encoding="utf-8")
    assert stderr.count(NOTICE) == 1, stderr
    assert f"using {onepin.base_url}." in stderr
    assert f"OnePin at {onepin.base_url}," in stderr  # the startup line shows the URL served
    assert KEY not in stderr


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_passthrough_checks_keys_and_serves_calls_at_the_corrected_base_url(
    passthrough: Served, mode: str
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as http,
            Client(streamable_http_client(passthrough.url, http_client=http), mode=mode) as client,
        ):
            found = await client.call_tool("list_workflows", {})
    assert seed.WORKFLOW_COMPLETES_ID in _workflow_ids(found)
    assert passthrough.stderr_text().count(NOTICE) == 1
