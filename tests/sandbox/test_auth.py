"""Who may call: bearer keys (401), scopes, roles and the workspace header (403)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from onepin_mcp.sandbox import ALL_SCOPES, ApiKey, Sandbox, seed

BASE_URL = "http://sandbox.onepin.test"

pytestmark = pytest.mark.anyio

READER = "op_live_" + "R" * 32
VIEWER = "op_live_" + "V" * 32
ADMIN = "op_live_" + "A" * 32
RUNS = f"/api/v1/workflows/{seed.WORKFLOW_COMPLETES_ID}/runs"


@pytest.fixture
async def keyed(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    sandbox = Sandbox(
        manual_clock=True,
        api_keys=[
            ADMIN,
            ApiKey(READER, scopes=frozenset({"workflows:read"})),
            ApiKey(VIEWER, role="viewer"),
        ],
    )
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": "Bearer op_live_tooshort"},
        bearer("op_live_" + "U" * 32),
    ],
    ids=["missing", "empty", "not-bearer", "malformed", "unknown"],
)
async def test_a_missing_malformed_or_unknown_key_is_401_unauthorized(
    keyed: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await keyed.get("/api/v1/auth/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert ADMIN not in response.text


async def test_an_open_sandbox_accepts_any_well_formed_key_with_every_scope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/auth/whoami", headers=bearer("op_live_" + "z9" * 16))
    whoami = response.json()["data"]
    assert whoami["scopes"] == sorted(ALL_SCOPES)
    assert whoami["workspace_id"] == seed.WORKSPACE_ID
    assert whoami["user_id"] == seed.USER_ID
    assert whoami["api_key_id"]


async def test_whoami_reports_the_key_id_and_its_scopes(keyed: httpx.AsyncClient) -> None:
    reader = (await keyed.get("/api/v1/auth/whoami", headers=bearer(READER))).json()["data"]
    admin = (await keyed.get("/api/v1/auth/whoami", headers=bearer(ADMIN))).json()["data"]
    assert reader["scopes"] == ["workflows:read"]
    assert reader["api_key_id"] != admin["api_key_id"]
    assert READER not in reader["api_key_id"]


async def test_a_missing_scope_is_403_naming_the_scope(keyed: httpx.AsyncClient) -> None:
    listed = await keyed.get(RUNS, headers=bearer(READER))
    started = await keyed.post(RUNS, headers=bearer(READER))
    voices = await keyed.get("/api/v1/voices", headers=bearer(READER))
    assert listed.status_code == 200
    assert started.status_code == 403
    assert started.json()["error"] == {
        "code": "FORBIDDEN",
        "message": "API key lacks the workflows:run scope.",
    }
    assert "voices:read" in voices.json()["error"]["message"]


async def test_a_viewer_reads_but_cannot_change_anything(keyed: httpx.AsyncClient) -> None:
    read = await keyed.get(RUNS, headers=bearer(VIEWER))
    start = await keyed.post(RUNS, headers=bearer(VIEWER))
    create = await keyed.post("/api/v1/workflows", json={}, headers=bearer(VIEWER))
    runs_after = (await keyed.get(RUNS, headers=bearer(ADMIN))).json()["pagination"]["total"]
    assert read.status_code == 200
    for refused in (start, create):
        assert refused.status_code == 403
        assert "editor role" in refused.json()["error"]["message"]
    assert runs_after == read.json()["pagination"]["total"]


async def test_a_foreign_workspace_header_is_403_and_the_right_one_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    foreign = await client.get(
        RUNS, headers={"X-Workspace-Id": "00000000-0000-4000-8000-000000000000"}
    )
    own = await client.get(RUNS, headers={"X-Workspace-Id": seed.WORKSPACE_ID})
    assert foreign.status_code == 403
    assert "X-Workspace-Id" in foreign.json()["error"]["message"]
    assert own.status_code == 200


async def test_the_node_catalog_needs_no_key(keyed: httpx.AsyncClient) -> None:
    response = await keyed.get("/api/v1/nodes")
    assert response.status_code == 200
    assert len(response.json()["data"]) == 11


def test_configured_keys_must_have_the_official_form_and_never_show_in_reprs() -> None:
    with pytest.raises(ValueError, match="op_live_"):
        Sandbox(api_keys=["sk-not-a-onepin-key"])
    assert ADMIN not in repr(ApiKey(ADMIN))
    assert Sandbox(manual_clock=True, api_keys=[ADMIN]).example_key == ADMIN
