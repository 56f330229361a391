"""An httpx transport that runs requests through the sandbox app in-process.

`httpx.ASGITransport` does the work; this adds the one thing it cannot know: a fault that drops
the connection has no socket to close in-process, so the app raises `ConnectionDropped`, and here
that becomes the error an httpx client gets from a real server that hangs up before answering.
Any other exception from the app is a sandbox bug and propagates unchanged.

Like `httpx.ASGITransport`, this ignores httpx timeouts: a latency fault delays the response but
never raises `httpx.ReadTimeout`. Bound waits with the caller's own deadline, or serve the sandbox
over loopback to exercise socket timeouts.
"""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp

from .faults import ConnectionDropped

# httpcore's wording when a server closes the connection before sending any byte of a response.
SERVER_DISCONNECTED: str = "Server disconnected without sending a response."


def _is_drop(exc: BaseException) -> bool:
    """A `ConnectionDropped`, possibly inside exception groups raised by task groups."""
    if isinstance(exc, ConnectionDropped):
        return True
    # Duck-typed so that this also holds on Python 3.10, where the backport's class is used.
    inner = getattr(exc, "exceptions", None)
    return isinstance(inner, tuple) and bool(inner) and all(_is_drop(e) for e in inner)


class SandboxTransport(httpx.AsyncBaseTransport):
    """In-process transport over an ASGI app, with dropped connections surfacing like real ones."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
    ) -> None:
        self._asgi = httpx.ASGITransport(app=app, root_path=root_path, client=client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._asgi.handle_async_request(request)
        except Exception as exc:
            if _is_drop(exc):
                raise httpx.RemoteProtocolError(SERVER_DISCONNECTED, request=request) from exc
            raise

    async def aclose(self) -> None:
        await self._asgi.aclose()
