"""The dictionary and usage endpoints, held to the official SDK's models strictly (in process),
and driven with the SDK's own client methods, unchanged, over loopback."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from onepin import AsyncOnepinClient
from onepin._version_gate import _async_response_hook
from onepin.core.api_error import ApiError
from onepin.types import (
    ApiErrorResponse,
    ApiListResponseDictionaryOut,
    ApiListResponseUsageActivityOut,
    ApiResponseDict,
    ApiResponseDictionaryOut,
    ApiResponseListDictionaryLanguageOut,
    ApiResponsePronunciationSuggestion,
    ApiResponseUsageByLanguageOut,
    ApiResponseUsageSummaryOut,
    HttpValidationError,
)

from tests.support.sandbox_process import ServedSandbox

from .calls import Api

pytestmark = pytest.mark.anyio

DICT = "/api/v1/dictionary"
ENTRY = DICT + "/{entry}"


async def test_every_dictionary_endpoint_answers_in_the_sdk_models(api: Api) -> None:
    listed = await api.expect(
        "GET", DICT, ApiListResponseDictionaryOut, params={"language": "en-us"}
    )
    assert {row["word"] for row in listed["data"]} == {"Northwind", "OnePin"}
    await api.expect(
        "GET",
        DICT,
        ApiListResponseDictionaryOut,
        params=[("language", "en-us"), ("method", "spelled"), ("method", "recorded")],
    )
    found = await api.expect(
        "GET", DICT + "/search", ApiListResponseDictionaryOut, params={"search": "kube"}
    )
    assert [row["language"] for row in found["data"]] == ["ko-kr"]
    languages = await api.expect("GET", DICT + "/languages", ApiResponseListDictionaryLanguageOut)
    assert languages["data"] == [{"code": "en-us", "count": 2}, {"code": "ko-kr", "count": 1}]
    suggestion = await api.expect(
        "POST",
        DICT + "/suggest-pronunciation",
        ApiResponsePronunciationSuggestion,
        json={"word": "Grafana", "language": "en-us"},
    )
    assert suggestion["data"]["ipa"] is None
    created = await api.expect(
        "POST",
        DICT,
        ApiResponseDictionaryOut,
        status=201,
        json={
            "word": "Grafana",
            "language": "ja-jp",
            "method": "spelled",
            "pronunciation": "グラファナ",
        },
    )
    entry = created["data"]["id"]
    await api.expect(
        "PUT", ENTRY, ApiResponseDictionaryOut, json={"description": "Dashboards."}, entry=entry
    )
    await api.expect(
        "POST",
        DICT,
        ApiErrorResponse,
        status=409,
        json={"word": "grafana", "language": "ja-jp", "method": "spelled", "pronunciation": "x"},
    )
    await api.expect("DELETE", ENTRY, ApiResponseDict, entry=entry)
    await api.expect("DELETE", ENTRY, ApiErrorResponse, status=404, entry=entry)
    await api.expect(
        "GET", DICT, HttpValidationError, status=422, params={"limit": "51", "language": "en-us"}
    )
    await api.expect("GET", DICT, HttpValidationError, status=422)
    await api.expect(
        "POST",
        DICT,
        ApiErrorResponse,
        status=422,
        json={"word": "nginx", "language": "en-us", "method": "spelled"},
    )


async def test_every_usage_endpoint_answers_in_the_sdk_models(api: Api) -> None:
    for view in ("daily", "weekly", "monthly"):
        await api.expect(
            "GET",
            "/api/v1/usage/summary",
            ApiResponseUsageSummaryOut,
            params={"range": "90d", "activity_view": view, "timezone": "Asia/Tokyo"},
        )
        await api.expect(
            "GET",
            "/api/v1/usage/by-language",
            ApiResponseUsageByLanguageOut,
            params={"activity_view": view},
        )
    await api.expect("GET", "/api/v1/usage/by-language", ApiResponseUsageByLanguageOut)
    page = await api.expect(
        "GET", "/api/v1/usage/activity", ApiListResponseUsageActivityOut, params={"limit": 2}
    )
    assert len(page["data"]) == 2
    assert page["pagination"]["next"] is not None
    await api.expect(
        "GET", "/api/v1/usage/summary", HttpValidationError, status=422, params={"range": "7d"}
    )
    await api.expect(
        "GET",
        "/api/v1/usage/summary",
        ApiErrorResponse,
        status=422,
        params={"timezone": "Mars/Olympus"},
    )


async def test_the_official_client_manages_the_dictionary_and_reads_usage(
    loopback: ServedSandbox,
) -> None:
    with anyio.fail_after(60):
        async with httpx.AsyncClient(
            timeout=30, event_hooks={"response": [_async_response_hook]}
        ) as http:
            client = AsyncOnepinClient(
                api_key=loopback.key, base_url=loopback.base_url, httpx_client=http
            )
            listed = await client.dictionary.list_dictionary_entries(
                language="en-us", method=["spelled"], sort="word", order="asc", limit=50
            )
            assert [entry.word for entry in listed.data] == ["Northwind", "OnePin"]
            suggestion = await client.dictionary.suggest_pronunciation(
                word="kubectl", language="ja-jp"
            )
            created = await client.dictionary.create_dictionary_entry(
                word="kubectl",
                method="spelled",
                language="ja-JP",
                pronunciation=suggestion.data.pronunciation,
            )
            assert created.data.language == "ja-jp"
            changed = await client.dictionary.update_dictionary_entry(
                created.data.id, description="The Kubernetes CLI."
            )
            assert changed.data.pronunciation == suggestion.data.pronunciation
            found = await client.dictionary.search_dictionary_entries(
                search="KUBE", language=["ja-jp", "ko-kr"]
            )
            assert sorted(e.language for e in found.data) == ["ja-jp", "ko-kr"]
            languages = await client.dictionary.list_dictionary_languages()
            assert [row.code for row in languages.data] == ["en-us", "ja-jp", "ko-kr"]
            await client.dictionary.delete_dictionary_entry(created.data.id)
            with pytest.raises(ApiError) as missing:
                await client.dictionary.delete_dictionary_entry(str(uuid.uuid4()))
            assert missing.value.status_code == 404

            summary = await client.usage.usage_summary(range="30d", activity_view="weekly")
            by_language = await client.usage.usage_by_language(range="30d")
            daily = sum(day.credits for day in summary.data.daily or [])
            assert by_language.data.total_credits == daily > 0
            activity = await client.usage.usage_activity(type="workflow_run", limit=3)
            assert len(activity.data) == 3
            assert {event.action for event in activity.data} == {"workflow_run"}
