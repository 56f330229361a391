"""HTTP client auth on real sockets: the static token, and passthrough of the caller's own key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import (
    Served,
    serving_with_token,
    start_passthrough,
    start_server,
    stop_server,
)
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
TOKEN = "t0ken-for-tests-" + "x" * 24
CALLER_KEY = "op_live_" + "C" * 32
OTHER_KEY = "op_live_" + "D" * 32


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving_with_token(TOKEN, home=tmp_path_factory.mktemp("home")) as served:
        yield served


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "unauthorized"),
        (f"Bearer {TOKEN}-but-longer", "invalid_token"),
        (f"Bearer {TOKEN[:-1]}", "invalid_token"),
        (f"Basic {TOKEN}", "unauthorized"),
    ],
    ids=["missing", "longer", "shorter", "wrong-scheme"],
)
def test_the_token_server_refuses_a_missing_or_wrong_token_with_401(
    token_server: Served, authorization: str | None, error: str
) -> None:
    headers = dict(MCP_POST_HEADERS)
    if authorization:
        headers["Authorization"] = authorization
    response = httpx.post(token_server.url, json=INITIALIZE, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"].startswith('Bearer realm="onepin-mcp"')
    assert TOKEN not in response.text


async def test_the_token_server_serves_a_client_that_sends_the_token(token_server: Served) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            Client(streamable_http_client(token_server.url, http_client=http)) as client,
        ):
            account = await client.call_tool("get_account", {})
    assert not account.is_error, account.content


async def test_an_mcp_client_with_a_wrong_token_cannot_connect(token_server: Served) -> None:
    refusals_before = token_server.stderr_text().count("Refused POST /mcp: invalid_token")
    failure: Exception | None = None
    with anyio.fail_after(DEADLINE_S):
        try:
            async with (
                httpx2.AsyncClient(headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}) as h,
                Client(streamable_http_client(token_server.url, http_client=h)) as client,
            ):
                await client.list_tools()
        except Exception as exc:  # whatever shape the SDK gives it; checked below
            failure = exc
    assert failure is not None, "a client with a wrong token got through"
    # The SDK client reports an HTTP error status as a generic MCPError (inside task-group
    # exception groups); the server's log says which refusal it was.
    assert any(isinstance(exc, MCPError) for exc in _leaves(failure)), failure
    refusals = token_server.stderr_text().count("Refused POST /mcp: invalid_token")
    assert refusals > refusals_before


def _leaves(exc: BaseException) -> list[BaseException]:
    # Duck-typed so that this also holds on Python 3.10, where the backport's group is used.
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        return [leaf for child in inner for leaf in _leaves(child)]
    return [exc]


def test_healthz_needs_no_token(token_server: Served) -> None:
    assert httpx.get(f"{token_server.base}/healthz", timeout=30).status_code == 200


async def test_sse_with_token_auth_refuses_without_and_serves_with_the_token(
    tmp_path: Path,
) -> None:
    served = start_server(
        "--sandbox",
        "--transport",
        "sse",
        home=tmp_path,
        # No --auth: a configured token switches token auth on by itself.
        env={"ONEPIN_MCP_HTTP_TOKEN": TOKEN},
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("GET", served.url) as refused:
                assert refused.status_code == 401
            messages = await http.post(f"{served.base}/messages/?session_id=x", json={})
            assert messages.status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with anyio.fail_after(DEADLINE_S):
            async with Client(sse_client(served.url, headers=headers), mode="legacy") as client:
                account = await client.call_tool("get_account", {})
        assert not account.is_error, account.content
    finally:
        assert stop_server(served) == 0


# --- passthrough ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    """A separate OnePin (the sandbox API as its own process) that accepts only CALLER_KEY."""
    sandbox = start_sandbox("--manual-clock", "--api-key", CALLER_KEY)
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture(scope="module")
def passthrough(
    onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    served = start_passthrough(
        onepin.base_url,
        tmp_path_factory.mktemp("home"),
        "--log-level",
        "debug",
        # The server's own key is one OnePin refuses: a caller whose call works can only have
        # been served with the caller's key.
        env={"ONEPIN_API_KEY": OTHER_KEY},
    )
    yield served
    assert stop_server(served) == 0, served.stderr_text()


async def _get_account(url: str, key: str, mode: str) -> tuple[bool, str]:
    with anyio.fail_after(DEADLINE_S):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
            Client(streamable_http_client(url, http_client=http), mode=mode) as client,
        ):
            result = await client.call_tool("get_account", {})
    text = " ".join(getattr(block, "text", "") for block in result.content)
    return result.is_error, text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_passthrough_serves_each_caller_with_the_callers_own_key(
    passthrough: Served, mode: str
) -> None:
    failed, text = await _get_account(passthrough.url, CALLER_KEY, mode)
    assert not failed, text

    # A key OnePin refuses is refused at the door (checked with OnePin's whoami), before any
    # session or tool call exists.
    refusals_before = passthrough.stderr_text().count("Refused POST /mcp: invalid_token")
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the SDK's shape; checked below
        await _get_account(passthrough.url, OTHER_KEY, mode)
    assert any(isinstance(exc, MCPError) for exc in _leaves(refused.value)), refused.value
    assert passthrough.stderr_text().count("Refused POST /mcp: invalid_token") > refusals_before


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-an-onepin-key", f"Basic {CALLER_KEY}", f"Bearer {CALLER_KEY}x"],
    ids=["missing", "malformed", "wrong-scheme", "too-long"],
)
def test_passthrough_refuses_a_request_without_a_well_formed_key_with_401(
    passthrough: Served, authorization: str | None
) -> None:
    headers = dict(MCP_POST_HEADERS)
    if authorization:
        headers["Authorization"] = authorization
    response = httpx.post(passthrough.url, json=INITIALIZE, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_passthrough_keeps_callers_keys_out_of_its_debug_log(passthrough: Served) -> None:
    await _get_account(passthrough.url, CALLER_KEY, "legacy")
    with pytest.raises(Exception) as refused:  # noqa: PT011 - refused at the door, see above
        await _get_account(passthrough.url, OTHER_KEY, "legacy")
    assert any(isinstance(exc, MCPError) for exc in _leaves(refused.value)), refused.value
    log = passthrough.stderr_text()
    assert " DEBUG " in log
    assert CALLER_KEY not in log
    assert OTHER_KEY not in log


def test_a_server_bound_beyond_loopback_accepts_its_allowed_hosts_only(
    tmp_path: Path,
) -> None:
    served = start_server(
        "--sandbox",
        "--transport",
        "streamable-http",
        "--host",
        "0.0.0.0",
        "--allowed-host",
        "mcp.example.com",
        home=tmp_path,
        env={"ONEPIN_MCP_HTTP_TOKEN": TOKEN},
    )
    try:
        headers = {**MCP_POST_HEADERS, "Authorization": f"Bearer {TOKEN}"}

        def post(host: str) -> int:
            sent = {**headers, "Host": host}
            return httpx.post(served.url, json=INITIALIZE, headers=sent, timeout=30).status_code

        assert post("mcp.example.com") == 200
        assert post("mcp.example.com:443") == 200
        assert post("evil.example") == 421
        # Loopback names stay usable (a port-forward, a container's own health probe).
        assert post(served.url.split("/")[2]) == 200
    finally:
        assert stop_server(served) == 0
