"""Completions: workflow ids by name or id prefix, run ids of the chosen workflow; never errors."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import NO_WAIT_RETRY, sandbox_settings

pytestmark = pytest.mark.anyio

WORKFLOW_TEMPLATE = ResourceTemplateReference(
    type="ref/resource", uri="onepin://workflows/{workflow_id}"
)
RUN_TEMPLATE = ResourceTemplateReference(
    type="ref/resource", uri="onepin://workflows/{workflow_id}/runs/{run_id}"
)
STEPS_TEMPLATE = ResourceTemplateReference(
    type="ref/resource", uri="onepin://workflows/{workflow_id}/runs/{run_id}/steps"
)
RUN_WORKFLOW = PromptReference(type="ref/prompt", name="run_workflow")
DIAGNOSE_RUN = PromptReference(type="ref/prompt", name="diagnose_run")
WORKFLOW_HEALTH = PromptReference(type="ref/prompt", name="workflow_health")

Ref = ResourceTemplateReference | PromptReference


async def complete(
    client: Client, ref: Ref, name: str, value: str, chosen: dict[str, str] | None = None
) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, context_arguments=chosen)
    return result.completion.values


async def test_the_server_advertises_completions(mcp_client: Client) -> None:
    assert mcp_client.server_capabilities is not None
    assert mcp_client.server_capabilities.completions is not None


@pytest.mark.parametrize("ref", [WORKFLOW_TEMPLATE, STEPS_TEMPLATE, RUN_WORKFLOW, WORKFLOW_HEALTH])
async def test_a_name_prefix_completes_to_the_workflows_id(mcp_client: Client, ref: Ref) -> None:
    values = await complete(mcp_client, ref, "workflow_id", "Prod")
    assert values[0] == seed.WORKFLOW_COMPLETES_ID


async def test_names_starting_with_the_text_come_before_other_matches(mcp_client: Client) -> None:
    # "re" is inside many names and descriptions; only one name starts with it.
    values = await complete(mcp_client, WORKFLOW_TEMPLATE, "workflow_id", "re")
    assert values[0] == seed.WORKFLOW_FAILS_ID
    assert len(values) > 1


async def test_a_word_inside_the_name_also_matches(mcp_client: Client) -> None:
    values = await complete(mcp_client, WORKFLOW_TEMPLATE, "workflow_id", "tour")
    assert values == [seed.WORKFLOW_COMPLETES_ID]


async def test_an_id_prefix_completes_to_the_full_id(mcp_client: Client) -> None:
    values = await complete(mcp_client, RUN_TEMPLATE, "workflow_id", seed.WORKFLOW_FAILS_ID[:6])
    assert values == [seed.WORKFLOW_FAILS_ID]


async def test_nothing_typed_offers_recent_workflows(mcp_client: Client) -> None:
    values = await complete(mcp_client, DIAGNOSE_RUN, "workflow_id", "")
    assert seed.WORKFLOW_DRAFT_ID in values
    assert seed.WORKFLOW_COMPLETES_ID in values
    assert len(values) <= 20


async def test_text_matching_no_workflow_offers_nothing(mcp_client: Client) -> None:
    assert await complete(mcp_client, WORKFLOW_TEMPLATE, "workflow_id", "zzz-no-such") == []


@pytest.mark.parametrize("ref", [RUN_TEMPLATE, STEPS_TEMPLATE, DIAGNOSE_RUN])
async def test_run_ids_are_the_chosen_workflows_runs_newest_first(
    mcp_client: Client, ref: Ref
) -> None:
    chosen = {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    values = await complete(mcp_client, ref, "run_id", "", chosen)
    assert values == [seed.RUN_COMPLETED_ID, seed.RUN_COMPLETED_EARLIER_ID]


async def test_a_run_id_prefix_narrows_the_runs(mcp_client: Client) -> None:
    chosen = {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    prefix = seed.RUN_COMPLETED_EARLIER_ID[:4].upper()
    values = await complete(mcp_client, RUN_TEMPLATE, "run_id", prefix, chosen)
    assert values == [seed.RUN_COMPLETED_EARLIER_ID]


async def test_a_run_started_just_now_is_offered_first(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    settings = sandbox_settings(sandbox)
    async with OnePinClient(settings, transport=sandbox.transport(), retry=NO_WAIT_RETRY) as api:
        started = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    chosen = {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    values = await complete(mcp_client, DIAGNOSE_RUN, "run_id", "", chosen)
    assert values[0] == started.id
    assert seed.RUN_COMPLETED_ID in values


async def test_run_ids_wait_for_a_workflow_to_be_chosen(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    assert await complete(mcp_client, RUN_TEMPLATE, "run_id", "") == []
    # A name where the id should be: OnePin is not asked with it, and nothing is offered.
    chosen = {"workflow_id": "Product tour"}
    assert await complete(mcp_client, RUN_TEMPLATE, "run_id", "", chosen) == []
    assert len(sandbox.requests) == 0


async def test_arguments_that_are_not_ids_get_no_values(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    assert await complete(mcp_client, RUN_WORKFLOW, "script_text", "Wel") == []
    # A run id is not an argument of the workflow resource or the health prompt.
    chosen = {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    assert await complete(mcp_client, WORKFLOW_TEMPLATE, "run_id", "", chosen) == []
    assert await complete(mcp_client, WORKFLOW_HEALTH, "run_id", "", chosen) == []
    unknown = PromptReference(type="ref/prompt", name="no_such_prompt")
    assert await complete(mcp_client, unknown, "workflow_id", "Prod") == []
    assert len(sandbox.requests) == 0


async def test_a_onepin_outage_gives_no_values_instead_of_an_error(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows*", "status": 503, "times": None})
    chosen = {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    assert await complete(mcp_client, WORKFLOW_TEMPLATE, "workflow_id", "Prod") == []
    assert await complete(mcp_client, DIAGNOSE_RUN, "run_id", "", chosen) == []
    assert len(sandbox.requests) > 0  # OnePin was asked, and failed
    sandbox.faults.clear()
    assert await complete(mcp_client, WORKFLOW_TEMPLATE, "workflow_id", "Prod") != []


async def test_an_unknown_workflow_gives_no_run_ids(mcp_client: Client) -> None:
    chosen = {"workflow_id": "00000000-0000-4000-8000-000000000000"}
    assert await complete(mcp_client, RUN_TEMPLATE, "run_id", "", chosen) == []
