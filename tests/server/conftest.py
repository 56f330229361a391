"""An MCP client connected in memory to a server that talks to an in-process sandbox.

`mcp_client` is parametrized over both protocol eras, so every test that uses it runs once as a
2026-07-28 client (`auto`) and once as a 2025-11-25 client (`legacy`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.state import WritePolicy

SANDBOX_URL = "http://sandbox.onepin.test"


async def _no_sleep(seconds: float) -> None:
    """Retry back-off in tests is recorded by the sandbox log, never waited for."""


NO_WAIT_RETRY = RetryPolicy(sleep=_no_sleep)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(manual_clock=True)


def sandbox_settings(sandbox: Sandbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": sandbox.example_key,
        "key_source": "env",
        "base_url": SANDBOX_URL,
    }
    values.update(overrides)
    return Settings(**values)


ServerFactory = Callable[..., OnePinServer]


class SandboxClock:
    """The server's clock in tests: sleeping moves the sandbox's manual clock instead of
    waiting, so a wait over minutes of a run takes no real time."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.slept: list[float] = []

    def now(self) -> float:
        return self.sandbox.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sandbox.advance(seconds)
        await anyio.lowlevel.checkpoint()


class GateClock:
    """A clock whose sleep moves sandbox time and then really blocks until the test opens the
    gate, so that a test can cancel a wait or a watcher while it is asleep."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.asleep = anyio.Event()
        self.gate = anyio.Event()
        self.cancelled = anyio.Event()
        self.woke = 0

    def now(self) -> float:
        return self.sandbox.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        self.sandbox.advance(seconds)
        self.asleep.set()
        try:
            await self.gate.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        self.woke += 1


@pytest.fixture
def sandbox_clock(sandbox: Sandbox) -> SandboxClock:
    return SandboxClock(sandbox)


@pytest.fixture
def make_server(sandbox: Sandbox, sandbox_clock: SandboxClock) -> ServerFactory:
    """Build a server on the sandbox, on the sandbox's clock; keyword arguments become the
    ToolSelection."""

    def build(
        *, settings: Settings | None = None, policy: WritePolicy | None = None, **selection: Any
    ) -> OnePinServer:
        return create_server(
            settings or sandbox_settings(sandbox),
            selection=ToolSelection(**selection),
            transport=sandbox.transport(),
            retry=NO_WAIT_RETRY,
            clock=sandbox_clock,
            policy=policy,
        )

    return build


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def mcp_client(make_server: ServerFactory, mode: str) -> AsyncIterator[Client]:
    async with Client(make_server(toolsets=("all",)), mode=mode) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[OnePinClient]:
    """A plain OnePin client on the same sandbox: to set up what tools read, and to look at
    what a tool really did."""
    async with OnePinClient(
        sandbox_settings(sandbox), transport=sandbox.transport(), retry=NO_WAIT_RETRY
    ) as client:
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a call that must have succeeded."""
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def error_text(result: CallToolResult) -> str:
    """The text an agent reads from a call that must have failed."""
    assert result.is_error, result.structured_content
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text
