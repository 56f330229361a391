"""Fixtures for the client tests: the real client talking to the sandbox in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox

BASE_URL = "http://sandbox.onepin.test"


class RecordingSleep:
    """Stands in for `anyio.sleep` in retry policies: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on to the sandbox, keeping a copy of each, so headers can be checked."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def fixed_jitter() -> float:
    """Half of the backoff ceiling, so expected waits are exact numbers."""
    return 0.5


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(manual_clock=True)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def retry_policy(sleeps: RecordingSleep) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=4,
        base_delay_s=0.5,
        max_delay_s=8.0,
        total_budget_s=30.0,
        sleep=sleeps,
        random=fixed_jitter,
    )


def sandbox_settings(sandbox: Sandbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": SecretStr(sandbox.example_key),
        "key_source": "env",
        "base_url": BASE_URL,
    }
    values.update(overrides)
    return Settings(**values)


MakeClient = Callable[..., OnePinClient]


@pytest.fixture
async def make_client(sandbox: Sandbox, retry_policy: RetryPolicy) -> AsyncIterator[MakeClient]:
    """Build clients on the sandbox with setting overrides; all are closed after the test."""
    made: list[OnePinClient] = []

    def build(
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        **overrides: Any,
    ) -> OnePinClient:
        client = OnePinClient(
            sandbox_settings(sandbox, **overrides),
            transport=transport or sandbox.transport(),
            retry=retry or retry_policy,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> OnePinClient:
    return make_client()
