"""The wire format every API answer shares: envelopes, request ids, pagination and headers."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from onepin_mcp.sandbox import seed

pytestmark = pytest.mark.anyio

ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
WORKFLOWS = "/api/v1/workflows"


async def test_a_single_object_answer_has_data_and_meta_with_a_ulid_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"data", "meta"}
    assert body["data"]["id"] == seed.WORKFLOW_COMPLETES_ID
    assert ULID.fullmatch(body["meta"]["request_id"])
    assert body["meta"]["timestamp"] == "2026-03-12T09:00:00Z"


async def test_every_api_answer_advertises_a_required_sdk_version_the_official_sdk_meets(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.get(WORKFLOWS)
    missing = await client.get(f"{WORKFLOWS}/{uuid.uuid4()}")
    for response in (ok, missing):
        required = response.headers["X-OnePin-Required-Version"]
        assert tuple(int(part) for part in required.split(".")) <= (0, 16, 1)


async def test_request_ids_differ_between_requests(client: httpx.AsyncClient) -> None:
    first = (await client.get(WORKFLOWS)).json()["meta"]["request_id"]
    second = (await client.get(WORKFLOWS)).json()["meta"]["request_id"]
    assert first != second


async def test_a_counted_list_pages_with_absolute_next_and_prev_urls_keeping_other_filters(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get(WORKFLOWS, params={"limit": 2, "sort": "name"})).json()
    total = first["pagination"]["total"]
    assert total == len(seed._definitions())
    assert first["pagination"]["limit"] == 2
    assert first["pagination"]["prev"] is None
    next_url = httpx.URL(first["pagination"]["next"])
    assert next_url.host == "sandbox.onepin.test"
    assert next_url.params["offset"] == "2"
    assert next_url.params["sort"] == "name"

    seen = [w["id"] for w in first["data"]]
    url: str | None = first["pagination"]["next"]
    while url is not None:
        page = (await client.get(url)).json()
        assert page["pagination"]["prev"] is not None
        seen += [w["id"] for w in page["data"]]
        url = page["pagination"]["next"]
    assert len(seen) == len(set(seen)) == total


async def test_sorting_workflows_by_name_is_case_insensitive_and_reversible(
    client: httpx.AsyncClient,
) -> None:
    ascending = (await client.get(WORKFLOWS, params={"sort": "name", "limit": 100})).json()
    descending = (
        await client.get(WORKFLOWS, params={"sort": "name", "order": "desc", "limit": 100})
    ).json()
    names = [w["name"] for w in ascending["data"]]
    assert names == sorted(names, key=str.casefold)
    assert [w["name"] for w in descending["data"]] == names[::-1]


async def test_workflow_filters_narrow_the_total(client: httpx.AsyncClient) -> None:
    async def ids(**params: str) -> set[str]:
        body = (await client.get(WORKFLOWS, params={**params, "limit": "100"})).json()
        assert body["pagination"]["total"] == len(body["data"])
        return {w["id"] for w in body["data"]}

    assert await ids(status="draft") == {seed.WORKFLOW_DRAFT_ID}
    assert seed.WORKFLOW_FAILS_ID in await ids(status="failed")
    assert await ids(status="running") == {
        seed.WORKFLOW_COURSE_ID,
        seed.WORKFLOW_IVR_ID,
        seed.WORKFLOW_ONBOARDING_ID,
    }
    assert await ids(has_failed_run="true") == {seed.WORKFLOW_FAILS_ID}
    assert await ids(search="AUDIOBOOK") == {seed.WORKFLOW_LONG_ID}
    assert await ids(status="paused") == set()


async def test_list_items_carry_a_definition_only_when_asked(client: httpx.AsyncClient) -> None:
    plain = (await client.get(WORKFLOWS)).json()["data"]
    full = (await client.get(WORKFLOWS, params={"include_definition": "true"})).json()["data"]
    assert all("definition" not in w for w in plain)
    assert all(w["definition"]["graph"]["nodes"] is not None for w in full)


async def test_run_status_counts_sum_to_the_runs_count(client: httpx.AsyncClient) -> None:
    for workflow in (await client.get(WORKFLOWS, params={"limit": 100})).json()["data"]:
        assert sum(workflow["run_status_counts"].values()) == workflow["runs_count"]


async def test_unknown_and_malformed_ids_are_404_not_found(client: httpx.AsyncClient) -> None:
    paths = [
        f"{WORKFLOWS}/{uuid.uuid4()}",
        f"{WORKFLOWS}/not-a-uuid",
        f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs/{uuid.uuid4()}/status",
        f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs/12345/status",
        # A run is only found under its own workflow.
        f"{WORKFLOWS}/{seed.WORKFLOW_FAILS_ID}/runs/{seed.RUN_COMPLETED_ID}",
    ]
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert ULID.fullmatch(response.json()["meta"]["request_id"])


async def test_an_unknown_route_is_a_404_envelope_and_a_wrong_method_a_405(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.get("/api/v1/nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NOT_FOUND"
    wrong = await client.delete(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs")
    assert wrong.status_code == 405
    assert wrong.json() == {"detail": "Method Not Allowed"}


async def test_run_data_is_never_cached(client: httpx.AsyncClient) -> None:
    path = f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs/{seed.RUN_COMPLETED_ID}/data"
    response = await client.get(path, params={"limit": 2})
    body = response.json()
    assert response.headers["Cache-Control"] == "no-store"
    assert len(body["data"]["rows"]) == 2
    assert body["pagination"]["total"] == 4
    assert body["data"]["partial"]["status"] == "available"


async def test_catalogs_answer_lists_with_pagination(client: httpx.AsyncClient) -> None:
    nodes = (await client.get("/api/v1/nodes")).json()
    voices = (await client.get("/api/v1/voices", params={"language": "ko-kr"})).json()
    templates = (await client.get("/api/v1/templates", params={"category": "media"})).json()
    assert {n["node_type"] for n in nodes["data"]} >= {"source_script", "validator_pronunciation"}
    assert "pagination" in nodes
    assert [v["name"] for v in voices["data"]] == ["Daeseong", "Rachel"]
    assert voices["pagination"]["total"] == 2
    assert [t["category"] for t in templates["data"]] == ["media"]
    assert "total" not in templates["pagination"]


async def test_the_account_endpoints_report_balance_and_limits(client: httpx.AsyncClient) -> None:
    credits = (await client.get("/api/v1/users/me/credits")).json()["data"]
    limits = (await client.get("/api/v1/users/me/limits")).json()["data"]
    assert credits["balance"] == credits["monthly_balance"] + credits["free_balance"]
    assert credits["remaining"] == credits["balance"]
    assert limits["concurrent_runs_per_user"] == 6
