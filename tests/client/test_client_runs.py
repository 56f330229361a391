"""Run endpoints, through the real client, against the sandbox on a manual clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinInputError
from onepin_mcp.api.models import (
    TERMINAL_STATUSES,
    DownloadUrl,
    Run,
    RunAnalysis,
    RunData,
    RunDetail,
    RunListItem,
    RunOutputs,
    RunOverview,
    RunsSummary,
    RunState,
    RunStep,
)
from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio


async def run_to_the_end(
    client: OnePinClient, sandbox: Sandbox, workflow_id: str, run_id: str
) -> RunState:
    """Advance sandbox time in steps until the run is terminal (bounded, never a real wait)."""
    for _ in range(200):
        state = await client.get_run_status(workflow_id, run_id)
        if state.is_terminal:
            return state
        sandbox.advance(5)
    raise AssertionError("the run never finished")


async def test_a_started_run_advances_with_sandbox_time_to_completion(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    run = await client.start_run(workflow_id)
    assert isinstance(run, Run)
    assert run.workflow_id == workflow_id
    assert run.status in ("pending", "running")
    assert sandbox.requests[-1].status == 202

    sandbox.advance(3)
    midway = await client.get_run_status(workflow_id, run.id)
    assert isinstance(midway, RunState)

    final = await run_to_the_end(client, sandbox, workflow_id, run.id)
    assert final.status == "completed"
    assert final.finished_steps == final.total_steps
    assert final.finished_nodes == final.total_nodes
    assert final.has_export is True


async def test_a_run_with_a_script_override_uses_that_script(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    run = await client.start_run(
        workflow_id, script_text="Reports now export to PDF.", source_language="en-us"
    )
    await run_to_the_end(client, sandbox, workflow_id, run.id)
    data = await client.get_run_data(workflow_id, run.id, limit=100)
    scripts = [row.script for row in data.rows]
    assert scripts == ["Reports now export to PDF."]


async def test_a_failing_workflow_ends_failed_with_a_readable_error_and_a_failed_step(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    workflow_id = seed.WORKFLOW_FAILS_ID
    run = await client.start_run(workflow_id)
    final = await run_to_the_end(client, sandbox, workflow_id, run.id)
    assert final.status == "failed"
    assert final.error
    steps = await client.get_run_steps(workflow_id, run.id)
    assert any(step.status == "failed" and step.error for step in steps)


async def test_get_run_has_credits_and_the_definition_snapshot(client: OnePinClient) -> None:
    detail = await client.get_run(seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID)
    assert isinstance(detail, RunDetail)
    assert detail.status == "completed"
    assert detail.credits is not None
    assert detail.definition_snapshot is not None
    assert "graph" in detail.definition_snapshot


async def test_list_runs_pages_and_filters_by_a_comma_joined_status_list(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    everything = await client.list_runs(workflow_id)
    assert everything.total is not None
    assert everything.total >= 2
    assert all(isinstance(item, RunListItem) for item in everything.items)

    first = await client.list_runs(workflow_id, limit=1)
    assert first.next_offset == 1
    second = await client.list_runs(workflow_id, limit=1, offset=first.next_offset or 0)
    assert second.items[0].id != first.items[0].id

    finished = await client.list_runs(workflow_id, status=["completed", "failed"])
    assert finished.items
    assert all(item.status in ("completed", "failed") for item in finished.items)
    assert "status=completed%2Cfailed" in sandbox.requests[-1].query

    none_cancelled = await client.list_runs(workflow_id, status="cancelled")
    assert none_cancelled.items == []
    assert none_cancelled.total == 0


async def test_an_empty_status_list_is_refused_before_any_request(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    with pytest.raises(OnePinInputError, match="status"):
        await client.list_runs(seed.WORKFLOW_COMPLETES_ID, status=[])
    assert len(sandbox.requests) == 0


async def test_steps_can_be_filtered_by_node_and_carry_results_on_request(
    client: OnePinClient,
) -> None:
    workflow_id, run_id = seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID
    steps = await client.get_run_steps(workflow_id, run_id)
    assert steps
    assert all(isinstance(step, RunStep) for step in steps)
    assert all(step.result is None for step in steps)
    node_id = steps[0].node_id
    only_one_node = await client.get_run_steps(workflow_id, run_id, node_id=node_id)
    assert only_one_node
    assert {step.node_id for step in only_one_node} == {node_id}
    with_results = await client.get_run_steps(workflow_id, run_id, include_result=True)
    assert any(step.result for step in with_results)


async def test_overview_analysis_outputs_and_data_describe_a_completed_run(
    client: OnePinClient,
) -> None:
    workflow_id, run_id = seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID
    overview = await client.get_run_overview(workflow_id, run_id)
    assert isinstance(overview, RunOverview)
    assert overview.run.id == run_id
    assert overview.workflow.id == workflow_id
    assert overview.audio_by_language
    assert overview.workflow_snapshot.node_states

    analysis = await client.get_run_analysis(workflow_id, run_id)
    assert isinstance(analysis, RunAnalysis)
    assert analysis.run.id == run_id
    assert analysis.audio

    outputs = await client.get_run_outputs(workflow_id, run_id)
    assert isinstance(outputs, RunOutputs)
    assert outputs.run_status == "completed"
    assert outputs.outputs
    assert outputs.outputs[0].lines

    data = await client.get_run_data(workflow_id, run_id, limit=1)
    assert isinstance(data, RunData)
    assert data.run_id == run_id
    assert len(data.rows) == 1
    assert data.page.total is not None
    assert data.page.total > 1
    assert data.page.next_offset == 1
    card = data.rows[0].cards[0]
    assert card.audio is not None
    assert card.audio.status == "available"
    assert card.audio_id is not None


async def test_download_urls_for_the_run_a_node_and_a_clip(client: OnePinClient) -> None:
    workflow_id, run_id = seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID
    whole = await client.get_run_download_url(workflow_id, run_id)
    assert isinstance(whole, DownloadUrl)
    assert whole.url.startswith("http")
    assert whole.expires_at is not None

    outputs = await client.get_run_outputs(workflow_id, run_id)
    node = await client.get_node_download_url(workflow_id, run_id, outputs.outputs[0].node_id)
    assert node.url != whole.url

    data = await client.get_run_data(workflow_id, run_id, limit=1)
    audio_id = data.rows[0].cards[0].audio_id
    assert audio_id is not None
    clip = await client.get_audio_url(workflow_id, run_id, audio_id)
    assert clip.url.startswith("http")


async def test_downloading_an_unfinished_run_is_a_409(client: OnePinClient) -> None:
    run = await client.start_run(seed.WORKFLOW_LONG_ID)
    with pytest.raises(OnePinAPIError) as caught:
        await client.get_run_download_url(seed.WORKFLOW_LONG_ID, run.id)
    assert (caught.value.status, caught.value.code) == (409, "CONFLICT")


async def test_summary_counts_runs_per_status_within_a_time_range(client: OnePinClient) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    summary = await client.get_runs_summary(workflow_id)
    assert isinstance(summary, RunsSummary)
    assert summary.total_runs == summary.completed + summary.failed + summary.cancelled + (
        summary.pending + summary.running + summary.paused
    )
    assert summary.completed >= 2
    future = datetime.now(timezone.utc) + timedelta(days=3650)
    empty = await client.get_runs_summary(workflow_id, from_=future)
    assert empty.total_runs == 0


async def test_a_naive_datetime_is_refused_before_any_request(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    with pytest.raises(OnePinInputError, match="from_"):
        await client.get_runs_summary(seed.WORKFLOW_COMPLETES_ID, from_=datetime(2026, 1, 1))
    assert len(sandbox.requests) == 0


async def test_cancel_stops_a_run_and_is_idempotent_on_a_finished_one(
    client: OnePinClient,
) -> None:
    run = await client.start_run(seed.WORKFLOW_LONG_ID)
    cancelled = await client.cancel_run(seed.WORKFLOW_LONG_ID, run.id)
    assert cancelled.status == "cancelled"
    again = await client.cancel_run(seed.WORKFLOW_LONG_ID, run.id)
    assert again.status == "cancelled"
    finished = await client.cancel_run(seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID)
    assert finished.status == "completed"


async def test_pause_then_resume_a_run(client: OnePinClient, sandbox: Sandbox) -> None:
    workflow_id = seed.WORKFLOW_LONG_ID
    run = await client.start_run(workflow_id)
    sandbox.advance(5)
    paused = await client.pause_run(workflow_id, run.id)
    assert paused.status in ("running", "paused")  # a running wave drains first
    for _ in range(100):
        if (await client.get_run_status(workflow_id, run.id)).status == "paused":
            break
        sandbox.advance(5)
    assert (await client.get_run_status(workflow_id, run.id)).status == "paused"
    resumed = await client.resume_run(workflow_id, run.id)
    assert resumed.status == "running"
    assert resumed.status not in TERMINAL_STATUSES


async def test_resuming_a_run_that_is_not_paused_is_a_409(client: OnePinClient) -> None:
    with pytest.raises(OnePinAPIError) as caught:
        await client.resume_run(seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID)
    assert caught.value.status == 409


async def test_the_seeded_paused_run_resumes(client: OnePinClient) -> None:
    state = await client.get_run_status(seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID)
    assert state.status == "paused"
    resumed = await client.resume_run(seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID)
    assert resumed.status == "running"
