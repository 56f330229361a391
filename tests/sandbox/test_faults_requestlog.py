"""The request log: what it records of each API request, in what order, and what it leaves out."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from onepin_mcp.sandbox import Sandbox
from onepin_mcp.sandbox.faults import FaultMiddleware, FaultRules
from onepin_mcp.sandbox.requestlog import (
    STATUS_NO_RESPONSE,
    RequestLog,
    RequestLogMiddleware,
    RequestRecord,
    key_id_of,
)
from onepin_mcp.sandbox.transport import SandboxTransport

pytestmark = pytest.mark.anyio

BASE_URL = "http://sandbox.onepin.test"
START = datetime(2026, 3, 12, 9, 0, 0, tzinfo=timezone.utc)


def ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one second per reading, so each record's time tells them apart."""
    seconds = itertools.count()
    return lambda: START + timedelta(seconds=next(seconds))


def tiny_api() -> Starlette:
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"data": request.path_params["wf"]})

    async def created(request: Request) -> JSONResponse:
        return JSONResponse({"data": {}}, status_code=202)

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": {"code": "NOT_FOUND"}}, status_code=404)

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug in the sandbox")

    async def control(request: Request) -> JSONResponse:
        return JSONResponse({"data": "control"})

    return Starlette(
        routes=[
            Route("/api/v1/workflows/{wf}", ok, methods=["GET"]),
            Route("/api/v1/workflows/{wf}/runs", created, methods=["POST"]),
            Route("/api/v1/missing", missing),
            Route("/api/v1/broken", broken),
            Route("/_sandbox/requests", control),
            Route("/_sandbox", control),
        ]
    )


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=SandboxTransport(app), base_url=BASE_URL)


def record(path: str, status: int = 200) -> RequestRecord:
    return RequestRecord("GET", path, "", status, START)


async def test_each_api_request_is_recorded_in_order_with_query_status_and_arrival_time() -> None:
    log = RequestLog(now=ticking_clock())
    async with client_for(RequestLogMiddleware(tiny_api(), log)) as client:
        await client.get("/api/v1/workflows/wf-1", params={"include": "graph"})
        await client.post("/api/v1/workflows/wf-1/runs", json={})
        await client.get("/api/v1/missing")
    assert log.snapshot() == [
        RequestRecord("GET", "/api/v1/workflows/wf-1", "include=graph", 200, START),
        RequestRecord("POST", "/api/v1/workflows/wf-1/runs", "", 202, START + timedelta(seconds=1)),
        RequestRecord("GET", "/api/v1/missing", "", 404, START + timedelta(seconds=2)),
    ]


async def test_control_requests_are_not_recorded() -> None:
    log = RequestLog()
    async with client_for(RequestLogMiddleware(tiny_api(), log)) as client:
        assert (await client.get("/_sandbox/requests")).status_code == 200
        assert (await client.get("/_sandbox")).status_code == 200
        await client.get("/api/v1/workflows/wf-2")
    assert [r.path for r in log] == ["/api/v1/workflows/wf-2"]


def test_since_returns_what_came_after_an_index_and_clear_starts_over() -> None:
    log = RequestLog()
    for name in ("a", "b", "c"):
        log.append(record(f"/{name}"))
    seen = len(log)
    assert log.append(record("/d")) == seen
    assert [r.path for r in log.since(seen)] == ["/d"]
    assert [r.path for r in log.since(1)] == ["/b", "/c", "/d"]
    assert log.since(99) == []
    log.clear()
    assert (len(log), log.since(0)) == (0, [])


def test_since_refuses_a_negative_index() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        RequestLog().since(-1)


def test_a_snapshot_does_not_change_when_the_log_grows() -> None:
    log = RequestLog()
    log.append(record("/a"))
    snapshot = log.snapshot()
    log.append(record("/b"))
    assert [r.path for r in snapshot] == ["/a"]
    assert [r.path for r in log[0:2]] == ["/a", "/b"]
    assert log[-1].path == "/b"


def test_a_record_has_the_json_form_of_the_control_api() -> None:
    entry = RequestRecord("GET", "/api/v1/workflows", "limit=5", 0, START)
    assert entry.to_json() == {
        "method": "GET",
        "path": "/api/v1/workflows",
        "query": "limit=5",
        "status": 0,
        "time": "2026-03-12T09:00:00Z",
        "key_id": None,
    }
    assert entry.dropped


async def test_a_record_names_the_key_a_request_carried_by_its_id_never_the_key() -> None:
    sandbox = Sandbox(manual_clock=True)
    key = sandbox.example_key
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sandbox") as http:
        await http.get("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {key}"})
        await http.get("/api/v1/auth/whoami")
    with_key, without = sandbox.requests.snapshot()
    assert with_key.key_id == key_id_of(key)
    assert without.key_id is None
    assert key not in str(with_key.to_json())


def test_appends_from_many_threads_are_all_kept() -> None:
    log = RequestLog()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(200):
            log.append(record(f"/{n}/{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.path for r in log}) == len(log) == 1600


async def test_faulted_requests_are_recorded_with_the_status_the_client_got() -> None:
    rules, log = FaultRules(), RequestLog()
    rules.add_many(
        [
            {"path": "/api/v1/workflows/*", "status": 429, "retry_after": "1"},
            {"path": "/api/v1/workflows/*", "drop": "after"},
            {"path": "/api/v1/workflows/*", "body": "html"},
        ]
    )
    async with client_for(FaultMiddleware(tiny_api(), rules, log)) as client:
        await client.get("/api/v1/workflows/wf-1")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/api/v1/workflows/wf-1/runs", json={})
        await client.get("/api/v1/workflows/wf-1")
        await client.get("/api/v1/workflows/wf-1")
    assert [(r.method, r.status) for r in log] == [
        ("GET", 429),
        ("POST", STATUS_NO_RESPONSE),
        ("GET", 502),
        ("GET", 200),
    ]


async def test_a_request_that_crashes_the_app_is_recorded_as_a_500() -> None:
    log = RequestLog()
    async with client_for(RequestLogMiddleware(tiny_api(), log)) as client:
        with pytest.raises(RuntimeError, match="a bug in the sandbox"):
            await client.get("/api/v1/broken")
    assert [(r.path, r.status) for r in log] == [("/api/v1/broken", 500)]


async def test_a_request_the_client_gave_up_on_is_recorded_without_a_response() -> None:
    rules, log = FaultRules(), RequestLog()
    rules.add({"path": "/api/v1/workflows/*", "latency_ms": 60_000})
    async with client_for(FaultMiddleware(tiny_api(), rules, log)) as client:
        with anyio.move_on_after(0.05) as gave_up:
            await client.get("/api/v1/workflows/wf-1")
    assert gave_up.cancelled_caught
    assert [(r.path, r.status) for r in log] == [("/api/v1/workflows/wf-1", STATUS_NO_RESPONSE)]
