"""Fixtures for the contract tests: the sandbox in process, and as a real loopback process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox

from .calls import BASE_URL, CHECKED, Api

if TYPE_CHECKING:
    from onepin_mcp.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Sandbox:
    from onepin_mcp.sandbox import Sandbox

    return Sandbox(manual_clock=True)


@pytest.fixture
async def api(sandbox: Sandbox, anyio_backend: str) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {sandbox.example_key}"}
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=BASE_URL, headers=headers
    ) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def loopback_process() -> Iterator[ServedSandbox]:
    """One manual-clock `onepin-mcp sandbox` process shared by the session, to keep it fast."""
    served = start_sandbox("--manual-clock")
    try:
        yield served
    finally:
        stop_sandbox(served)


@pytest.fixture
def loopback(loopback_process: ServedSandbox) -> ServedSandbox:
    """The shared process, back in its seeded state so tests don't see each other's runs."""
    loopback_process.reset()
    return loopback_process


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CHECKED:
        routes = {(method, route) for method, route, _, _ in CHECKED}
        terminalreporter.write_line(
            f"contract: {len(CHECKED)} (endpoint, status, SDK model) answers held strictly, "
            f"over {len(routes)} endpoints"
        )
