"""What the server's lifespan hands every handler: settings and the OnePin client provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mcp.server.mcpserver import Context

from onepin_mcp.client import OnePinClient
from onepin_mcp.config import Settings


class ClientProvider(Protocol):
    """Which OnePin client serves a request: one shared client, or one per caller's key."""

    def client_for(self, ctx: Context[Any, Any]) -> OnePinClient: ...

    async def aclose(self) -> None: ...


class SharedClient:
    """Every request uses the server's own client (stdio, and HTTP with a server-held key)."""

    def __init__(self, client: OnePinClient) -> None:
        self._client = client

    def client_for(self, ctx: Context[Any, Any]) -> OnePinClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass
class AppState:
    """What every handler reaches through `ctx.request_context.lifespan_context`."""

    settings: Settings
    clients: ClientProvider
