"""The catalog tools: node types, voices and templates as an agent browses them, and what it is
told when the key may not read them or OnePin is down."""

from __future__ import annotations

import pytest
from mcp import Client

from onepin_mcp.sandbox import ALL_SCOPES, ApiKey, Sandbox
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import NO_WAIT_RETRY, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio


# --- list_node_types ------------------------------------------------------------------------------


async def test_list_node_types_gives_each_type_its_category_ports_and_config_keys(
    mcp_client: Client,
) -> None:
    catalog = structured(await mcp_client.call_tool("list_node_types", {}))

    by_type = {item["node_type"]: item for item in catalog["items"]}
    assert catalog["total"] == len(catalog["items"]) == len(by_type)
    script = by_type["source_script"]
    assert script["category"] == "source"
    assert script["inputs"] == []
    assert script["outputs"] == ["lines"]
    assert "script_text" in script["config_fields"]
    assert script["description"]
    assert by_type["sink_preview"]["category"] == "output"
    assert by_type["operator_translator"]["category"] == "operator"
    assert "target_languages" in by_type["operator_translator"]["config_fields"]
    assert {item["category"] for t, item in by_type.items() if t.startswith("validator_")} == {
        "validation"
    }


async def test_list_node_types_reports_an_outage_after_retrying(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"method": "GET", "path": "/api/v1/nodes", "status": 503, "times": None})

    text = error_text(await mcp_client.call_tool("list_node_types", {}))

    assert text.startswith("OnePin answered 503")
    assert "retries did not help" in text
    assert len(sandbox.requests) == NO_WAIT_RETRY.max_attempts


# --- list_voices ----------------------------------------------------------------------------------


async def test_list_voices_filters_by_language_and_gender(mcp_client: Client) -> None:
    korean = structured(await mcp_client.call_tool("list_voices", {"language": "ko_KR"}))
    female = structured(await mcp_client.call_tool("list_voices", {"gender": "female"}))

    assert korean["items"]
    assert all("ko-kr" in voice["languages"] for voice in korean["items"])
    assert korean["total"] == len(korean["items"])
    assert female["items"]
    assert all(voice["gender"] == "female" for voice in female["items"])
    voice = korean["items"][0]
    assert voice["provider"]
    assert voice["provider_voice_id"]
    assert voice["models"]
    assert voice["language_count"] >= len(voice["languages"])


async def test_list_voices_pages_with_next_offset_until_the_last_page(mcp_client: Client) -> None:
    first = structured(await mcp_client.call_tool("list_voices", {"limit": 2}))
    total = first["total"]
    assert total > 2
    assert first["next_offset"] == 2
    assert "offset=2" in first["next"]

    seen = [voice["id"] for voice in first["items"]]
    offset = first["next_offset"]
    while offset is not None:
        page = structured(await mcp_client.call_tool("list_voices", {"limit": 2, "offset": offset}))
        seen += [voice["id"] for voice in page["items"]]
        offset = page["next_offset"]
    assert "next" not in page
    assert len(seen) == len(set(seen)) == total


async def test_list_voices_refuses_an_unknown_gender_without_calling_onepin(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool("list_voices", {"gender": "robot"})

    assert "gender" in error_text(result)
    assert len(sandbox.requests) == 0


# --- list_templates -------------------------------------------------------------------------------


async def test_list_templates_filters_by_category_most_used_first(mcp_client: Client) -> None:
    everything = structured(await mcp_client.call_tool("list_templates", {}))
    business = structured(await mcp_client.call_tool("list_templates", {"category": "business"}))

    assert business["items"]
    assert all(item["category"] == "business" for item in business["items"])
    assert len(business["items"]) < len(everything["items"])
    uses = [item["uses_count"] for item in everything["items"]]
    assert uses == sorted(uses, reverse=True)
    assert all(item["name"] and item["description"] for item in everything["items"])


async def test_list_templates_searches_names_and_descriptions(mcp_client: Client) -> None:
    found = structured(await mcp_client.call_tool("list_templates", {"search": "podcast"}))

    assert found["items"]
    assert all("podcast" in (item["name"] + item["description"]).lower() for item in found["items"])


# --- scopes ---------------------------------------------------------------------------------------


async def test_a_key_without_catalog_scopes_is_told_which_scope_is_missing(mode: str) -> None:
    key = "op_live_" + "S" * 32
    narrow = Sandbox(
        manual_clock=True,
        api_keys=[ApiKey(key, scopes=ALL_SCOPES - {"voices:read", "templates:read"})],
    )
    server = create_server(
        sandbox_settings(narrow, api_key=key),
        selection=ToolSelection(toolsets=("catalog",)),
        transport=narrow.transport(),
        retry=NO_WAIT_RETRY,
    )
    async with Client(server, mode=mode) as client:
        voices = await client.call_tool("list_voices", {})
        templates = await client.call_tool("list_templates", {})
        nodes = await client.call_tool("list_node_types", {})

    for result, scope in ((voices, "voices:read"), (templates, "templates:read")):
        text = error_text(result)
        assert text.startswith("OnePin answered 403")
        assert scope in text
        assert "get_account" in text
    assert structured(nodes)["items"]  # the node catalog needs no scope
