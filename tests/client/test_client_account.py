"""Account and catalog endpoints, and the headers every request carries."""

from __future__ import annotations

import re
import sys

import httpx
import pytest

import onepin_mcp
from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError
from onepin_mcp.api.models import Balance, NodeType, PlanLimits, Template, Voice, Whoami
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import BASE_URL, MakeClient, RecordingTransport

pytestmark = pytest.mark.anyio

OTHER_WORKSPACE = "11111111-2222-4333-8444-555555555555"


async def test_whoami_names_the_workspace_and_scopes_of_the_key(client: OnePinClient) -> None:
    me = await client.whoami()
    assert isinstance(me, Whoami)
    assert me.auth_kind == "api_key"
    assert me.workspace_id == seed.WORKSPACE_ID
    assert "workflows:read" in me.scopes


async def test_credits_and_limits_are_read(client: OnePinClient) -> None:
    balance = await client.get_credits()
    limits = await client.get_limits()
    assert isinstance(balance, Balance)
    assert balance.balance > 0
    assert isinstance(limits, PlanLimits)
    assert limits.concurrent_runs_per_user


async def test_the_node_catalog_lists_every_node_type_with_ports(client: OnePinClient) -> None:
    nodes = await client.list_nodes()
    assert all(isinstance(node, NodeType) for node in nodes)
    types = {node.node_type for node in nodes}
    assert {"source_script", "operator_generator", "sink_preview"} <= types
    generator = next(node for node in nodes if node.node_type == "operator_generator")
    assert generator.inputs
    assert generator.outputs


async def test_voices_are_paged_and_filtered_with_repeated_keys(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    everything = await client.list_voices(limit=100)
    assert everything.items
    assert all(isinstance(voice, Voice) for voice in everything.items)
    assert everything.total == len(everything.items)

    first = await client.list_voices(limit=1)
    assert first.next_offset == 1

    french_or_korean = await client.list_voices(language=["fr-fr", "ko-kr"], limit=100)
    assert "language=fr-fr&language=ko-kr" in sandbox.requests[-1].query
    assert french_or_korean.items
    assert len(french_or_korean.items) < len(everything.items)


async def test_templates_are_listed(client: OnePinClient) -> None:
    page = await client.list_templates()
    assert page.items
    assert all(isinstance(template, Template) for template in page.items)


async def test_requests_carry_the_key_a_user_agent_and_no_workspace_header_by_default(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    recorder = RecordingTransport(sandbox.transport())
    client = make_client(transport=recorder)
    await client.list_workflows()
    request = recorder.sent[-1]
    assert request.headers["Authorization"] == f"Bearer {sandbox.example_key}"
    assert "X-Workspace-Id" not in request.headers
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert request.headers["User-Agent"] == (
        f"onepin-mcp/{onepin_mcp.__version__} httpx/{httpx.__version__} python/{python}"
    )
    assert re.fullmatch(r"onepin-mcp/\S+ httpx/\S+ python/\d+\.\d+", request.headers["User-Agent"])
    assert str(request.url).startswith(BASE_URL + "/api/v1/workflows")


async def test_a_configured_workspace_is_sent_on_workflow_calls_only(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    recorder = RecordingTransport(sandbox.transport())
    client = make_client(transport=recorder, workspace_id=seed.WORKSPACE_ID)
    await client.list_workflows()
    assert recorder.sent[-1].headers["X-Workspace-Id"] == seed.WORKSPACE_ID
    await client.whoami()
    assert "X-Workspace-Id" not in recorder.sent[-1].headers
    await client.get_credits()
    assert "X-Workspace-Id" not in recorder.sent[-1].headers


async def test_a_workspace_other_than_the_keys_is_refused(make_client: MakeClient) -> None:
    client = make_client(workspace_id=OTHER_WORKSPACE)
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert caught.value.status == 403


async def test_the_client_closes_as_a_context_manager(sandbox: Sandbox) -> None:
    from .conftest import sandbox_settings

    async with OnePinClient(sandbox_settings(sandbox), transport=sandbox.transport()) as client:
        assert (await client.whoami()).workspace_id == seed.WORKSPACE_ID
    with pytest.raises(RuntimeError):
        await client.whoami()
