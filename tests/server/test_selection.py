"""Which tools a server lists and accepts: default toolsets, `all`, single tools, exclusions,
read-only mode, unknown names, and the behaviour hints every listed tool carries."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent, Tool

from onepin_mcp.options import (
    ENV_EXCLUDE_TOOLS,
    ENV_READ_ONLY,
    ENV_TOOLS,
    ENV_TOOLSETS,
    ServeOptions,
    parse_command,
)
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import SelectionError
from onepin_mcp.tools.registry import DEFAULT_TOOLSETS, TOOLSETS

from .conftest import ServerFactory, error_text

pytestmark = pytest.mark.anyio

# The default surface the issue names, tool for tool.
DEFAULT_TOOL_NAMES = (
    "get_account",
    "list_workflows",
    "get_workflow",
    "list_runs",
    "get_run_status",
    "get_run",
    "wait_for_run",
    "get_run_steps",
    "get_run_results",
    "get_run_data",
    "get_runs_summary",
    "get_download_url",
    "get_audio_clip",
    "preview_run",
    "start_run",
    "cancel_run",
    "pause_run",
    "resume_run",
)
ALL_NAMES = [spec.name for specs in TOOLSETS.values() for spec in specs]
WRITE_NAMES = {spec.name for specs in TOOLSETS.values() for spec in specs if spec.writes}


def names_in(toolsets: tuple[str, ...]) -> list[str]:
    return [spec.name for toolset in toolsets for spec in TOOLSETS[toolset]]


async def listed(make_server: ServerFactory, mode: str, **selection: Any) -> list[Tool]:
    async with Client(make_server(**selection), mode=mode) as client:
        return (await client.list_tools()).tools


async def test_the_default_toolsets_list_account_workflows_runs_and_run_control_in_order(
    make_server: ServerFactory, mode: str
) -> None:
    names = [tool.name for tool in await listed(make_server, mode)]

    assert DEFAULT_TOOLSETS == ("account", "workflows", "runs", "run_control")
    assert names == names_in(DEFAULT_TOOLSETS)
    assert set(DEFAULT_TOOL_NAMES) <= set(names)
    assert not set(names) & set(names_in(("workflow_admin", "catalog")))


async def test_all_toolsets_add_the_optional_toolsets_after_the_defaults(
    make_server: ServerFactory, mode: str
) -> None:
    names = [tool.name for tool in await listed(make_server, mode, toolsets=("all",))]

    optional = ["workflow_admin", "catalog", "dictionary", "usage"]
    assert list(TOOLSETS) == [*DEFAULT_TOOLSETS, *optional]
    assert names == ALL_NAMES
    assert names[: len(names_in(DEFAULT_TOOLSETS))] == names_in(DEFAULT_TOOLSETS)
    assert {"create_workflow", "delete_workflow", "list_voices", "list_templates"} <= set(names)


async def test_single_tools_are_added_to_the_chosen_toolsets_in_registry_order(
    make_server: ServerFactory, mode: str
) -> None:
    tools = await listed(
        make_server, mode, toolsets=("account",), tools=("list_voices", "validate_workflow")
    )

    assert [tool.name for tool in tools] == ["get_account", "validate_workflow", "list_voices"]


async def test_an_excluded_tool_stays_out_even_when_also_chosen_by_name(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    server = make_server(
        toolsets=("run_control",),
        tools=("list_voices",),
        exclude_tools=("list_voices", "cancel_run"),
    )
    async with Client(server, mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool(
            "cancel_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_PAUSED_ID}
        )

    assert names == ["start_run", "pause_run", "resume_run"]
    assert result.is_error
    assert len(sandbox.requests) == 0


async def test_read_only_mode_hides_write_tools_and_refuses_them_by_name_without_a_request(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    server = make_server(toolsets=("all",), read_only=True)
    async with Client(server, mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        started = await client.call_tool("start_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
        deleted = await client.call_tool(
            "delete_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
        )

    assert names == [name for name in ALL_NAMES if name not in WRITE_NAMES]
    assert {"start_run", "cancel_run", "pause_run", "resume_run", "create_workflow"} <= WRITE_NAMES
    assert "validate_workflow" in names  # it changes nothing, so it stays
    for result, name in ((started, "start_run"), (deleted, "delete_workflow")):
        assert result.is_error
        content = result.content[0]
        assert isinstance(content, TextContent)
        assert name in content.text
        assert "read-only mode" in content.text
    assert len(sandbox.requests) == 0


async def test_read_only_mode_keeps_the_read_tools_working(
    make_server: ServerFactory, mode: str
) -> None:
    server = make_server(read_only=True)
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("get_account", {})

    assert not result.is_error, result.content


@pytest.mark.parametrize(
    ("selection", "named", "valid"),
    [
        ({"toolsets": ("runs", "admin")}, "admin", ["account", "catalog", "all"]),
        ({"tools": ("start_runs",)}, "start_runs", ["start_run", "list_voices"]),
        ({"exclude_tools": ("drop_workflow",)}, "drop_workflow", ["delete_workflow"]),
    ],
)
def test_unknown_names_are_refused_with_the_valid_choices(
    make_server: ServerFactory, selection: dict[str, Any], named: str, valid: list[str]
) -> None:
    with pytest.raises(SelectionError) as refused:
        make_server(**selection)

    message = str(refused.value)
    assert named in message
    assert all(choice in message for choice in valid)


async def test_every_listed_tool_declares_all_four_hints_consistently(
    make_server: ServerFactory, mode: str
) -> None:
    tools = await listed(make_server, mode, toolsets=("all",))

    assert len(tools) == len(ALL_NAMES)
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        values = (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        )
        assert None not in values, tool.name
        assert tool.title, tool.name
        assert hints.read_only_hint is (tool.name not in WRITE_NAMES), tool.name
        if hints.read_only_hint:
            # A read changes nothing: nothing to destroy, and repeating it is harmless.
            assert hints.destructive_hint is False, tool.name
            assert hints.idempotent_hint is True, tool.name
    by_name = {tool.name: tool.annotations for tool in tools}
    assert by_name["start_run"].idempotent_hint is False  # type: ignore[union-attr]
    assert by_name["cancel_run"].destructive_hint is True  # type: ignore[union-attr]
    assert by_name["delete_workflow"].destructive_hint is True  # type: ignore[union-attr]


async def test_a_tool_whose_toolset_is_off_is_refused_with_its_toolset_and_how_to_turn_it_on(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    async with Client(make_server(), mode=mode) as client:
        voices = error_text(await client.call_tool("list_voices", {}))
        deleted = error_text(
            await client.call_tool("delete_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
        )

    for text, name, toolset in (
        (voices, "list_voices", "catalog"),
        (deleted, "delete_workflow", "workflow_admin"),
    ):
        assert "Unknown tool" not in text
        assert f"{name} is in the {toolset} toolset" in text
        assert f"--toolsets account,workflows,runs,run_control,{toolset} " in text
        assert f"{ENV_TOOLSETS}=account,workflows,runs,run_control,{toolset}" in text
        assert f"--tools {name} (or {ENV_TOOLS}={name})" in text
    assert len(sandbox.requests) == 0


@pytest.mark.parametrize("how", ["--toolsets", "--tools"])
async def test_the_setting_a_refusal_names_really_turns_the_tool_on(
    make_server: ServerFactory, mode: str, how: str
) -> None:
    async with Client(make_server(toolsets=("account",)), mode=mode) as client:
        text = error_text(await client.call_tool("get_workflow", {"workflow_id": "x"}))
    match = re.search(rf"{how} (\S+)", text)
    assert match is not None, text

    options = parse_command([how, match.group(1)], {})
    assert isinstance(options, ServeOptions)
    chosen = options.selection
    server = make_server(toolsets=chosen.toolsets, tools=chosen.tools)
    async with Client(server, mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]

    assert "get_workflow" in names
    assert "get_account" in names  # what was on stays on


async def test_an_excluded_tool_is_refused_as_excluded_and_a_hidden_write_as_read_only(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    server = make_server(exclude_tools=("get_run",), read_only=True)
    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
    async with Client(server, mode=mode) as client:
        excluded = error_text(await client.call_tool("get_run", ids))
        # Off twice over (its toolset too): read-only mode is the reason that would remain.
        created = error_text(await client.call_tool("create_workflow", {}))

    assert "get_run is excluded" in excluded
    assert f"--exclude-tools / {ENV_EXCLUDE_TOOLS}" in excluded
    assert "create_workflow changes OnePin state" in created
    assert f"--read-only / {ENV_READ_ONLY}" in created
    assert len(sandbox.requests) == 0
