"""The control API (/_sandbox) and reset: the levers tests pull from outside the process."""

from __future__ import annotations

import httpx
import pytest

from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio

RUNS = f"/api/v1/workflows/{seed.WORKFLOW_COMPLETES_ID}/runs"


async def test_reset_restores_the_seed_and_clears_the_log_and_faults(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await client.post(RUNS)
    await client.delete(f"/api/v1/workflows/{seed.WORKFLOW_LONG_ID}")
    sandbox.faults.add({"path": "/api/v1/nodes", "status": 503})
    assert len(sandbox.requests) == 2

    reset = await client.post("/_sandbox/reset")
    assert reset.status_code == 200
    assert len(sandbox.requests) == 0
    assert len(sandbox.faults) == 0
    runs = (await client.get(RUNS)).json()
    assert runs["pagination"]["total"] == 2
    assert (await client.get(f"/api/v1/workflows/{seed.WORKFLOW_LONG_ID}")).status_code == 200
    assert (await client.get("/api/v1/nodes")).status_code == 200


async def test_the_clock_is_advanced_over_http_and_moves_runs(client: httpx.AsyncClient) -> None:
    run = (await client.post(RUNS)).json()["data"]
    moved = await client.post("/_sandbox/clock", json={"advance_s": 30})
    assert moved.json()["data"]["now"] == "2026-03-12T09:00:30Z"
    assert (await client.get("/_sandbox/clock")).json()["data"]["manual"] is True
    status = (await client.get(f"{RUNS}/{run['id']}/status")).json()["data"]
    assert status["status"] == "completed"
    bad = await client.post("/_sandbox/clock", json={"advance_s": -1})
    assert bad.status_code == 422


async def test_a_real_time_clock_cannot_be_advanced() -> None:
    sandbox = Sandbox(speed=10)
    with pytest.raises(ValueError, match="manual"):
        sandbox.advance(1)
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sb.test") as http:
        refused = await http.post("/_sandbox/clock", json={"advance_s": 1})
    assert refused.status_code == 409


async def test_the_request_log_shows_api_calls_in_order_but_not_control_calls(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/api/v1/workflows", params={"limit": 1})
    await client.get("/_sandbox/faults")
    await client.post(RUNS)
    log = (await client.get("/_sandbox/requests")).json()["data"]
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/api/v1/workflows", 200),
        ("POST", RUNS, 202),
    ]
    assert log[0]["query"] == "limit=1"
    newer = (await client.get("/_sandbox/requests", params={"since": 1})).json()["data"]
    assert [r["path"] for r in newer] == [RUNS]
    await client.delete("/_sandbox/requests")
    assert (await client.get("/_sandbox/requests")).json()["data"] == []


async def test_faults_installed_over_http_hit_the_api_and_retire(client: httpx.AsyncClient) -> None:
    installed = await client.post(
        "/_sandbox/faults",
        json={"method": "GET", "path": "/api/v1/workflows", "status": 429, "retry_after": "2"},
    )
    assert installed.status_code == 201
    limited = await client.get("/api/v1/workflows")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert (await client.get("/api/v1/workflows")).status_code == 200
    assert (await client.get("/_sandbox/faults")).json()["data"] == []
    invalid = await client.post("/_sandbox/faults", json={"path": "/x", "status": "soon"})
    assert invalid.status_code == 422


async def test_a_dropped_connection_after_processing_still_starts_the_run(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"method": "POST", "path": "/api/v1/workflows/*/runs", "drop": "after"})
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(RUNS)
    listed = (await client.get(RUNS, params={"status": "pending"})).json()
    assert listed["pagination"]["total"] == 1
