"""What the server's lifespan hands every handler: settings, the OnePin client provider, the
clock that waits and watches run on, and the policy for writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from mcp.server.mcpserver import Context

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.settings import Settings


class Clock(Protocol):
    """Time as waits and watchers see it. Tests pass one whose `sleep` moves the sandbox's
    manual clock, so that minutes of a run pass without a real second of waiting."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """anyio's monotonic clock: what the server uses outside tests."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


ConfirmPolicy = Literal["never", "destructive", "writes"]
ConfirmClass = Literal["never", "destructive", "writes"]
"""A tool's own fact: the most lenient `ConfirmPolicy` under which it asks first ("never" for a
tool that never asks: a read). Declared on each tool's record (`ToolSpec.confirm`)."""


@dataclass(frozen=True)
class WritePolicy:
    """How billable and destructive calls are guarded: a credit cap on starts, and which writes
    ask the user first.

    `max_run_credits`: start_run refuses a run whose maximum estimated cost is higher.
    `confirm`: which write tools ask the user first, where the client supports elicitation.
    `audit_log`: a file that receives one JSON line per write, beside the stderr line.
    """

    max_run_credits: int | None = None
    confirm: ConfirmPolicy = "destructive"
    audit_log: str | None = None


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
    clock: Clock = field(default_factory=RealClock)
    policy: WritePolicy = field(default_factory=WritePolicy)
    # Each tool's confirmation class by tool name, derived from the tool records by the server
    # (tools sit above this layer, so the facts are handed down rather than imported).
    confirm_classes: Mapping[str, ConfirmClass] = field(default_factory=dict)
