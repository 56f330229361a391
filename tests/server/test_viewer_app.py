"""The run viewer as an MCP App, as clients see it: the extension advertised, the four run tools
pointing to the `ui://` page only for a client that negotiated Apps, and the page itself: one
self-contained document whose policy lets nothing but its own script and style run."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import TextResourceContents, Tool

from onepin_mcp.sandbox import seed
from onepin_mcp.viewer.app import VIEWER_TOOLS, VIEWER_URI
from onepin_mcp.watch import PollSchedule
from tests.server.conftest import ServerFactory, structured

pytestmark = pytest.mark.anyio

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


@pytest.fixture
async def apps_client(make_server: ServerFactory, mode: str) -> AsyncIterator[Client]:
    """A client that negotiated MCP Apps, on a server with every toolset."""
    async with Client(make_server(toolsets=("all",)), mode=mode, extensions=[APPS]) as client:  # type: ignore[arg-type]
        yield client


def _dump(tools: list[Tool]) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


async def _viewer_page(client: Client) -> TextResourceContents:
    read = await client.read_resource(VIEWER_URI)
    assert len(read.contents) == 1
    page = read.contents[0]
    assert isinstance(page, TextResourceContents)
    return page


async def test_a_client_with_apps_sees_the_four_run_tools_point_to_the_viewer(
    apps_client: Client, mode: str
) -> None:
    # Capabilities carry extensions from 2026-07-28 on; a 2025-11-25 host finds the app from
    # the tools' `_meta.ui` alone, which the SDK passes in both eras.
    advertised = apps_client.server_capabilities.extensions or {}
    assert (EXTENSION_ID in advertised) is (mode == "auto")
    tools = (await apps_client.list_tools()).tools
    pointing = {
        tool.name: (tool.meta or {}).get("ui", {}).get("resourceUri")
        for tool in tools
        if tool.meta and "ui" in tool.meta
    }
    assert pointing == dict.fromkeys(
        ("get_run_status", "wait_for_run", "start_run", "get_run_results"), VIEWER_URI
    )


async def test_a_client_without_apps_lists_the_tools_of_a_server_without_the_viewer(
    make_server: ServerFactory, mode: str
) -> None:
    server = make_server(toolsets=("all",))
    async with Client(server, mode=mode) as plain:  # type: ignore[arg-type]
        listed = _dump((await plain.list_tools()).tools)
    async with Client(server, mode=mode, extensions=[APPS]) as apps:  # type: ignore[arg-type]
        with_apps = _dump((await apps.list_tools()).tools)
    # No tool of the surface carries `_meta` of its own, so a server without the viewer lists
    # none; the Apps answer differs from the plain one by the pointer on four tools, nothing else.
    assert not any("_meta" in tool for tool in listed)
    for tool in with_apps:
        if tool["name"] in VIEWER_TOOLS:
            assert tool.pop("_meta") == {
                "ui": {"resourceUri": VIEWER_URI},
                "ui/resourceUri": VIEWER_URI,
            }
    assert with_apps == listed


async def test_a_run_tool_answers_the_same_with_and_without_apps(
    make_server: ServerFactory, mode: str
) -> None:
    server = make_server(toolsets=("all",))
    arguments = {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}
    answers = []
    for extensions in (None, [APPS]):
        async with Client(server, mode=mode, extensions=extensions) as client:  # type: ignore[arg-type]
            result = await client.call_tool("get_run_status", arguments)
            structured(result)
            answers.append(result.model_dump(mode="json", by_alias=True, exclude={"meta"}))
    assert answers[0] == answers[1]


async def test_the_viewer_is_one_app_page_that_may_load_nothing(apps_client: Client) -> None:
    page = await _viewer_page(apps_client)
    assert page.mime_type == APP_MIME_TYPE
    assert page.meta == {
        "ui": {"csp": {"connectDomains": [], "resourceDomains": []}, "prefersBorder": True}
    }
    html = page.text
    # Nothing fetched from anywhere: no src/href attributes, no CSS imports or url(), no URL.
    for needle in ("src=", "href=", "@import", "url(", "http://", "https://", "<link"):
        assert needle not in html, needle
    # OnePin's text reaches the page only through textContent.
    for needle in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert needle not in html, needle


async def test_the_page_policy_allows_exactly_its_own_inline_script_and_style(
    apps_client: Client,
) -> None:
    html = (await _viewer_page(apps_client)).text
    policy_match = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy_match is not None
    policy = dict(
        [*part.strip().split(" ", 1), ""][:2] for part in policy_match.group(1).split(";")
    )
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    assert len(scripts) == 1
    assert len(styles) == 1

    def source(text: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(digest).decode()}'"

    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'none'"
    assert policy["media-src"] == "data: blob:"
    assert policy["script-src"] == source(scripts[0])
    assert policy["style-src"] == source(styles[0])
    assert "unsafe" not in policy_match.group(1)


async def test_the_page_refreshes_no_faster_than_wait_for_run_polls(apps_client: Client) -> None:
    html = (await _viewer_page(apps_client)).text
    schedule = PollSchedule()
    pace = re.search(r'"poll": (\{[^}]*\})', html)
    assert pace is not None
    assert pace.group(1) == (
        f'{{"first_s": {schedule.first_s}, "min_s": {schedule.min_s}, '
        f'"max_s": {schedule.max_s}, "backoff": {schedule.backoff}}}'
    )
