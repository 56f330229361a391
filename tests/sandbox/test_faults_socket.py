"""Faults over a real socket: uvicorn on 127.0.0.1, port 0, and real httpx / raw TCP clients.

A drop must close the connection without a single response byte, which ASGI offers no way to do
(uvicorn answers 500 to an app that raises before responding), so this is where it is proven.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import anyio
import anyio.abc
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from onepin_mcp.sandbox.faults import FaultMiddleware, FaultRules, LateRequests
from onepin_mcp.sandbox.requestlog import STATUS_NO_RESPONSE, RequestLog
from tests.support.loopback import serving

pytestmark = pytest.mark.anyio

RUNS = "/api/v1/workflows/wf-1/runs"


def tiny_api() -> tuple[Starlette, list[str]]:
    """A stand-in API: POST …/runs records a run (a state change), GET lists them."""
    runs: list[str] = []

    async def list_runs(request: Request) -> JSONResponse:
        return JSONResponse({"data": runs})

    async def start_run(request: Request) -> JSONResponse:
        runs.append((await request.json())["name"])
        return JSONResponse({"data": {"name": runs[-1]}}, status_code=202)

    routes = [
        Route("/api/v1/workflows/{wf}/runs", list_runs, methods=["GET"]),
        Route("/api/v1/workflows/{wf}/runs", start_run, methods=["POST"]),
    ]
    return Starlette(routes=routes), runs


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the server sends until it closes cleanly (a reset raises instead)."""
    received = b""
    while True:
        try:
            received += await stream.receive()
        except anyio.EndOfStream:
            return received


async def test_a_dropped_request_reaches_a_real_client_as_a_disconnect_without_processing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules, log = FaultRules(), RequestLog()
    rules.add({"method": "POST", "path": RUNS, "drop": "before"})
    api, runs = tiny_api()
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules, log)) as url, httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await client.post(url + RUNS, json={"name": "lost"})
            after = await client.get(url + RUNS)
    assert runs == []
    assert after.json() == {"data": []}
    assert [(r.method, r.status) for r in log] == [("POST", STATUS_NO_RESPONSE), ("GET", 200)]
    # The server never tried to answer (it logs an application error when it has to).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_drop_after_over_a_socket_changes_state_and_the_client_sees_no_response() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": RUNS, "drop": "after"})
    api, runs = tiny_api()
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules)) as url, httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(url + RUNS, json={"name": "kept"})
            after = await client.get(url + RUNS)
    assert runs == ["kept"]
    assert after.json() == {"data": ["kept"]}


async def test_a_late_request_over_a_socket_outlives_the_client_that_gave_up_on_it() -> None:
    # The client's read timeout fires and it closes the connection; the sandbox still holds the
    # request, and processes it on the first request once its (sandbox) time is due.
    rules, late = FaultRules(), LateRequests()
    now = [datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc)]
    rules.add({"method": "POST", "path": RUNS, "late_s": 10})
    api, runs = tiny_api()
    app = FaultMiddleware(api, rules, now=lambda: now[0], late=late)
    with anyio.fail_after(20):
        async with serving(app) as url, httpx.AsyncClient(timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(url + RUNS, json={"name": "late"})
            assert (await client.get(url + RUNS)).json() == {"data": []}
            now[0] += timedelta(seconds=10)
            after = await client.get(url + RUNS)
    assert after.json() == {"data": ["late"]}
    assert runs == ["late"]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_drop_closes_the_tcp_connection_without_sending_a_single_byte(when: str) -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "drop": when})
    api, _ = tiny_api()
    body = b'{"name": "raw"}'
    request = (
        f"POST {RUNS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules)) as url:
            port = int(url.rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(request)
                received = await read_until_closed(stream)
    assert received == b""


async def test_a_drop_is_clean_when_the_faults_sit_inside_starlettes_middleware_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Starlette's outermost error middleware wraps `send` in a closure; the drop must see through.
    rules = FaultRules()
    rules.add({"path": RUNS, "drop": "before"})
    api, runs = tiny_api()
    app = Starlette(routes=api.routes, middleware=[Middleware(FaultMiddleware, rules=rules)])
    with anyio.fail_after(20):
        async with serving(app) as url, httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(url + RUNS, json={"name": "lost"})
            assert (await client.post(url + RUNS, json={"name": "next"})).status_code == 202
    assert runs == ["next"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_status_fault_over_a_socket_carries_retry_after() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 429, "retry_after": "3"})
    api, _ = tiny_api()
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules)) as url, httpx.AsyncClient() as client:
            response = await client.get(url + RUNS)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "RATE_LIMITED"


async def test_a_slow_body_arrives_over_the_socket_in_several_pieces_and_complete() -> None:
    rules = FaultRules()
    api, _ = tiny_api()
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules)) as url, httpx.AsyncClient() as client:
            for name in ("a" * 300, "b" * 300):
                await client.post(url + RUNS, json={"name": name})
            expected = (await client.get(url + RUNS)).content
            rules.add({"path": RUNS, "slow_body_ms": 150})
            async with client.stream("GET", url + RUNS) as response:
                pieces = [piece async for piece in response.aiter_raw()]
    assert b"".join(pieces) == expected
    assert len(pieces) >= 2


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_drop_during_a_large_upload_is_still_a_clean_disconnect(when: str) -> None:
    # The unread rest of a request body would make the kernel reset the connection instead.
    rules = FaultRules()
    rules.add({"path": "/api/v1/uploads", "drop": when})
    api, _ = tiny_api()
    with anyio.fail_after(20):
        async with serving(FaultMiddleware(api, rules)) as url, httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await client.post(url + "/api/v1/uploads", content=b"\0" * 2_000_000)
