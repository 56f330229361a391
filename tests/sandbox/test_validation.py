"""422s in both shapes the real API uses: FastAPI's `detail[]` for request-schema failures,
the OnePin envelope with `error.details[]` for semantic ones."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from onepin_mcp.sandbox import seed

pytestmark = pytest.mark.anyio

WORKFLOWS = "/api/v1/workflows"
RUNS = f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs"


def schema_issues(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    return list(body["detail"])


def envelope_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error", "meta"}, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"], "an envelope 422 says which field was wrong"
    return dict(body["error"])


@pytest.mark.parametrize(
    ("params", "loc", "kind"),
    [
        ({"limit": "500"}, ["query", "limit"], "less_than_equal"),
        ({"limit": "0"}, ["query", "limit"], "greater_than_equal"),
        ({"offset": "-1"}, ["query", "offset"], "greater_than_equal"),
        ({"limit": "ten"}, ["query", "limit"], "int_parsing"),
        ({"sort": "size"}, ["query", "sort", 0], "enum"),
        ({"status": "cancelled"}, ["query", "status"], "enum"),
        ({"has_failed_run": "maybe"}, ["query", "has_failed_run"], "bool_parsing"),
        (
            {"last_run_after": "yesterday"},
            ["query", "last_run_after"],
            "datetime_from_date_parsing",
        ),
    ],
)
async def test_query_schema_failures_answer_fastapi_details(
    client: httpx.AsyncClient, params: dict[str, str], loc: list[Any], kind: str
) -> None:
    issues = schema_issues(await client.get(WORKFLOWS, params=params))
    assert issues[0]["loc"] == loc
    assert issues[0]["type"] == kind
    assert issues[0]["msg"]


async def test_the_limit_error_matches_the_api_example_word_for_word(
    client: httpx.AsyncClient,
) -> None:
    issues = schema_issues(await client.get(WORKFLOWS, params={"limit": 500}))
    assert issues == [
        {
            "loc": ["query", "limit"],
            "msg": "Input should be less than or equal to 100",
            "type": "less_than_equal",
            "input": "500",
            "ctx": {"le": 100},
        }
    ]


async def test_several_schema_failures_are_reported_together(client: httpx.AsyncClient) -> None:
    issues = schema_issues(await client.get(RUNS, params={"limit": "101", "offset": "-5"}))
    assert {tuple(issue["loc"]) for issue in issues} == {("query", "limit"), ("query", "offset")}


async def test_malformed_or_mistyped_bodies_answer_fastapi_details(
    client: httpx.AsyncClient,
) -> None:
    broken = schema_issues(
        await client.post(
            WORKFLOWS, content=b"{not json", headers={"content-type": "application/json"}
        )
    )
    assert broken[0]["type"] == "json_invalid"
    mistyped = schema_issues(await client.post(WORKFLOWS, json={"name": 7}))
    assert mistyped[0]["loc"] == ["body", "name"]
    not_object = schema_issues(await client.post(RUNS, json=["script"]))
    assert not_object[0]["loc"] == ["body"]
    missing = schema_issues(
        await client.put(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}", json={"name": "x"})
    )
    assert missing[0]["loc"] == ["body", "definition"]
    assert missing[0]["type"] == "missing"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("completed,,failed", "Empty status token is not allowed."),
        ("done", "Unknown status 'done'"),
        ("Completed", "Unknown status 'Completed'"),
    ],
)
async def test_bad_run_status_tokens_answer_the_onepin_envelope(
    client: httpx.AsyncClient, status: str, message: str
) -> None:
    error = envelope_error(await client.get(RUNS, params={"status": status}))
    assert error["message"] == "Invalid status filter."
    assert error["details"][0]["field"] == "status"
    assert error["details"][0]["message"].startswith(message)


async def test_several_status_tokens_or_match(client: httpx.AsyncClient) -> None:
    runs = f"{WORKFLOWS}/{seed.WORKFLOW_LONG_ID}/runs"
    body = (await client.get(runs, params={"status": "completed,cancelled"})).json()
    assert {r["status"] for r in body["data"]} == {"completed", "cancelled"}
    assert body["pagination"]["total"] == 2


async def test_naive_datetimes_and_inverted_ranges_answer_the_onepin_envelope(
    client: httpx.AsyncClient,
) -> None:
    naive = envelope_error(
        await client.get(RUNS + "/summary", params={"from": "2026-03-01T00:00:00"})
    )
    assert naive["details"][0]["field"] == "from"
    inverted = envelope_error(
        await client.get(
            RUNS + "/summary",
            params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-01T00:00:00+00:00"},
        )
    )
    assert inverted["message"] == "Invalid date range."
    naive_list = envelope_error(
        await client.get(WORKFLOWS, params={"last_run_before": "2026-03-01T00:00:00"})
    )
    assert naive_list["details"][0]["field"] == "last_run_before"


async def test_an_invalid_graph_names_every_broken_field(client: httpx.AsyncClient) -> None:
    definition = {
        "graph": {
            "nodes": [
                {"id": "a", "type": "source_script", "position": {"x": 0, "y": 0}},
                {"id": "b", "type": "operator_teleporter", "position": {"x": 1}},
            ],
            "edges": [
                {
                    "id": "e",
                    "source": "a",
                    "sourcePort": "lines",
                    "target": "z",
                    "targetPort": "lines",
                }
            ],
        }
    }
    error = envelope_error(
        await client.post(WORKFLOWS, json={"name": "Broken", "definition": definition})
    )
    fields = {detail["field"] for detail in error["details"]}
    assert fields == {
        "definition.graph.nodes[1].type",
        "definition.graph.nodes[1].position",
        "definition.graph.edges[0].target",
    }


async def test_blank_names_and_empty_patches_are_refused(client: httpx.AsyncClient) -> None:
    blank = envelope_error(await client.post(WORKFLOWS, json={"name": "   "}))
    assert blank["details"][0]["field"] == "name"
    empty = envelope_error(await client.patch(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}", json={}))
    assert empty["details"][0]["field"] == "body"


async def test_starting_a_workflow_without_a_script_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    runs = f"{WORKFLOWS}/{seed.WORKFLOW_DRAFT_ID}/runs"
    error = envelope_error(await client.post(runs))
    assert error["details"][0]["field"] == "script_text"
    assert "empty" in error["message"]
    preview = envelope_error(await client.post(runs + "/preview"))
    assert preview["details"][0]["field"] == "script_text"


async def test_validate_reports_gate_failures_without_saving(client: httpx.AsyncClient) -> None:
    workflow = (await client.get(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}")).json()["data"]
    good = (
        await client.post(f"{WORKFLOWS}/validate", json={"definition": workflow["definition"]})
    ).json()
    assert good["data"]["valid"] is True
    assert good["data"]["summary"]["output_locales"] == ["en-us", "ko-kr"]
    broken = workflow["definition"]
    broken["graph"]["nodes"][3]["config"]["voice_map"].pop("ko-kr")
    bad = (await client.post(f"{WORKFLOWS}/validate", json={"definition": broken})).json()
    assert bad["data"]["valid"] is False
    assert "ko-kr" in bad["data"]["errors"][0]["message"]
    assert bad["data"]["errors"][0]["node_id"] == "gen-1"
    after = (await client.get(f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}")).json()["data"]
    assert "ko-kr" in after["definition"]["graph"]["nodes"][3]["config"]["voice_map"]
