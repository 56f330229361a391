"""The in-process transport: an httpx client sees the sandbox as it would over a socket."""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from onepin_mcp.sandbox.faults import ConnectionDropped
from onepin_mcp.sandbox.transport import SERVER_DISCONNECTED, SandboxTransport

pytestmark = pytest.mark.anyio

URL = "http://sandbox.onepin.test/api/v1/auth/whoami"


async def answering(scope: Scope, receive: Receive, send: Send) -> None:
    client = scope["client"]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-seen-from", client[0].encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b'{"data": {"ok": true}}'})


async def dropping(scope: Scope, receive: Receive, send: Send) -> None:
    raise ConnectionDropped("dropped on purpose")


async def dropping_in_a_task(scope: Scope, receive: Receive, send: Send) -> None:
    # A drop raised inside a task group reaches the transport wrapped in an exception group.
    async with anyio.create_task_group() as group:
        group.start_soon(dropping, scope, receive, send)


async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug in the sandbox")


async def crashing_and_dropping(scope: Scope, receive: Receive, send: Send) -> None:
    async def crash() -> None:
        raise RuntimeError("a bug in the sandbox")

    async with anyio.create_task_group() as group:
        group.start_soon(dropping, scope, receive, send)
        group.start_soon(crash)


async def test_responses_pass_through_unchanged() -> None:
    transport = SandboxTransport(answering, client=("203.0.113.9", 4711))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"data": {"ok": True}}
    assert response.headers["x-seen-from"] == "203.0.113.9"


async def test_a_dropped_connection_looks_like_a_server_that_hung_up() -> None:
    async with httpx.AsyncClient(transport=SandboxTransport(dropping)) as client:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await client.get(URL)
    assert str(caught.value) == SERVER_DISCONNECTED
    assert caught.value.request.url == URL
    assert isinstance(caught.value.__cause__, ConnectionDropped)


async def test_a_drop_inside_an_exception_group_is_still_a_disconnect() -> None:
    async with httpx.AsyncClient(transport=SandboxTransport(dropping_in_a_task)) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.get(URL)


async def test_other_app_exceptions_are_not_swallowed() -> None:
    async with httpx.AsyncClient(transport=SandboxTransport(crashing)) as client:
        with pytest.raises(RuntimeError, match="a bug in the sandbox"):
            await client.get(URL)


async def test_a_bug_that_happens_alongside_a_drop_is_not_hidden_by_it() -> None:
    async with httpx.AsyncClient(transport=SandboxTransport(crashing_and_dropping)) as client:
        with pytest.raises(BaseException) as caught:  # noqa: PT011 (an exception group)
            await client.get(URL)
    assert not isinstance(caught.value, httpx.TransportError)
    assert "a bug in the sandbox" in repr(getattr(caught.value, "exceptions", caught.value))


async def test_the_transport_is_an_httpx_async_transport_that_closes_cleanly() -> None:
    transport = SandboxTransport(answering)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).is_success
    await transport.aclose()
