"""Calls to the sandbox whose answers are held to the official SDK's models, strictly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from onepin._version_gate import check_required

from .strict import assert_strict

BASE_URL = "http://sandbox.onepin.test"

# (method, route, status, model) of every answer checked in this session: the contract's reach.
CHECKED: set[tuple[str, str, int, str]] = set()


@dataclass
class Api:
    client: httpx.AsyncClient

    async def expect(
        self,
        method: str,
        route: str,
        model: type[Any],
        *,
        status: int = 200,
        params: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **path: str,
    ) -> Any:
        """Call `route` (``{wf}``-style placeholders filled from `path`) and hold the JSON answer
        to `model`; returns the decoded JSON body."""
        response = await self.client.request(
            method, route.format(**path), params=params, json=json, headers=headers
        )
        return check_response(response, method, route, model, status=status)


def check_response(
    response: httpx.Response, method: str, route: str, model: type[Any], *, status: int
) -> Any:
    where = f"{method} {route}"
    assert response.status_code == status, (
        f"{where} answered {response.status_code}, expected {status}: {response.text[:1500]}"
    )
    # The SDK's version gate reads this header off every answer and refuses to go on when the
    # server demands a newer SDK than the one the contract is written against.
    check_required(response.headers)
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), f"{where}: content-type {content_type!r}"
    body = response.json()
    assert_strict(model, body, where=where)
    CHECKED.add((method, route, status, getattr(model, "__name__", repr(model))))
    return body
