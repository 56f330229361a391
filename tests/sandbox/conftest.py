"""Fixtures for the sandbox's behaviour tests: a manual-clock sandbox and a client talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from onepin_mcp.sandbox import Sandbox

BASE_URL = "http://sandbox.onepin.test"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(manual_clock=True)


@pytest.fixture
async def client(sandbox: Sandbox, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sandbox.example_key}"}
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=BASE_URL, headers=headers
    ) as http:
        yield http
