"""Workflow endpoints, through the real client, against the sandbox."""

from __future__ import annotations

import json

import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinInputError
from onepin_mcp.api.models import Estimate, Page, Workflow, WorkflowListItem
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import MakeClient, RecordingTransport

pytestmark = pytest.mark.anyio


async def test_list_workflows_returns_typed_rows_with_a_total(client: OnePinClient) -> None:
    page = await client.list_workflows(limit=100)
    assert isinstance(page, Page)
    assert all(isinstance(item, WorkflowListItem) for item in page.items)
    ids = {item.id for item in page.items}
    assert {seed.WORKFLOW_COMPLETES_ID, seed.WORKFLOW_FAILS_ID} <= ids
    assert page.total == len(page.items)
    assert page.next_offset is None


async def test_paging_through_workflows_visits_every_row_once(client: OnePinClient) -> None:
    everything = await client.list_workflows(limit=100)
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = await client.list_workflows(limit=2, offset=offset)
        assert page.total == everything.total
        assert page.limit == 2
        assert page.offset == offset
        seen.extend(item.id for item in page.items)
        offset = page.next_offset
        pages += 1
    assert pages >= 3
    assert sorted(seen) == sorted(item.id for item in everything.items)


async def test_list_workflows_sends_sort_and_order_as_repeated_keys(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    client = make_client()
    page = await client.list_workflows(sort=["runs_count", "name"], order=["desc", "asc"])
    counts = [item.runs_count or 0 for item in page.items]
    assert counts == sorted(counts, reverse=True)
    query = sandbox.requests[-1].query
    assert "sort=runs_count&sort=name" in query
    assert "order=desc&order=asc" in query


async def test_list_workflows_filters_by_search_and_status(client: OnePinClient) -> None:
    drafts = await client.list_workflows(status="draft")
    assert drafts.items
    assert all(item.runs_count in (0, None) for item in drafts.items)
    failing = await client.list_workflows(has_failed_run=True)
    assert seed.WORKFLOW_FAILS_ID in {item.id for item in failing.items}


async def test_get_workflow_returns_the_definition_graph(client: OnePinClient) -> None:
    workflow = await client.get_workflow(seed.WORKFLOW_COMPLETES_ID)
    assert isinstance(workflow, Workflow)
    assert workflow.id == seed.WORKFLOW_COMPLETES_ID
    graph = workflow.definition.graph
    assert graph is not None
    assert graph.nodes
    assert graph.edges
    node_ids = {node.id for node in graph.nodes}
    assert all(edge.source in node_ids and edge.target in node_ids for edge in graph.edges)
    assert all(edge.source_port and edge.target_port for edge in graph.edges)


async def test_an_upper_case_workflow_id_is_accepted(client: OnePinClient) -> None:
    workflow = await client.get_workflow(seed.WORKFLOW_COMPLETES_ID.upper())
    assert workflow.id == seed.WORKFLOW_COMPLETES_ID


async def test_create_update_replace_and_delete_a_workflow(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    source = await client.get_workflow(seed.WORKFLOW_COMPLETES_ID)
    created = await client.create_workflow(
        name="Release notes", description="Weekly", definition=source.definition
    )
    assert created.name == "Release notes"
    assert created.definition.graph is not None
    assert len(created.definition.graph.nodes) == len(source.definition.graph.nodes)  # type: ignore[union-attr]

    renamed = await client.update_workflow(created.id, name="Release notes v2")
    assert renamed.name == "Release notes v2"
    assert renamed.description == "Weekly"

    cleared = await client.update_workflow(created.id, description=None)
    assert cleared.description is None

    replaced = await client.replace_workflow(
        created.id, name="Release notes v3", definition=source.definition.to_api()
    )
    assert replaced.name == "Release notes v3"

    await client.delete_workflow(created.id)
    with pytest.raises(OnePinAPIError) as caught:
        await client.get_workflow(created.id)
    assert caught.value.status == 404


async def test_bodies_carry_only_the_keys_that_were_given(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    recorder = RecordingTransport(sandbox.transport())
    client = make_client(transport=recorder)

    created = await client.create_workflow()
    assert created.name  # the server's placeholder
    assert recorder.sent[-1].content == b""
    assert "Content-Type" not in recorder.sent[-1].headers

    await client.update_workflow(created.id, description=None)
    assert json.loads(recorder.sent[-1].content) == {"description": None}

    await client.preview_run(seed.WORKFLOW_COMPLETES_ID, script_text="Hello.")
    assert json.loads(recorder.sent[-1].content) == {"script_text": "Hello."}


async def test_an_update_with_nothing_to_change_is_refused_before_any_request(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    with pytest.raises(OnePinInputError):
        await client.update_workflow(seed.WORKFLOW_COMPLETES_ID)
    assert len(sandbox.requests) == 0


async def test_duplicate_makes_a_copy_with_no_runs(client: OnePinClient) -> None:
    copy = await client.duplicate_workflow(seed.WORKFLOW_COMPLETES_ID)
    assert copy.id != seed.WORKFLOW_COMPLETES_ID
    assert copy.name.endswith("(Copy)")
    assert not copy.runs_count


async def test_validate_reports_a_broken_definition_without_saving_it(
    client: OnePinClient,
) -> None:
    workflow = await client.get_workflow(seed.WORKFLOW_COMPLETES_ID)
    good = await client.validate_workflow(workflow.definition)
    assert good.valid
    broken = workflow.definition.to_api()
    broken["graph"]["edges"] = []
    bad = await client.validate_workflow(broken)
    assert not bad.valid
    assert bad.errors
    assert all(issue.message for issue in bad.errors)


async def test_markdown_describes_the_workflow(client: OnePinClient) -> None:
    doc = await client.get_workflow_markdown(seed.WORKFLOW_COMPLETES_ID)
    assert doc.workflow_id == seed.WORKFLOW_COMPLETES_ID
    assert doc.name in doc.markdown


async def test_uploads_of_a_workflow_are_listed(client: OnePinClient) -> None:
    page = await client.list_workflow_uploads(seed.WORKFLOW_LONG_ID)
    assert [upload.id for upload in page.items] == [seed.UPLOAD_CHAPTER_ID]
    assert page.next_offset is None


async def test_name_availability_answers(client: OnePinClient) -> None:
    answer = await client.check_name_availability("Anything at all")
    assert answer.name == "Anything at all"
    assert answer.available is True


async def test_preview_and_estimate_price_the_given_script(client: OnePinClient) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    short = await client.preview_run(workflow_id, script_text="Hi.", source_language="en-us")
    long = await client.preview_run(workflow_id, script_text="Hello there, friend. " * 400)
    alias = await client.estimate_workflow(workflow_id, script_text="Hi.", source_language="en-us")
    assert isinstance(short, Estimate)
    assert short.min_credits <= short.expected_credits <= short.max_credits
    assert long.max_credits > short.max_credits
    assert alias.max_credits == short.max_credits
    assert short.current_balance > 0
