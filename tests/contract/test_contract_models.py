"""Every sandbox answer the project relies on, held to the official SDK's models, strictly.

In process (`Sandbox.transport()`), on a manual clock: fast. Each answer is parsed with the
`onepin` 0.16.1 model its generated client uses for that endpoint, and additionally walked so that
an undeclared key, a missing required key, a JSON type pydantic would coerce, or a value outside
the SDK's literals fails the test (see `strict.py`). Runs are driven through every status with
`sandbox.advance()`, and the error answers are held to the SDK's error models.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from onepin.types import (
    ApiCountedListResponseVoiceOut,
    ApiCountedListResponseWorkflowListItem,
    ApiCountedListResponseWorkflowRunListItem,
    ApiErrorResponse,
    ApiListResponseNodePortsOut,
    ApiListResponseTemplateOut,
    ApiListResponseUploadOut,
    ApiResponseAuthWhoamiOut,
    ApiResponseBalanceResponse,
    ApiResponseDict,
    ApiResponseDownloadUrlOut,
    ApiResponseEstimateResponse,
    ApiResponseListWorkflowRunStepOut,
    ApiResponsePlanLimits,
    ApiResponseRunsSummaryOut,
    ApiResponseWorkflowMarkdownOut,
    ApiResponseWorkflowNameAvailabilityOut,
    ApiResponseWorkflowOut,
    ApiResponseWorkflowRunAnalysisOut,
    ApiResponseWorkflowRunDetailOut,
    ApiResponseWorkflowRunOut,
    ApiResponseWorkflowRunOutputsOut,
    ApiResponseWorkflowRunOverviewOut,
    ApiResponseWorkflowRunStatusOut,
    ApiResponseWorkflowValidateOut,
    HttpValidationError,
    WorkflowDefinitionOutput,
    WorkflowRunDataResponse,
)

from onepin_mcp.sandbox import ApiKey, Sandbox, seed

from .calls import BASE_URL, Api, check_response
from .strict import assert_strict

pytestmark = pytest.mark.anyio

WF = "/api/v1/workflows/{wf}"
RUNS = WF + "/runs"
RUN = RUNS + "/{run}"
MAIN_WORKFLOWS = (seed.WORKFLOW_COMPLETES_ID, seed.WORKFLOW_FAILS_ID, seed.WORKFLOW_LONG_ID)
RUN_STATES = ("pending", "running", "paused", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
AUDIO_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")
# Sandbox time a run may take before a test gives up on it reaching a status.
PATIENCE_S = 1800


def _definition(where: str, definition: Any) -> None:
    # The SDK types a workflow's `definition` as a bare dict but models the same JSON as
    # WorkflowDefinitionOutput (templates) and WorkflowDefinitionInput (create/update): hold it
    # to that, so a renamed graph key (`sourcePort`, `position`, ...) cannot hide in the dict.
    assert_strict(WorkflowDefinitionOutput, definition, where=f"{where} definition")


# --- runs, driven through their lifecycle ------------------------------------------------------


async def _status(api: Api, wf: str, run: str) -> dict[str, Any]:
    body = await api.expect("GET", RUN + "/status", ApiResponseWorkflowRunStatusOut, wf=wf, run=run)
    return body["data"]


async def _advance_until(
    api: Api, sandbox: Sandbox, wf: str, run: str, wanted: set[str], *, step_s: float = 1.0
) -> dict[str, Any]:
    waited = 0.0
    while True:
        data = await _status(api, wf, run)
        if data["status"] in wanted:
            return data
        assert waited < PATIENCE_S, f"run {run} still {data['status']!r} after {waited} s"
        sandbox.advance(step_s)
        waited += step_s


async def _start(api: Api, wf: str, **body: Any) -> dict[str, Any]:
    started = await api.expect(
        "POST", RUNS, ApiResponseWorkflowRunOut, status=202, json=body or None, wf=wf
    )
    assert started["data"]["workflow_id"] == wf
    assert started["data"]["status"] in ("pending", "running")
    return started["data"]


async def _run_in(api: Api, sandbox: Sandbox, state: str) -> tuple[str, str]:
    """A run of a seeded workflow that is now in `state`, reached by driving the clock."""
    if state == "pending":
        run = await _start(api, seed.WORKFLOW_COMPLETES_ID)
        assert run["status"] == "pending", "a run just started on a frozen clock is pending"
        return seed.WORKFLOW_COMPLETES_ID, run["id"]
    if state in ("completed", "running"):
        wf = seed.WORKFLOW_COMPLETES_ID
    elif state == "failed":
        wf = seed.WORKFLOW_FAILS_ID
    else:
        wf = seed.WORKFLOW_LONG_ID
    run_id = (await _start(api, wf))["id"]
    if state in ("completed", "failed"):
        await _advance_until(api, sandbox, wf, run_id, {state})
        return wf, run_id
    await _advance_until(api, sandbox, wf, run_id, {"running"})
    if state == "paused":
        await api.expect("POST", RUN + "/pause", ApiResponseWorkflowRunOut, wf=wf, run=run_id)
        await _advance_until(api, sandbox, wf, run_id, {"paused"})
    elif state == "cancelled":
        cancelled = await api.expect(
            "POST", RUN + "/cancel", ApiResponseWorkflowRunOut, wf=wf, run=run_id
        )
        assert cancelled["data"]["status"] == "cancelled"
    return wf, run_id


def _output_node_ids(definition: dict[str, Any]) -> list[str]:
    nodes = (definition.get("graph") or {}).get("nodes") or []
    return [node["id"] for node in nodes if node.get("type") == "sink_preview"]


@pytest.mark.parametrize("state", RUN_STATES)
async def test_a_run_in_each_status_answers_every_run_endpoint_in_the_sdk_models(
    api: Api, sandbox: Sandbox, state: str
) -> None:
    wf, run = await _run_in(api, sandbox, state)
    ids = {"wf": wf, "run": run}

    detail = (await api.expect("GET", RUN, ApiResponseWorkflowRunDetailOut, **ids))["data"]
    assert (detail["id"], detail["workflow_id"], detail["status"]) == (run, wf, state)
    if detail.get("definition_snapshot") is not None:
        _definition("GET run definition_snapshot", detail["definition_snapshot"])
    assert (await _status(api, wf, run))["status"] == state

    listed = await api.expect("GET", RUNS, ApiCountedListResponseWorkflowRunListItem, wf=wf)
    assert [r["status"] for r in listed["data"] if r["id"] == run] == [state]
    filtered = await api.expect(
        "GET", RUNS, ApiCountedListResponseWorkflowRunListItem, params={"status": state}, wf=wf
    )
    assert run in [r["id"] for r in filtered["data"]]
    assert {r["status"] for r in filtered["data"]} == {state}
    assert filtered["pagination"]["total"] >= len(filtered["data"])

    await api.expect("GET", RUN + "/steps", ApiResponseListWorkflowRunStepOut, **ids)
    await api.expect(
        "GET",
        RUN + "/steps",
        ApiResponseListWorkflowRunStepOut,
        params={"include_result": "true"},
        **ids,
    )
    overview = (
        await api.expect("GET", RUN + "/overview", ApiResponseWorkflowRunOverviewOut, **ids)
    )["data"]
    assert overview["run"]["id"] == run
    assert overview["run"]["status"] == state
    _definition("GET overview workflow_snapshot", overview["workflow_snapshot"]["definition"])

    response = await api.client.get(RUN.format(**ids) + "/data")
    data = check_response(response, "GET", RUN + "/data", WorkflowRunDataResponse, status=200)
    assert response.headers.get("cache-control") == "no-store"
    assert (data["data"]["run_id"], data["data"]["run_status"]) == (run, state)

    await api.expect("GET", RUN + "/outputs", ApiResponseWorkflowRunOutputsOut, **ids)
    await api.expect("GET", RUN + "/analysis", ApiResponseWorkflowRunAnalysisOut, **ids)
    await api.expect("GET", RUNS + "/summary", ApiResponseRunsSummaryOut, wf=wf)

    sinks = _output_node_ids((await _workflow(api, wf))["definition"])
    assert sinks, "the seeded workflows end in an output node"
    if state == "completed":
        await _check_downloads(api, ids, sinks[0], data)
    else:
        await api.expect("GET", RUN + "/download", ApiErrorResponse, status=409, **ids)
        await api.expect(
            "GET",
            RUN + "/nodes/{node}/download",
            ApiErrorResponse,
            status=409,
            node=sinks[0],
            **ids,
        )

    if state == "paused":
        again = await api.expect("POST", RUN + "/pause", ApiResponseWorkflowRunOut, **ids)
        assert again["data"]["status"] == "paused", "pause is idempotent on a paused run"
        resumed = await api.expect("POST", RUN + "/resume", ApiResponseWorkflowRunOut, **ids)
        assert resumed["data"]["status"] in ("pending", "running")
    else:
        await api.expect("POST", RUN + "/resume", ApiErrorResponse, status=409, **ids)

    cancelled = await api.expect("POST", RUN + "/cancel", ApiResponseWorkflowRunOut, **ids)
    expected = state if state in TERMINAL else "cancelled"
    assert cancelled["data"]["status"] == expected


async def _check_downloads(api: Api, ids: dict[str, str], sink: str, data: dict[str, Any]) -> None:
    zipped = await api.expect("GET", RUN + "/download", ApiResponseDownloadUrlOut, **ids)
    archive = await api.client.get(zipped["data"]["url"])
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.testzip() is None
        names = opened.namelist()
    assert any(name.endswith((".wav", ".mp3")) for name in names), names
    assert zipped["data"]["filename"].endswith(".zip")

    await api.expect(
        "GET", RUN + "/nodes/{node}/download", ApiResponseDownloadUrlOut, node=sink, **ids
    )
    cards = [card for row in data["data"].get("rows") or [] for card in row.get("cards") or []]
    audio_ids = [m.group(0) for card in cards if (m := AUDIO_ID.search(card["id"]))]
    assert audio_ids, f"run data cards carry their 16-hex audio id: {[c['id'] for c in cards]}"
    clip = await api.expect(
        "GET", RUN + "/audio/{audio}/url", ApiResponseDownloadUrlOut, audio=audio_ids[0], **ids
    )
    assert (await api.client.get(clip["data"]["url"])).status_code == 200


async def test_the_seeded_past_runs_of_every_workflow_answer_in_the_sdk_models(api: Api) -> None:
    listed = await api.expect(
        "GET", "/api/v1/workflows", ApiCountedListResponseWorkflowListItem, params={"limit": 100}
    )
    seen: set[str] = set()
    for workflow in listed["data"]:
        wf = workflow["id"]
        runs = await api.expect(
            "GET", RUNS, ApiCountedListResponseWorkflowRunListItem, params={"limit": 100}, wf=wf
        )
        for item in runs["data"]:
            ids = {"wf": wf, "run": item["id"]}
            seen.add(item["status"])
            await api.expect("GET", RUN, ApiResponseWorkflowRunDetailOut, **ids)
            await api.expect("GET", RUN + "/steps", ApiResponseListWorkflowRunStepOut, **ids)
            await api.expect("GET", RUN + "/overview", ApiResponseWorkflowRunOverviewOut, **ids)
            await api.expect("GET", RUN + "/data", WorkflowRunDataResponse, **ids)
            await api.expect("GET", RUN + "/outputs", ApiResponseWorkflowRunOutputsOut, **ids)
            await api.expect("GET", RUN + "/analysis", ApiResponseWorkflowRunAnalysisOut, **ids)
            if item["status"] == "completed":
                await api.expect("GET", RUN + "/download", ApiResponseDownloadUrlOut, **ids)
    assert set(RUN_STATES) <= seen, f"the seeded world holds runs in every status, not just {seen}"


# --- workflows --------------------------------------------------------------------------------


async def _workflow(api: Api, wf: str) -> dict[str, Any]:
    body = await api.expect("GET", WF, ApiResponseWorkflowOut, wf=wf)
    _definition("GET workflow", body["data"]["definition"])
    return body["data"]


async def test_listing_workflows_answers_a_counted_page_of_sdk_list_items(api: Api) -> None:
    route = "/api/v1/workflows"
    plain = await api.expect("GET", route, ApiCountedListResponseWorkflowListItem)
    assert set(MAIN_WORKFLOWS) <= {w["id"] for w in plain["data"]}
    assert all("definition" not in w or w["definition"] is None for w in plain["data"])
    assert plain["pagination"]["total"] >= len(plain["data"])

    with_graphs = await api.expect(
        "GET", route, ApiCountedListResponseWorkflowListItem, params={"include_definition": "true"}
    )
    for workflow in with_graphs["data"]:
        _definition("GET workflows?include_definition=true", workflow["definition"])

    page = await api.expect(
        "GET",
        route,
        ApiCountedListResponseWorkflowListItem,
        params=[("sort", "name"), ("order", "asc"), ("limit", "1"), ("offset", "1")],
    )
    assert len(page["data"]) == 1
    assert page["pagination"]["limit"] == 1
    await api.expect(
        "GET",
        route,
        ApiCountedListResponseWorkflowListItem,
        params={"status": "completed", "has_failed_run": "false", "search": "a"},
    )


@pytest.mark.parametrize("wf", MAIN_WORKFLOWS)
async def test_each_seeded_workflow_reads_as_an_sdk_workflow_with_a_typed_definition(
    api: Api, wf: str
) -> None:
    workflow = await _workflow(api, wf)
    assert workflow["id"] == wf
    assert workflow["name_source"] in ("placeholder", "generated", "user")
    markdown = await api.expect("GET", WF + "/markdown", ApiResponseWorkflowMarkdownOut, wf=wf)
    assert markdown["data"]["workflow_id"] == wf
    await api.expect("GET", WF + "/uploads", ApiListResponseUploadOut, wf=wf)
    await api.expect("GET", RUNS + "/summary", ApiResponseRunsSummaryOut, wf=wf)
    await api.expect(
        "GET",
        RUNS + "/summary",
        ApiResponseRunsSummaryOut,
        params={"from": "2020-01-01T00:00:00+00:00", "to": "2030-01-01T00:00:00Z"},
        wf=wf,
    )


async def test_preview_and_estimate_answer_sdk_estimates_with_and_without_a_script(
    api: Api,
) -> None:
    wf = seed.WORKFLOW_COMPLETES_ID
    saved = await api.expect("POST", RUNS + "/preview", ApiResponseEstimateResponse, wf=wf)
    assert saved["data"]["min_credits"] <= saved["data"]["expected_credits"]
    assert saved["data"]["expected_credits"] <= saved["data"]["max_credits"]
    await api.expect(
        "POST",
        RUNS + "/preview",
        ApiResponseEstimateResponse,
        json={"script_text": "One line.\nAnother line.", "source_language": "en-us"},
        wf=wf,
    )
    await api.expect("POST", WF + "/estimate", ApiResponseEstimateResponse, wf=wf)


async def test_creating_editing_duplicating_and_deleting_a_workflow_answer_sdk_workflows(
    api: Api,
) -> None:
    source = await _workflow(api, seed.WORKFLOW_COMPLETES_ID)
    definition = source["definition"]
    route = "/api/v1/workflows"

    valid = await api.expect(
        "POST", route + "/validate", ApiResponseWorkflowValidateOut, json={"definition": definition}
    )
    assert valid["data"]["valid"] is True
    available = await api.expect(
        "GET",
        route + "/name-availability",
        ApiResponseWorkflowNameAvailabilityOut,
        params={"name": "Contract copy"},
    )
    assert available["data"]["available"] is True

    response = await api.client.post(
        route, json={"name": "Contract copy", "description": "d", "definition": definition}
    )
    assert response.status_code in (200, 201), response.text
    created = check_response(
        response, "POST", route, ApiResponseWorkflowOut, status=response.status_code
    )
    wf = created["data"]["id"]
    assert created["data"]["name_source"] == "user"
    _definition("POST workflows", created["data"]["definition"])

    response = await api.client.post(route, json={})
    unnamed = check_response(
        response, "POST", route, ApiResponseWorkflowOut, status=response.status_code
    )
    assert unnamed["data"]["name_source"] == "placeholder"

    replaced = await api.expect(
        "PUT",
        WF,
        ApiResponseWorkflowOut,
        json={"name": "Replaced", "definition": definition},
        wf=wf,
    )
    assert replaced["data"]["name"] == "Replaced"
    patched = await api.expect(
        "PATCH", WF, ApiResponseWorkflowOut, json={"description": "patched"}, wf=wf
    )
    assert patched["data"]["description"] == "patched"
    copy = await api.expect("POST", WF + "/duplicate", ApiResponseWorkflowOut, status=201, wf=wf)
    assert copy["data"]["name"] == "Replaced (Copy)"

    await api.expect("DELETE", WF, ApiResponseDict, wf=wf)
    gone = await api.expect("GET", WF, ApiErrorResponse, status=404, wf=wf)
    assert gone["error"]["code"] == "NOT_FOUND"


# --- account and catalogs -----------------------------------------------------------------------


async def test_account_and_catalog_endpoints_answer_in_the_sdk_models(api: Api) -> None:
    whoami = await api.expect("GET", "/api/v1/auth/whoami", ApiResponseAuthWhoamiOut)
    assert whoami["data"]["auth_kind"] == "api_key"
    assert whoami["data"]["workspace_id"] == seed.WORKSPACE_ID
    assert whoami["data"]["scopes"] == sorted(set(whoami["data"]["scopes"]))
    await api.expect("GET", "/api/v1/users/me/credits", ApiResponseBalanceResponse)
    await api.expect("GET", "/api/v1/users/me/limits", ApiResponsePlanLimits)
    nodes = await api.expect("GET", "/api/v1/nodes", ApiListResponseNodePortsOut)
    assert nodes["data"], "the node catalog is not empty"
    voices = await api.expect("GET", "/api/v1/voices", ApiCountedListResponseVoiceOut)
    assert voices["data"], "the voice catalog is not empty"
    templates = await api.expect("GET", "/api/v1/templates", ApiListResponseTemplateOut)
    assert templates["data"], "the template gallery is not empty"


# --- errors ---------------------------------------------------------------------------------------


async def test_unknown_workflows_and_runs_are_404_in_the_sdk_error_envelope(api: Api) -> None:
    missing = str(uuid.uuid4())
    body = await api.expect("GET", WF, ApiErrorResponse, status=404, wf=missing)
    assert body["error"]["code"] == "NOT_FOUND"
    body = await api.expect(
        "GET",
        RUN + "/status",
        ApiErrorResponse,
        status=404,
        wf=seed.WORKFLOW_COMPLETES_ID,
        run=missing,
    )
    assert body["error"]["code"] == "NOT_FOUND"


async def test_conflicts_are_409_in_the_sdk_error_envelope(api: Api) -> None:
    wf = seed.WORKFLOW_LONG_ID
    run = await _start(api, wf)
    await api.expect("POST", RUNS, ApiErrorResponse, status=409, wf=wf)
    await api.expect("GET", RUN + "/download", ApiErrorResponse, status=409, wf=wf, run=run["id"])


async def test_validation_failures_are_422_in_both_shapes_the_sdk_models(api: Api) -> None:
    envelope = await api.expect(
        "GET",
        RUNS,
        ApiErrorResponse,
        status=422,
        params={"status": "completed,,failed"},
        wf=seed.WORKFLOW_COMPLETES_ID,
    )
    assert envelope["error"]["code"] == "VALIDATION_ERROR"
    fastapi = await api.expect(
        "GET", "/api/v1/workflows", HttpValidationError, status=422, params={"limit": "500"}
    )
    assert fastapi["detail"], "a FastAPI-style 422 lists what was wrong"
    assert fastapi["detail"][0]["loc"][-1] == "limit"


# Either shape is a legitimate 422 (the SDK types a 422 body as Any and models both).
ANY_422 = ApiErrorResponse | HttpValidationError
BAD_QUERIES = [
    ("/api/v1/workflows", {"limit": "0"}),
    ("/api/v1/workflows", {"limit": "101"}),
    ("/api/v1/workflows", {"offset": "-1"}),
    ("/api/v1/workflows", {"status": "bogus"}),
    ("/api/v1/workflows", {"sort": "colour"}),
    ("/api/v1/workflows", {"last_run_after": "2026-01-01T00:00:00"}),
    (RUNS, {"status": "completed,bogus"}),
    (RUNS, {"sort": "name"}),
    (RUNS, {"limit": "500"}),
    (RUNS + "/summary", {"from": "2026-01-01T00:00:00"}),
    (RUNS + "/summary", {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}),
    (RUN + "/data", {"limit": "101"}),
]


@pytest.mark.parametrize(("route", "query"), BAD_QUERIES, ids=lambda v: str(v))
async def test_every_documented_validation_failure_is_a_422_in_one_of_the_sdk_shapes(
    api: Api, route: str, query: dict[str, str]
) -> None:
    ids = {"wf": seed.WORKFLOW_COMPLETES_ID, "run": seed.RUN_COMPLETED_ID}
    body = await api.expect("GET", route, ANY_422, status=422, params=query, **ids)
    assert body.get("detail") or body["error"]["code"] == "VALIDATION_ERROR"


async def test_a_refused_key_and_a_missing_scope_answer_the_sdk_error_envelope() -> None:
    allowed = "op_live_" + "R" * 32
    sandbox = Sandbox(
        manual_clock=True,
        api_keys=[ApiKey(allowed, scopes=frozenset({"workflows:read"}), role="admin")],
    )
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL) as client:
        api = Api(client)
        await api.expect(
            "GET",
            "/api/v1/auth/whoami",
            ApiErrorResponse,
            status=401,
            headers={"Authorization": "Bearer op_live_" + "W" * 32},
        )
        forbidden = await api.expect(
            "POST",
            RUNS,
            ApiErrorResponse,
            status=403,
            headers={"Authorization": f"Bearer {allowed}"},
            wf=seed.WORKFLOW_COMPLETES_ID,
        )
        assert forbidden["error"]["code"] == "FORBIDDEN"
