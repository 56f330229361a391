"""The dictionary and usage methods of the client, against the sandbox: typed answers, errors
mapped as every other endpoint's, reads retried and writes not."""

from __future__ import annotations

import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinInputError
from onepin_mcp.api.models import (
    DictionaryEntry,
    DictionaryLanguage,
    UsageActivityPage,
    UsageByLanguage,
    UsageSummary,
)
from onepin_mcp.sandbox import Sandbox, seed

from .test_client_retries import requests_to

pytestmark = pytest.mark.anyio

DICT = "/api/v1/dictionary"


async def test_entries_are_listed_created_changed_and_deleted_as_typed_models(
    client: OnePinClient,
) -> None:
    page = await client.list_dictionary_entries("en-us", method=["spelled"])
    assert [entry.word for entry in page.items] == ["Northwind", "OnePin"]
    assert all(isinstance(entry, DictionaryEntry) for entry in page.items)
    assert page.next_offset is None
    suggestion = await client.suggest_pronunciation("Grafana", "ja-jp")
    created = await client.create_dictionary_entry(
        word="Grafana", language="ja-jp", pronunciation=suggestion.pronunciation
    )
    assert (created.language, created.method, created.pronunciation) == (
        "ja-jp",
        "spelled",
        "グラファナ",
    )
    changed = await client.update_dictionary_entry(created.id, description=None, ipa="gɾaɸana")
    assert changed.ipa == "gɾaɸana"
    assert changed.pronunciation == "グラファナ", "fields not given are kept"
    found = await client.search_dictionary_entries("graf", language=["ja-jp"])
    assert [entry.id for entry in found.items] == [created.id]
    languages = await client.list_dictionary_languages()
    assert languages[0] == DictionaryLanguage(code="en-us", count=2)
    assert await client.delete_dictionary_entry(created.id) == {}


async def test_a_duplicate_is_a_conflict_and_an_unknown_entry_a_404(client: OnePinClient) -> None:
    with pytest.raises(OnePinAPIError) as duplicate:
        await client.create_dictionary_entry(word="onepin", language="en-us", pronunciation="x")
    assert (duplicate.value.status, duplicate.value.code) == (409, "CONFLICT")
    with pytest.raises(OnePinAPIError) as missing:
        await client.delete_dictionary_entry("00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404
    with pytest.raises(OnePinAPIError) as invalid:
        await client.create_dictionary_entry(word="nginx", language="en-us")
    assert invalid.value.status == 422
    assert [detail.field for detail in invalid.value.details] == ["pronunciation"]


async def test_entry_ids_and_empty_updates_are_refused_before_any_request(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    with pytest.raises(OnePinInputError):
        await client.delete_dictionary_entry("../workflows")
    with pytest.raises(OnePinInputError):
        await client.update_dictionary_entry(seed.DICT_ONEPIN_ID)
    assert not [r for r in sandbox.requests if r.path.startswith(DICT)]


async def test_reads_and_suggestions_are_retried_and_creates_are_not(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"method": "GET", "path": DICT, "status": 503, "times": 1})
    await client.list_dictionary_entries("en-us")
    assert requests_to(sandbox, DICT) == [503, 200]
    suggest = DICT + "/suggest-pronunciation"
    sandbox.faults.add({"method": "POST", "path": suggest, "status": 503, "times": 1})
    await client.suggest_pronunciation("nginx", "en-us")
    assert requests_to(sandbox, suggest, "POST") == [503, 200]
    sandbox.faults.add({"method": "POST", "path": DICT, "status": 503, "times": 1})
    with pytest.raises(OnePinAPIError):
        await client.create_dictionary_entry(word="nginx", language="en-us", pronunciation="x")
    assert requests_to(sandbox, DICT, "POST") == [503]


async def test_usage_summary_and_languages_agree_on_the_credits_of_the_window(
    client: OnePinClient,
) -> None:
    summary = await client.get_usage_summary(range="30d", activity_view="weekly", timezone="UTC")
    assert isinstance(summary, UsageSummary)
    assert summary.activity is not None
    assert len(summary.activity.buckets) == 12
    by_language = await client.get_usage_by_language(range="30d")
    assert isinstance(by_language, UsageByLanguage)
    window = sum(day.credits for day in summary.daily or [])
    assert window > 0
    assert by_language.total_credits == window
    assert {row.locale_code for row in by_language.languages} >= {"en-us", "ja-jp", "ko-kr"}


async def test_the_activity_feed_follows_its_cursor_to_the_end(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    events = []
    page = await client.list_usage_activity(limit=4)
    while True:
        assert isinstance(page, UsageActivityPage)
        events.extend(page.items)
        if page.next_cursor is None:
            break
        page = await client.list_usage_activity(limit=4, cursor=page.next_cursor)
    assert len(events) == len(sandbox.store.runs)
    assert len({event.id for event in events}) == len(events)
