"""The dictionary tools: list and search entries, suggest a pronunciation, add, change and
delete entries, with effects checked through the OnePin client, their refusals, the question
asked before a write, the audit record, and read-only mode."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import anyio
import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.state import WritePolicy
from tests.support.users import User

from .conftest import ServerFactory, error_text, structured

pytestmark = pytest.mark.anyio

BOUND_S = 20


def requests_to(sandbox: Sandbox, method: str, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == method and r.path == path)


async def entries_of(api: OnePinClient, language: str) -> dict[str, Any]:
    page = await api.list_dictionary_entries(language, limit=50)
    return {entry.word: entry for entry in page.items}


# --- reading ------------------------------------------------------------------------------------


async def test_list_dictionary_without_arguments_shows_the_languages_that_have_entries(
    mcp_client: Client,
) -> None:
    listed = structured(await mcp_client.call_tool("list_dictionary", {}))

    assert {item["code"]: item["count"] for item in listed["languages"]} == {
        "en-us": 2,
        "ko-kr": 1,
    }
    assert listed["entries"] == []


async def test_list_dictionary_of_a_language_shows_its_entries_with_their_ids(
    mcp_client: Client,
) -> None:
    listed = structured(await mcp_client.call_tool("list_dictionary", {"language": "en-us"}))

    words = {entry["word"]: entry for entry in listed["entries"]}
    assert set(words) == {"Northwind", "OnePin"}
    assert words["OnePin"]["id"] == seed.DICT_ONEPIN_ID
    assert words["OnePin"]["pronunciation"] == "WUN-pin"
    assert "2 en-us entries" in listed["next"]


async def test_a_search_finds_a_word_in_every_language_or_in_the_one_given(
    mcp_client: Client,
) -> None:
    everywhere = structured(await mcp_client.call_tool("list_dictionary", {"search": "kube"}))
    in_japanese = structured(
        await mcp_client.call_tool("list_dictionary", {"search": "kube", "language": "ja-jp"})
    )

    assert [e["id"] for e in everywhere["entries"]] == [seed.DICT_KUBERNETES_KO_ID]
    assert in_japanese["entries"] == []
    assert "add_dictionary_entries" in in_japanese["next"]


async def test_list_dictionary_refuses_a_language_the_dictionary_does_not_have(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool("list_dictionary", {"language": "xx-yy"})

    assert "language" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_a_suggestion_saves_nothing(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    suggested = structured(
        await mcp_client.call_tool(
            "suggest_pronunciation", {"word": "kubectl", "language": "ja-jp"}
        )
    )

    assert suggested["word"] == "kubectl"
    assert suggested["pronunciation"]
    assert "Nothing saved" in suggested["next"]
    assert requests_to(sandbox, "POST", "/api/v1/dictionary") == 0
    assert await entries_of(api, "ja-jp") == {}


# --- adding -------------------------------------------------------------------------------------


async def test_add_dictionary_entries_saves_every_word_and_fills_a_missing_pronunciation(
    mcp_client: Client, api: OnePinClient
) -> None:
    suggestion = await api.suggest_pronunciation("Kubernetes", "ja-jp")

    added = structured(
        await mcp_client.call_tool(
            "add_dictionary_entries",
            {
                "language": "ja-jp",
                "entries": [
                    {"word": "kubectl", "pronunciation": "キューブシーティーエル"},
                    {"word": "Kubernetes"},
                ],
            },
        )
    )

    saved = await entries_of(api, "ja-jp")
    assert saved["kubectl"].pronunciation == "キューブシーティーエル"
    assert saved["Kubernetes"].pronunciation == suggestion.pronunciation
    assert {entry["id"] for entry in added["added"]} == {e.id for e in saved.values()}
    assert added["failed"] == []
    assert "start_run" in added["next"]


async def test_a_word_that_already_has_an_entry_is_reported_and_the_others_are_added(
    mcp_client: Client, api: OnePinClient
) -> None:
    added = structured(
        await mcp_client.call_tool(
            "add_dictionary_entries",
            {
                "language": "en-us",
                "entries": [
                    {"word": "OnePin", "pronunciation": "ONE-pin"},
                    {"word": "Grafana", "pronunciation": "gruh-FAH-nuh"},
                ],
            },
        )
    )

    assert [entry["word"] for entry in added["added"]] == ["Grafana"]
    [failure] = added["failed"]
    assert failure["word"] == "OnePin"
    assert "already has an entry" in failure["error"]
    assert "update_dictionary_entry" in failure["error"]
    saved = await entries_of(api, "en-us")
    assert saved["OnePin"].pronunciation == "WUN-pin"  # unchanged
    assert "Grafana" in saved


async def test_an_add_where_every_word_fails_is_an_error_naming_each_word(
    mcp_client: Client,
) -> None:
    result = await mcp_client.call_tool(
        "add_dictionary_entries",
        {"language": "en-us", "entries": [{"word": "OnePin"}, {"word": "Northwind"}]},
    )

    text = error_text(result)
    assert text.startswith("No entry was added.")
    assert "'OnePin'" in text
    assert "'Northwind'" in text


@pytest.mark.parametrize(
    "entries",
    [[], [{"word": ""}], [{"word": "x", "extra": 1}], [{"word": f"w{i}"} for i in range(21)]],
)
async def test_add_dictionary_entries_refuses_bad_entries_before_calling_onepin(
    mcp_client: Client, sandbox: Sandbox, entries: list[dict[str, Any]]
) -> None:
    result = await mcp_client.call_tool(
        "add_dictionary_entries", {"language": "ja-jp", "entries": entries}
    )

    assert result.is_error
    assert "entries" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_the_user_is_asked_about_the_words_before_they_are_added(
    make_server: ServerFactory, mode: str, api: OnePinClient
) -> None:
    user = User("decline")
    server = make_server(toolsets=("dictionary",), policy=WritePolicy(confirm="writes"))
    async with Client(server, mode=mode, elicitation_callback=user) as client:  # type: ignore[arg-type]
        with anyio.fail_after(BOUND_S):
            result = await client.call_tool(
                "add_dictionary_entries",
                {"language": "ja-jp", "entries": [{"word": "kubectl"}, {"word": "nginx"}]},
            )

    [question] = user.questions
    assert "2 ja-jp entries ('kubectl', 'nginx')" in question
    assert "the user declined" in error_text(result)
    assert await entries_of(api, "ja-jp") == {}


async def test_under_the_default_policy_a_delete_is_asked_about_and_an_add_is_not(
    make_server: ServerFactory, mode: str, api: OnePinClient
) -> None:
    user = User("decline")
    server = make_server(toolsets=("dictionary",))  # the default policy: destructive writes
    async with Client(server, mode=mode, elicitation_callback=user) as client:  # type: ignore[arg-type]
        with anyio.fail_after(BOUND_S):
            added = await client.call_tool(
                "add_dictionary_entries", {"language": "ja-jp", "entries": [{"word": "nginx"}]}
            )
            refused = await client.call_tool(
                "delete_dictionary_entry", {"entry_id": seed.DICT_ONEPIN_ID}
            )

    assert not added.is_error
    [question] = user.questions
    assert f"Delete pronunciation dictionary entry {seed.DICT_ONEPIN_ID}?" in question
    assert "the user declined" in error_text(refused)
    assert "OnePin" in await entries_of(api, "en-us")


# --- changing and deleting ------------------------------------------------------------------------


async def test_update_dictionary_entry_changes_only_the_given_field(
    mcp_client: Client, api: OnePinClient
) -> None:
    changed = structured(
        await mcp_client.call_tool(
            "update_dictionary_entry",
            {"entry_id": seed.DICT_ONEPIN_ID, "pronunciation": "WON-pin"},
        )
    )

    assert changed["entry"]["pronunciation"] == "WON-pin"
    saved = (await entries_of(api, "en-us"))["OnePin"]
    assert saved.pronunciation == "WON-pin"
    assert saved.description == "Product name, one word."


async def test_update_dictionary_entry_with_nothing_to_change_sends_nothing(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool(
        "update_dictionary_entry", {"entry_id": seed.DICT_ONEPIN_ID}
    )

    assert "Give pronunciation, ipa or word" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_delete_dictionary_entry_removes_it_and_an_unknown_id_names_the_listing_tool(
    mcp_client: Client, api: OnePinClient
) -> None:
    deleted = structured(
        await mcp_client.call_tool("delete_dictionary_entry", {"entry_id": seed.DICT_ONEPIN_ID})
    )
    again = await mcp_client.call_tool("delete_dictionary_entry", {"entry_id": seed.DICT_ONEPIN_ID})
    unknown = await mcp_client.call_tool(
        "update_dictionary_entry", {"entry_id": str(uuid.uuid4()), "pronunciation": "x"}
    )

    assert deleted == {"id": seed.DICT_ONEPIN_ID, "deleted": True}
    assert "OnePin" not in await entries_of(api, "en-us")
    for result in (again, unknown):
        text = error_text(result)
        assert "No pronunciation dictionary entry" in text
        assert "list_dictionary" in text


async def test_each_dictionary_write_is_audited_with_the_entries_it_touched(
    make_server: ServerFactory, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onepin_mcp.audit")
    async with Client(make_server(toolsets=("dictionary",)), mode=mode) as client:
        with anyio.fail_after(BOUND_S):
            added = structured(
                await client.call_tool(
                    "add_dictionary_entries",
                    {"language": "ja-jp", "entries": [{"word": "nginx"}, {"word": "Grafana"}]},
                )
            )
            await client.call_tool("delete_dictionary_entry", {"entry_id": seed.DICT_ONEPIN_ID})

    lines = [r.getMessage() for r in caplog.records if r.name == "onepin_mcp.audit"]
    assert len(lines) == 2
    ids = ",".join(entry["id"] for entry in added["added"])
    assert "tool=add_dictionary_entries" in lines[0]
    assert f'entry_ids="{ids}"' in lines[0]
    assert "tool=delete_dictionary_entry" in lines[1]
    assert f"entry_ids={seed.DICT_ONEPIN_ID}" in lines[1]


async def test_read_only_mode_keeps_reading_the_dictionary_and_hides_its_writes(
    make_server: ServerFactory, mode: str
) -> None:
    server = make_server(toolsets=("dictionary",), read_only=True)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        names = {tool.name for tool in (await client.list_tools()).tools}
        refused = await client.call_tool(
            "add_dictionary_entries", {"language": "ja-jp", "entries": [{"word": "nginx"}]}
        )

    assert names == {"list_dictionary", "suggest_pronunciation"}
    assert refused.is_error
    assert "read-only" in json.dumps(error_text(refused))
