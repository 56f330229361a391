"""Prompts: plans that name the tools to call, in order, with the ids the user gave."""

from __future__ import annotations

import re

import pytest
from mcp import Client, MCPError
from mcp.types import TextContent

from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio


async def render(client: Client, name: str, arguments: dict[str, str]) -> str:
    result = await client.get_prompt(name, arguments)
    assert len(result.messages) == 1
    message = result.messages[0]
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    return message.content.text


def assert_called_in_order(text: str, *tools: str) -> None:
    """Each tool is named, and first named after the one before it."""
    positions = []
    for tool in tools:
        # Word boundaries: get_run must not be found inside get_run_status.
        found = re.search(rf"\b{re.escape(tool)}(?!\w)", text)
        assert found, f"{tool} is not named"
        positions.append(found.start())
    assert positions == sorted(positions), f"tools out of order: {tools}"


async def test_the_four_prompts_are_listed_with_their_arguments(mcp_client: Client) -> None:
    listed = await mcp_client.list_prompts()
    prompts = {p.name: p for p in listed.prompts}
    assert list(prompts) == ["run_workflow", "diagnose_run", "fix_run", "workflow_health"]
    arguments = {
        name: {a.name: a.required for a in prompt.arguments or []}
        for name, prompt in prompts.items()
    }
    assert arguments == {
        "run_workflow": {"workflow_id": True, "script_text": False},
        "diagnose_run": {"workflow_id": True, "run_id": True},
        "fix_run": {"workflow_id": True, "run_id": False},
        "workflow_health": {"workflow_id": True},
    }
    for prompt in prompts.values():
        assert prompt.title
        assert prompt.description
        assert "\n " not in prompt.description  # no source indentation
        assert all(a.description for a in prompt.arguments or [])


async def test_run_workflow_previews_confirms_starts_waits_and_summarizes(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    text = await render(mcp_client, "run_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    assert f'workflow_id="{seed.WORKFLOW_COMPLETES_ID}"' in text
    assert_called_in_order(
        text,
        "get_workflow",
        "preview_run",
        "confirm",
        "start_run",
        "wait_for_run",
        "get_run_results",
    )
    assert "done is false" in text
    assert "script_text" not in text
    assert len(sandbox.requests) == 0  # a prompt calls nothing


async def test_run_workflow_carries_a_script_verbatim_without_unsafe_characters(
    mcp_client: Client,
) -> None:
    script = "Welcome back.\nToday: \u202eroadmap\u202c review.\x1b"
    text = await render(
        mcp_client,
        "run_workflow",
        {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "script_text": script},
    )
    assert "Welcome back.\nToday: roadmap review." in text
    assert "\u202e" not in text
    assert "\x1b" not in text
    assert_called_in_order(text, "preview_run", "start_run", "Welcome back.")


async def test_run_workflow_given_a_name_finds_the_workflow_first(mcp_client: Client) -> None:
    text = await render(mcp_client, "run_workflow", {"workflow_id": 'Product "tour"\nEN'})
    # The name is quoted as one value: its quote and newline cannot end it early.
    assert 'list_workflows with search="Product \\"tour\\"\\nEN"' in text
    assert_called_in_order(text, "list_workflows", "get_workflow", "preview_run", "start_run")


async def test_diagnose_run_checks_status_then_failed_steps_then_validators(
    mcp_client: Client,
) -> None:
    text = await render(
        mcp_client,
        "diagnose_run",
        {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID},
    )
    assert f'workflow_id="{seed.WORKFLOW_FAILS_ID}", run_id="{seed.RUN_FAILED_ID}"' in text
    assert_called_in_order(text, "get_run_status", "get_run_steps", "get_run_results", "cause")
    assert "failed_only=true" in text
    assert 'view="overview"' in text


async def test_fix_run_reads_every_rejected_take_fixes_checks_prices_reruns_once_and_compares(
    mcp_client: Client,
) -> None:
    text = await render(
        mcp_client, "fix_run", {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}
    )
    assert f'workflow_id="{seed.WORKFLOW_FAILS_ID}", run_id="{seed.RUN_FAILED_ID}"' in text
    assert_called_in_order(
        text,
        "get_run_steps",
        "suggest_pronunciation",
        "add_dictionary_entries",
        "update_workflow",
        "validate_workflow",
        "preview_run",
        "start_run",
        "wait_for_run",
        "Compare",
    )
    assert "every rejected take" in text
    assert "counted from 0" in text
    assert "once" in text


async def test_fix_run_without_a_run_id_starts_from_the_latest_run(mcp_client: Client) -> None:
    text = await render(mcp_client, "fix_run", {"workflow_id": seed.WORKFLOW_FAILS_ID})
    assert_called_in_order(text, "list_runs", "get_run_steps")
    assert "limit=1" in text


async def test_workflow_health_summarizes_then_lists_failures_then_diagnoses_the_latest(
    mcp_client: Client,
) -> None:
    text = await render(mcp_client, "workflow_health", {"workflow_id": seed.WORKFLOW_FAILS_ID})
    assert f'workflow_id="{seed.WORKFLOW_FAILS_ID}"' in text
    assert_called_in_order(
        text, "get_runs_summary", "list_runs", "get_run_steps", "get_run_results"
    )
    assert 'status=["failed"]' in text


async def test_a_missing_required_argument_is_refused(mcp_client: Client) -> None:
    with pytest.raises(MCPError):
        await mcp_client.get_prompt("diagnose_run", {"workflow_id": seed.WORKFLOW_FAILS_ID})


# "<tool> with <arguments>" up to the end of the clause or the next "<tool> with".
_CALL = re.compile(r"\b([a-z]+(?:_[a-z]+)+) with (.*?)(?=[:;\n]|\b[a-z]+(?:_[a-z]+)+ with |$)")


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("run_workflow", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "script_text": "Hi."}),
        ("run_workflow", {"workflow_id": "Product tour"}),
        ("diagnose_run", {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}),
        ("fix_run", {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}),
        ("fix_run", {"workflow_id": "Release notes"}),
        ("workflow_health", {"workflow_id": seed.WORKFLOW_FAILS_ID}),
    ],
)
async def test_prompts_call_only_tools_the_server_has_with_their_own_parameters(
    mcp_client: Client, name: str, arguments: dict[str, str]
) -> None:
    tools = {
        t.name: t.input_schema.get("properties", {}) for t in (await mcp_client.list_tools()).tools
    }
    text = await render(mcp_client, name, arguments)
    calls = _CALL.findall(text)
    assert len(calls) >= 3
    for tool, given in calls:
        assert tool in tools, f"{name} calls {tool}, which the server does not have"
        for parameter in re.findall(r"\b(\w+)=", given):
            assert parameter in tools[tool], f"{name} passes {parameter} to {tool}"
