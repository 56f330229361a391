"""The pronunciation dictionary: its endpoints, and runs that honour it through the phoneme
injector, so that the seeded Release notes failure is fixed by entries alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from onepin_mcp.sandbox import ApiKey, Sandbox, seed

from .conftest import BASE_URL
from .test_runs import TERMINAL, run_until, runs_of, start

pytestmark = pytest.mark.anyio

DICT = "/api/v1/dictionary"
FAILS = seed.WORKFLOW_FAILS_ID
RELEASE_TERMS = ("Kubernetes", "kubectl", "Grafana", "OAuth")


async def add(client: httpx.AsyncClient, word: str, language: str, **extra: Any) -> dict[str, Any]:
    body = {"word": word, "language": language, "method": "spelled", "pronunciation": word.upper()}
    response = await client.post(DICT, json={**body, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def steps_of(client: httpx.AsyncClient, workflow_id: str, run_id: str) -> list[Any]:
    url = f"{runs_of(workflow_id)}/{run_id}/steps"
    response = await client.get(url, params={"include_result": "true"})
    return list(response.json()["data"])


async def takes_of(client: httpx.AsyncClient, workflow_id: str, run_id: str) -> dict[Any, Any]:
    """(line_index, locale) → (script, validator scores) of every card of the run."""
    response = await client.get(f"{runs_of(workflow_id)}/{run_id}/data", params={"limit": 100})
    return {
        (card["line_index"], card["locale_code"]): (
            card["script"],
            [v["score"] for v in card["validations"]],
        )
        for row in response.json()["data"]["rows"]
        for card in row["cards"]
    }


async def test_the_seeded_failure_records_every_rejected_take_with_its_words_and_0_based_line(
    client: httpx.AsyncClient,
) -> None:
    failed = (await steps_of(client, FAILS, seed.RUN_FAILED_ID))[-1]
    assert failed["status"] == "failed"
    rejected = failed["result"]["rejected"]
    assert [(r["line_index"], r["locale_code"], r["words"]) for r in rejected] == [
        (1, "ja-jp", ["kubectl", "Kubernetes"]),
        (2, "ja-jp", ["Grafana"]),
        (3, "ja-jp", ["OAuth"]),
    ]
    assert all(r["threshold"] == 85 and r["score"] < 85 for r in rejected)
    assert [r["line_id"] for r in rejected] == ["ln-1-ja-jp", "ln-2-ja-jp", "ln-3-ja-jp"]
    # The summary names every rejected take, numbered as line_index is (from 0).
    error = failed["error"]
    assert "rejected 3 take(s)" in error
    for r in rejected:
        assert f"line_index {r['line_index']} (ja-jp) scored {r['score']:.1f}" in error
    assert "'kubectl', 'Kubernetes' mispronounced" in error
    assert "'Grafana' mispronounced" in error
    assert "'OAuth' mispronounced" in error
    # The run data's cards agree: the same takes, their scores and the same words.
    scores = {(r["line_index"], r["locale_code"]): r["score"] for r in rejected}
    data = await client.get(f"{runs_of(FAILS)}/{seed.RUN_FAILED_ID}/data")
    cards = [c for row in data.json()["data"]["rows"] for c in row["cards"]]
    for card in cards:
        key = (card["line_index"], card["locale_code"])
        if key in scores:
            (validation,) = card["validations"]
            assert validation["score"] == scores[key]
            words = [s["text"] for s in validation["segments"]]
            assert words == next(r["words"] for r in rejected if r["line_index"] == key[0])
            assert card["rejected"]["verdicts"][0]["threshold"] == 85


async def test_release_notes_passes_after_entries_for_its_words_and_the_english_takes_stay(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    failed = (await steps_of(client, FAILS, seed.RUN_FAILED_ID))[-1]
    words = {word for r in failed["result"]["rejected"] for word in r["words"]}
    assert words == set(RELEASE_TERMS)
    for word in sorted(words):
        suggestion = await client.post(
            DICT + "/suggest-pronunciation", json={"word": word, "language": "ja-jp"}
        )
        await add(client, word, "ja-jp", pronunciation=suggestion.json()["data"]["pronunciation"])
    run = await start(client, FAILS)
    done, _, _ = await run_until(client, sandbox, FAILS, run["id"], TERMINAL)
    assert done["status"] == "completed", done["error"]
    steps = await steps_of(client, FAILS, run["id"])
    checks = [s for s in steps if s["node_id"] == "pron-1"]
    assert len(checks) == 1, "passed at the first check, no retry"
    assert checks[0]["result"]["failed"] == 0
    assert checks[0]["result"]["rejected"] == []
    before = await takes_of(client, FAILS, seed.RUN_FAILED_ID)
    after = await takes_of(client, FAILS, run["id"])
    english = [key for key in after if key[1] == "en-us"]
    assert len(english) == 5
    for key in english:
        assert after[key] == before[key], f"English take {key} changed"


async def test_an_entry_in_another_locale_or_added_after_the_start_changes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    # The seed's ko-kr "Kubernetes" entry is there, and the ja-jp takes still fail.
    for word in RELEASE_TERMS:
        if word != "Kubernetes":
            await add(client, word, "ko-kr")
    run = await start(client, FAILS)
    # Entries added once the run has started are not read by it: the dictionary is fixed at
    # start, as the definition is.
    for word in RELEASE_TERMS:
        await add(client, word, "ja-jp")
    done, _, _ = await run_until(client, sandbox, FAILS, run["id"], TERMINAL)
    assert done["status"] == "failed"
    assert "'kubectl', 'Kubernetes' mispronounced" in done["error"]


async def test_a_workflow_without_a_phoneme_injector_reads_no_dictionary(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    for word in RELEASE_TERMS:
        await add(client, word, "ja-jp")
    workflow = (await client.get(f"/api/v1/workflows/{FAILS}")).json()["data"]
    graph = workflow["definition"]["graph"]
    assert [n["id"] for n in graph["nodes"]] == [
        "src-1",
        "tr-1",
        "phon-1",
        "gen-1",
        "pron-1",
        "sink-1",
    ]
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "phon-1"]
    graph["edges"] = [e for e in graph["edges"] if "phon-1" not in (e["source"], e["target"])] + [
        {
            "id": "e-tr-gen",
            "source": "tr-1",
            "sourcePort": "lines",
            "target": "gen-1",
            "targetPort": "lines",
        }
    ]
    workflow["definition"]["execution"]["steps"].remove("phon-1")
    patched = await client.patch(
        f"/api/v1/workflows/{FAILS}", json={"definition": workflow["definition"]}
    )
    assert patched.status_code == 200, patched.text
    run = await start(client, FAILS)
    done, _, _ = await run_until(client, sandbox, FAILS, run["id"], TERMINAL)
    assert done["status"] == "failed"


async def test_entries_are_listed_searched_counted_changed_and_removed(
    client: httpx.AsyncClient,
) -> None:
    listed = (await client.get(DICT, params={"language": "en-us"})).json()
    assert [e["word"] for e in listed["data"]] == ["Northwind", "OnePin"]
    newest_first = await client.get(
        DICT, params={"language": "en-us", "sort": "created_at", "order": "desc", "limit": 1}
    )
    assert [e["word"] for e in newest_first.json()["data"]] == ["OnePin"]
    grafana = await add(client, "Grafana", "ja-jp")
    assert grafana["created_by"] is None
    assert grafana["uses_count"] == 0
    found = (await client.get(DICT + "/search", params={"search": "GRAF"})).json()["data"]
    assert [e["id"] for e in found] == [grafana["id"]]
    none = await client.get(DICT + "/search", params=[("search", "graf"), ("language", "ko-kr")])
    assert none.json()["data"] == []
    languages = (await client.get(DICT + "/languages")).json()["data"]
    assert languages == [
        {"code": "en-us", "count": 2},
        {"code": "ja-jp", "count": 1},
        {"code": "ko-kr", "count": 1},
    ]
    changed = await client.put(f"{DICT}/{grafana['id']}", json={"pronunciation": "gura-fana"})
    assert changed.json()["data"]["pronunciation"] == "gura-fana"
    assert changed.json()["data"]["word"] == "Grafana"
    assert (await client.delete(f"{DICT}/{grafana['id']}")).json()["data"] == {}
    assert (await client.delete(f"{DICT}/{grafana['id']}")).status_code == 404
    assert (await client.put(f"{DICT}/{grafana['id']}", json={"word": "x"})).status_code == 404


async def test_a_second_entry_for_a_word_in_a_locale_is_a_409_whatever_its_case(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        DICT,
        json={"word": "northwind", "language": "EN-US", "method": "spelled", "pronunciation": "x"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert seed.DICT_NORTHWIND_ID in response.json()["error"]["message"]
    other = await add(client, "Northwind", "en-gb")
    renamed = await client.put(f"{DICT}/{other['id']}", json={"language": "en-us"})
    assert renamed.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "field"),
    [
        ("GET", DICT, {}, None, ["query", "language"]),
        ("GET", DICT, {"language": "xx-yy"}, None, ["query", "language"]),
        ("GET", DICT, {"language": "en-us", "limit": "51"}, None, ["query", "limit"]),
        ("GET", DICT, {"language": "en-us", "method": "ipa"}, None, ["query", "method", 0]),
        ("GET", DICT + "/search", {}, None, ["query", "search"]),
        ("POST", DICT, {}, {"word": "x", "language": "en-us"}, ["body", "method"]),
        ("POST", DICT, {}, {"word": "x", "language": "en-us", "method": "ipa"}, ["body", "method"]),
        ("POST", DICT + "/suggest-pronunciation", {}, {"word": "x"}, ["body", "language"]),
    ],
)
async def test_malformed_dictionary_requests_are_422_naming_the_field(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    params: dict[str, str],
    body: dict[str, str] | None,
    field: list[Any],
) -> None:
    response = await client.request(method, path, params=params, json=body)
    assert response.status_code == 422, response.text
    assert [issue["loc"] for issue in response.json()["detail"]] == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"word": "  ", "language": "en-us", "method": "spelled", "pronunciation": "x"}, "word"),
        ({"word": "x", "language": "tlh", "method": "spelled", "pronunciation": "x"}, "language"),
        ({"word": "x", "language": "en-us", "method": "spelled"}, "pronunciation"),
        ({"word": "x", "language": "en-us", "method": "recorded"}, "upload_id"),
    ],
)
async def test_entries_that_cannot_be_applied_are_refused_with_the_field_at_fault(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await client.post(DICT, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field


async def test_an_update_cannot_null_a_required_field(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{DICT}/{seed.DICT_ONEPIN_ID}", json={"word": None})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "word"


async def test_suggestions_are_deterministic_and_read_known_terms_per_language(
    client: httpx.AsyncClient,
) -> None:
    async def suggest(word: str, language: str) -> str:
        response = await client.post(
            DICT + "/suggest-pronunciation", json={"word": word, "language": language}
        )
        assert response.json()["data"]["ipa"] is None
        return str(response.json()["data"]["pronunciation"])

    assert await suggest("Kubernetes", "en-us") == "koo-ber-NET-eez"
    assert await suggest("kubernetes", "ja-jp") == "クバネティス"
    assert await suggest("Podonos", "en-us") == "PO-do-nos"
    assert await suggest("Podonos", "en-us") == await suggest("Podonos", "fr-fr")


async def test_dictionary_scopes_and_role_are_checked() -> None:
    reader = "op_live_" + "R" * 32
    writer = "op_live_" + "W" * 32
    viewer = "op_live_" + "V" * 32
    sandbox = Sandbox(
        manual_clock=True,
        api_keys=[
            ApiKey(reader, scopes=frozenset({"dictionary:read"})),
            ApiKey(writer, scopes=frozenset({"dictionary:write"})),
            ApiKey(viewer, role="viewer"),
        ],
    )
    body = {"word": "nginx", "language": "en-us", "method": "spelled", "pronunciation": "x"}
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL) as http:

        async def call(key: str, method: str, path: str, **kwargs: Any) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return (await http.request(method, path, headers=headers, **kwargs)).status_code

        assert await call(reader, "GET", DICT, params={"language": "en-us"}) == 200
        assert await call(reader, "POST", DICT, json=body) == 403
        assert await call(writer, "GET", DICT, params={"language": "en-us"}) == 403
        assert await call(writer, "POST", DICT, json=body) == 201
        assert await call(viewer, "GET", DICT + "/languages") == 200
        assert await call(viewer, "DELETE", f"{DICT}/{seed.DICT_ONEPIN_ID}") == 403
