"""The read tools of the `runs` toolset, through the MCP protocol, against the seeded sandbox.

wait_for_run has its own file (test_runs_wait.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunState
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import ServerFactory, error_text, structured

pytestmark = pytest.mark.anyio

UNKNOWN_ID = "0f6c2b8e-4a1d-4c9f-b3e7-000000000000"
COMPLETED = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
FAILED = {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}


async def run_to_the_end(
    client: OnePinClient, sandbox: Sandbox, workflow_id: str, run_id: str
) -> RunState:
    """Move sandbox time on in steps until the run is terminal (bounded; never a real wait)."""
    for _ in range(100):
        state = await client.get_run_status(workflow_id, run_id)
        if state.is_terminal:
            return state
        sandbox.advance(5)
    raise AssertionError("the run never finished")


# --- list_runs ------------------------------------------------------------------------------------


async def test_list_runs_gives_a_workflows_runs_newest_first(mcp_client: Client) -> None:
    page = structured(
        await mcp_client.call_tool("list_runs", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    )
    assert page["total"] == 2
    assert page["next_offset"] is None
    assert [row["id"] for row in page["items"]] == [
        seed.RUN_COMPLETED_ID,
        seed.RUN_COMPLETED_EARLIER_ID,
    ]
    newest = page["items"][0]
    assert newest["status"] == "completed"
    assert newest["run_number"] == 2
    assert newest["percent"] == 100
    assert newest["credits"] == 1
    assert newest["triggered_by"] == "Mina Park"


async def test_list_runs_filters_by_a_list_of_statuses_and_pages(mcp_client: Client) -> None:
    both = structured(
        await mcp_client.call_tool(
            "list_runs",
            {"workflow_id": seed.WORKFLOW_LONG_ID, "status": ["cancelled", "completed"]},
        )
    )
    assert {row["id"] for row in both["items"]} == {
        seed.RUN_CANCELLED_ID,
        seed.RUN_LONG_COMPLETED_ID,
    }
    first = structured(
        await mcp_client.call_tool(
            "list_runs",
            {
                "workflow_id": seed.WORKFLOW_LONG_ID,
                "status": ["cancelled", "completed"],
                "limit": 1,
            },
        )
    )
    assert first["total"] == 2
    assert first["next_offset"] == 1
    assert "offset=1" in first["next"]
    last = structured(
        await mcp_client.call_tool(
            "list_runs",
            {
                "workflow_id": seed.WORKFLOW_LONG_ID,
                "status": ["cancelled", "completed"],
                "limit": 1,
                "offset": 1,
            },
        )
    )
    assert last["next_offset"] is None
    assert "next" not in last
    assert {first["items"][0]["id"], last["items"][0]["id"]} == {
        seed.RUN_CANCELLED_ID,
        seed.RUN_LONG_COMPLETED_ID,
    }
    active = structured(
        await mcp_client.call_tool(
            "list_runs",
            {"workflow_id": seed.WORKFLOW_LONG_ID, "status": ["pending", "running", "paused"]},
        )
    )
    assert active["items"] == []
    assert active["total"] == 0


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"status": []}, "status"),
        ({"status": ["done"]}, "status"),
        ({"sort": "name"}, "sort"),
        ({"limit": 500}, "limit"),
    ],
)
async def test_list_runs_refuses_bad_filters_before_calling_onepin(
    mcp_client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str
) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "list_runs", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, **arguments}
        )
    )
    assert field in text
    assert len(sandbox.requests) == 0


async def test_list_runs_of_an_unknown_workflow_points_to_list_workflows(
    mcp_client: Client,
) -> None:
    text = error_text(await mcp_client.call_tool("list_runs", {"workflow_id": UNKNOWN_ID}))
    assert text.startswith("OnePin answered 404")
    assert "Call list_workflows" in text
    assert "request id " in text


# --- get_run_status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workflow_id", "run_id", "status", "is_terminal", "hint"),
    [
        (*COMPLETED.values(), "completed", True, "get_download_url"),
        (*FAILED.values(), "failed", True, "get_run_steps with failed_only=true"),
        (seed.WORKFLOW_LONG_ID, seed.RUN_CANCELLED_ID, "cancelled", True, "Cancelled"),
        (seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID, "paused", False, "resume_run"),
        (seed.WORKFLOW_COURSE_ID, seed.RUN_RUNNING_ID, "running", False, "wait_for_run"),
        (seed.WORKFLOW_ONBOARDING_ID, seed.RUN_PENDING_ID, "pending", False, "wait_for_run"),
    ],
)
async def test_get_run_status_says_what_to_do_next_in_every_state(
    mcp_client: Client, workflow_id: str, run_id: str, status: str, is_terminal: bool, hint: str
) -> None:
    state = structured(
        await mcp_client.call_tool("get_run_status", {"workflow_id": workflow_id, "run_id": run_id})
    )
    assert "run_id" not in state  # the caller's ids are not echoed
    assert state["status"] == status
    assert state["is_terminal"] is is_terminal
    assert hint in state["next"]


async def test_get_run_status_reports_progress_timing_and_the_error(mcp_client: Client) -> None:
    done = structured(await mcp_client.call_tool("get_run_status", COMPLETED))
    assert done["progress"] == {
        "nodes": "6/6",
        "steps": "8/8",
        "percent": 100,
    }
    assert done["has_export"] is True
    assert done["started_at"] is not None
    assert done["completed_at"] is not None

    failed = structured(await mcp_client.call_tool("get_run_status", FAILED))
    assert failed["progress"]["percent"] == 83  # 5 of 6 nodes finished before the failure
    assert "kubectl" in failed["error"]
    assert "Pronunciation check" in failed["error"]

    paused = structured(
        await mcp_client.call_tool(
            "get_run_status",
            {"workflow_id": seed.WORKFLOW_IVR_ID, "run_id": seed.RUN_PAUSED_ID},
        )
    )
    assert paused["pause_reason"] == "user"
    assert paused["paused_at"] is not None
    assert paused["held_nodes"] == 1
    assert paused["progress"]["percent"] == 50


async def test_a_run_being_driven_to_completion_changes_its_hint(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": run.id}
    sandbox.advance(3)
    midway = structured(await mcp_client.call_tool("get_run_status", ids))
    assert midway["status"] == "running"
    assert 0 < midway["progress"]["percent"] < 100
    assert "wait_for_run" in midway["next"]

    await run_to_the_end(api, sandbox, seed.WORKFLOW_COMPLETES_ID, run.id)
    final = structured(await mcp_client.call_tool("get_run_status", ids))
    assert final["status"] == "completed"
    assert "get_run_results" in final["next"]


async def test_a_run_asked_to_pause_reads_as_pausing_until_its_step_drains(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    sandbox.advance(5)
    await api.pause_run(seed.WORKFLOW_LONG_ID, run.id)
    state = structured(
        await mcp_client.call_tool(
            "get_run_status", {"workflow_id": seed.WORKFLOW_LONG_ID, "run_id": run.id}
        )
    )
    assert state["status"] == "running"
    assert state["pause_requested_at"] is not None
    assert state["next"].startswith("Pausing")


async def test_an_unknown_run_points_to_list_runs_of_its_workflow(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "get_run_status", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": UNKNOWN_ID}
        )
    )
    assert text.startswith("OnePin answered 404")
    assert f"Call list_runs with workflow_id={seed.WORKFLOW_COMPLETES_ID}" in text
    assert "request id " in text


async def test_a_malformed_run_id_is_refused_without_a_request(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "get_run_status", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": "latest"}
        )
    )
    assert "Invalid argument run_id" in text
    assert "list_runs" in text
    assert len(sandbox.requests) == 0


async def test_a_persistent_outage_on_the_status_endpoint_is_explained(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": "/api/v1/workflows/*/status", "status": 503, "times": None})
    text = error_text(await mcp_client.call_tool("get_run_status", COMPLETED))
    assert text.startswith("OnePin answered 503")
    assert "retries did not help" in text
    assert "request id" in text


# --- get_run --------------------------------------------------------------------------------------


async def test_get_run_gives_the_full_record_without_the_snapshot_by_default(
    mcp_client: Client,
) -> None:
    run = structured(await mcp_client.call_tool("get_run", COMPLETED))
    assert run["status"] == "completed"
    assert run["credits"] == 1
    assert run["token_cost"] == 358
    assert run["usage"] == {"characters": 358, "lines": 4, "audio_ms": 20096}
    assert run["triggered_by"] == {"user_id": seed.USER_ID, "user_name": "Mina Park"}
    assert run["duration_s"] == 15.4
    assert run["paused_s"] == 0
    assert run["has_export"] is True
    assert "error" not in run
    assert "definition_snapshot" not in run


async def test_get_run_adds_the_definition_snapshot_on_request(mcp_client: Client) -> None:
    run = structured(await mcp_client.call_tool("get_run", {**FAILED, "include_definition": True}))
    nodes = run["definition_snapshot"]["graph"]["nodes"]
    ids = [node["id"] for node in nodes]
    assert ids == ["src-1", "tr-1", "phon-1", "gen-1", "pron-1", "sink-1"]
    assert run["truncated"] is False
    assert "kubectl" in run["error"]


async def test_get_run_of_an_unknown_run_points_to_list_runs(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "get_run", {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": UNKNOWN_ID}
        )
    )
    assert "Call list_runs" in text
    assert "request id " in text


# --- get_run_steps --------------------------------------------------------------------------------


async def test_failed_steps_of_a_failing_run_show_the_validator_failure(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(seed.WORKFLOW_FAILS_ID)
    final = await run_to_the_end(api, sandbox, seed.WORKFLOW_FAILS_ID, run.id)
    assert final.status == "failed"

    log = structured(
        await mcp_client.call_tool(
            "get_run_steps",
            {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": run.id, "failed_only": True},
        )
    )
    assert log["matching"] == 1
    assert log["omitted"] == 0
    assert log["counts"]["failed"] == 1
    assert log["counts"]["completed"] >= 4
    (step,) = log["steps"]
    assert step["node_id"] == "pron-1"
    assert step["node_type"] == "validator_pronunciation"
    assert step["name"] == "Pronunciation check"
    assert step["status"] == "failed"
    assert step["iteration"] == 1
    assert step["active_ports"] == ["fail"]
    assert "'kubectl', 'Kubernetes' mispronounced" in step["error"]


async def test_get_run_steps_filters_by_node_and_keeps_the_last_steps_with_tail(
    mcp_client: Client,
) -> None:
    everything = structured(await mcp_client.call_tool("get_run_steps", COMPLETED))
    assert everything["matching"] == 8
    assert [step["node_id"] for step in everything["steps"]][:2] == ["src-1", "norm-1"]
    assert not any("result" in step for step in everything["steps"])

    tail = structured(await mcp_client.call_tool("get_run_steps", {**COMPLETED, "tail": 2}))
    assert tail["omitted"] == 6
    assert tail["steps"] == everything["steps"][-2:]

    generator = structured(
        await mcp_client.call_tool("get_run_steps", {**COMPLETED, "node_id": "gen-1"})
    )
    assert [step.get("iteration") for step in generator["steps"]] == [
        None,
        1,
    ]  # a first run says nothing

    validators = structured(
        await mcp_client.call_tool(
            "get_run_steps", {**COMPLETED, "node_type": "validator_error_rate"}
        )
    )
    assert {step["node_id"] for step in validators["steps"]} == {"wer-1"}


async def test_get_run_steps_adds_trimmed_results_on_request(mcp_client: Client) -> None:
    log = structured(
        await mcp_client.call_tool(
            "get_run_steps", {**COMPLETED, "node_id": "src-1", "include_result": True}
        )
    )
    (step,) = log["steps"]
    assert step["result"] == {"line_count": 4, "source_language": "en-us", "characters": 128}


async def test_failed_only_on_a_successful_run_says_there_is_nothing_failed(
    mcp_client: Client,
) -> None:
    log = structured(
        await mcp_client.call_tool("get_run_steps", {**COMPLETED, "failed_only": True})
    )
    assert log["steps"] == []
    assert "No failed steps" in log["next"]


@pytest.mark.parametrize("tail", [0, 201])
async def test_get_run_steps_refuses_a_tail_out_of_range(mcp_client: Client, tail: int) -> None:
    text = error_text(await mcp_client.call_tool("get_run_steps", {**COMPLETED, "tail": tail}))
    assert "tail" in text


# --- get_run_results ------------------------------------------------------------------------------


async def test_results_overview_has_metrics_validators_and_audio_by_language(
    mcp_client: Client,
) -> None:
    results = structured(await mcp_client.call_tool("get_run_results", COMPLETED))
    assert results["view"] == "overview"
    assert results["run_status"] == "completed"
    overview = results["overview"]
    metrics = {metric["label"]: metric for metric in overview["metrics"]}
    assert metrics["Output lines"]["value"] == "8"
    assert metrics["Validation pass rate"]["status"] == "available"
    (validator,) = overview["validators"]
    assert validator["label"] == "Word accuracy"
    assert validator["avg_score"] == 96.0
    assert validator["pass_rate"] == 1.0
    assert {a["locale"]: a["lines"] for a in overview["audio_by_language"]} == {
        "en-us": 4,
        "ko-kr": 4,
    }
    assert overview["nodes_not_completed"] == []
    assert "analysis" not in results
    assert "outputs" not in results


async def test_results_overview_of_a_failed_run_names_the_failed_node(mcp_client: Client) -> None:
    overview = structured(await mcp_client.call_tool("get_run_results", FAILED))["overview"]
    failed = [node for node in overview["nodes_not_completed"] if node["status"] == "failed"]
    assert [node["node_id"] for node in failed] == ["pron-1"]


async def test_results_analysis_has_locale_scores_audio_and_costly_nodes(
    mcp_client: Client,
) -> None:
    results = structured(
        await mcp_client.call_tool("get_run_results", {**COMPLETED, "view": "analysis"})
    )
    analysis = results["analysis"]
    assert analysis["duration_s"] == 15.4
    assert analysis["audio"]["delivered_s"] == 20.1
    by_locale = {row["locale"]: row for row in analysis["audio"]["by_locale"]}
    assert by_locale["ko-kr"]["replaced_s"] == 2.7
    (validator,) = analysis["validators"]
    assert validator["threshold"] == 85
    assert {loc["locale"]: loc["avg_score"] for loc in validator["locales"]} == {
        "en-us": 93.8,
        "ko-kr": 98.2,
    }
    assert analysis["credits"]["charged"] == 1
    assert [row["node_id"] for row in analysis["credits"]["rows"]] == ["tr-1", "gen-1", "wer-1"]


async def test_results_outputs_give_each_output_node_with_clip_ids(mcp_client: Client) -> None:
    results = structured(
        await mcp_client.call_tool("get_run_results", {**COMPLETED, "view": "outputs"})
    )
    (output,) = results["outputs"]
    assert output["node_id"] == "sink-1"
    assert output["line_count"] == 4
    assert output["truncated"] is False
    assert len(output["lines"]) == 4
    first = output["lines"][0]
    assert first["delivered"] is True
    assert [clip["locale"] for clip in first["clips"]] == ["en-us", "ko-kr"]
    assert all(len(clip["audio_id"]) == 16 for clip in first["clips"])
    assert "http" not in str(results)  # no presigned URLs here: get_download_url mints them


async def test_results_of_an_unknown_run_point_to_list_runs(mcp_client: Client) -> None:
    for view in ("overview", "analysis", "outputs"):
        text = error_text(
            await mcp_client.call_tool(
                "get_run_results",
                {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": UNKNOWN_ID, "view": view},
            )
        )
        assert "Call list_runs" in text


# --- get_run_data ---------------------------------------------------------------------------------


async def test_get_run_data_gives_lines_with_audio_per_locale(mcp_client: Client) -> None:
    data = structured(await mcp_client.call_tool("get_run_data", COMPLETED))
    assert data["total"] == 4
    assert data["next_offset"] is None
    assert data["partial"] is False
    first = data["rows"][0]
    assert first["script"] == "Welcome to the product tour."
    cards = {card["locale"]: card for card in first["cards"]}
    korean = cards["ko-kr"]
    assert korean["text"] == "제품 둘러보기에 오신 것을 환영합니다."
    assert korean["status"] == "delivered"
    assert korean["audio_status"] == "available"
    assert korean["voice"] == "Daeseong"
    assert korean["duration_s"] == 2.7
    assert korean["playback_url"].startswith("http")
    assert len(korean["audio_id"]) == 16
    assert korean["scores"] == {"wer": 98.8}
    assert "text" not in cards["en-us"]  # the same as the line's script


async def test_get_run_data_pages_searches_and_filters_cards_by_language(
    mcp_client: Client,
) -> None:
    first = structured(await mcp_client.call_tool("get_run_data", {**COMPLETED, "limit": 3}))
    assert first["next_offset"] == 3
    assert "offset=3" in first["next"]
    last = structured(
        await mcp_client.call_tool("get_run_data", {**COMPLETED, "limit": 3, "offset": 3})
    )
    assert len(last["rows"]) == 1
    assert last["next_offset"] is None

    found = structured(await mcp_client.call_tool("get_run_data", {**COMPLETED, "search": "link"}))
    assert [row["script"] for row in found["rows"]] == ["Share any view with a single link."]

    korean = structured(
        await mcp_client.call_tool("get_run_data", {**COMPLETED, "language": "ko-kr"})
    )
    assert len(korean["rows"]) == 4
    assert {card["locale"] for row in korean["rows"] for card in row["cards"]} == {"ko-kr"}


async def test_get_run_data_refuses_a_page_size_out_of_range(mcp_client: Client) -> None:
    text = error_text(await mcp_client.call_tool("get_run_data", {**COMPLETED, "limit": 0}))
    assert "limit" in text


# --- get_runs_summary -----------------------------------------------------------------------------


async def test_runs_summary_counts_statuses_and_rates(mcp_client: Client) -> None:
    summary = structured(
        await mcp_client.call_tool("get_runs_summary", {"workflow_id": seed.WORKFLOW_LONG_ID})
    )
    assert summary["total_runs"] == 2
    assert summary["counts"] == {"completed": 1, "cancelled": 1}
    assert summary["pass_rate"] == 1.0
    assert summary["average_duration_s"] > 60
    assert summary["delivered_audio_s"] > 0


async def test_runs_summary_over_a_time_range(mcp_client: Client, sandbox: Sandbox) -> None:
    now = sandbox.clock.now()
    recent = structured(
        await mcp_client.call_tool(
            "get_runs_summary",
            {
                "workflow_id": seed.WORKFLOW_COMPLETES_ID,
                "from_time": (now - timedelta(days=2, hours=1)).isoformat(),
                "to_time": now.isoformat(),
            },
        )
    )
    assert recent["total_runs"] == 1
    assert recent["from_time"] is not None
    future = structured(
        await mcp_client.call_tool(
            "get_runs_summary",
            {
                "workflow_id": seed.WORKFLOW_COMPLETES_ID,
                "from_time": (now + timedelta(days=1)).isoformat(),
            },
        )
    )
    assert future["total_runs"] == 0
    assert future["counts"] == {}
    assert "pass_rate" not in future


async def test_runs_summary_refuses_naive_times_and_a_reversed_range(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    naive = error_text(
        await mcp_client.call_tool(
            "get_runs_summary",
            {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "from_time": "2026-03-01T00:00:00"},
        )
    )
    assert "from_time" in naive
    assert "timezone" in naive

    start = datetime(2026, 3, 10, tzinfo=timezone.utc)
    reversed_range = error_text(
        await mcp_client.call_tool(
            "get_runs_summary",
            {
                "workflow_id": seed.WORKFLOW_COMPLETES_ID,
                "from_time": start.isoformat(),
                "to_time": (start - timedelta(days=1)).isoformat(),
            },
        )
    )
    assert "is after to_time" in reversed_range
    assert len(sandbox.requests) == 0


# --- get_download_url -----------------------------------------------------------------------------


async def test_download_urls_for_the_run_an_output_node_and_a_clip(mcp_client: Client) -> None:
    run_zip = structured(await mcp_client.call_tool("get_download_url", COMPLETED))
    assert run_zip["covers"] == "run"
    assert run_zip["url"].startswith("http")
    assert run_zip["filename"].endswith(".zip")
    assert run_zip["expires_at"] is not None

    node_zip = structured(
        await mcp_client.call_tool("get_download_url", {**COMPLETED, "node_id": "sink-1"})
    )
    assert node_zip["covers"] == "node"
    assert node_zip["url"] != run_zip["url"]

    data = structured(await mcp_client.call_tool("get_run_data", {**COMPLETED, "limit": 1}))
    audio_id = data["rows"][0]["cards"][0]["audio_id"]
    clip = structured(
        await mcp_client.call_tool("get_download_url", {**COMPLETED, "audio_id": audio_id})
    )
    assert clip["covers"] == "clip"
    assert audio_id in clip["url"]


async def test_download_url_refuses_node_and_clip_together(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    text = error_text(
        await mcp_client.call_tool(
            "get_download_url", {**COMPLETED, "node_id": "sink-1", "audio_id": "0123456789abcdef"}
        )
    )
    assert "not both" in text
    assert "get_download_url again" in text
    assert len(sandbox.requests) == 0


async def test_download_url_failures_name_the_tool_that_lists_valid_values(
    mcp_client: Client, api: OnePinClient
) -> None:
    no_node = error_text(
        await mcp_client.call_tool("get_download_url", {**COMPLETED, "node_id": "gen-1"})
    )
    assert "404" in no_node
    # The tool the node_id parameter's own description names: its results list output nodes.
    assert "Call get_run_results" in no_node

    no_clip = error_text(
        await mcp_client.call_tool(
            "get_download_url", {**COMPLETED, "audio_id": "0123456789abcdef"}
        )
    )
    assert "get_run_data" in no_clip

    bad_clip = error_text(
        await mcp_client.call_tool("get_download_url", {**COMPLETED, "audio_id": "clip-1"})
    )
    assert "Invalid argument audio_id" in bad_clip

    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    unfinished = error_text(
        await mcp_client.call_tool(
            "get_download_url", {"workflow_id": seed.WORKFLOW_LONG_ID, "run_id": run.id}
        )
    )
    assert unfinished.startswith("OnePin answered 409")
    assert "get_run_status" in unfinished


# --- preview_run ----------------------------------------------------------------------------------


async def test_preview_run_prices_the_run_without_charging(
    mcp_client: Client, api: OnePinClient
) -> None:
    before = (await api.get_credits()).balance
    preview = structured(
        await mcp_client.call_tool("preview_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    )
    assert preview["min_credits"] <= preview["expected_credits"] <= preview["max_credits"]
    assert preview["balance"] == before
    assert preview["can_run"] is True
    assert preview["deficit_at_max"] == 0
    assert "start_run" in preview["next"]
    assert (await api.get_credits()).balance == before


async def test_preview_run_prices_a_script_override(mcp_client: Client) -> None:
    saved = structured(
        await mcp_client.call_tool("preview_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    )
    long_script = "\n".join(
        f"Line {i} of a much longer tour script, read aloud." for i in range(300)
    )
    override = structured(
        await mcp_client.call_tool(
            "preview_run",
            {
                "workflow_id": seed.WORKFLOW_COMPLETES_ID,
                "script_text": long_script,
                "source_language": "en-us",
            },
        )
    )
    assert override["max_credits"] > saved["max_credits"]


async def test_preview_run_explains_a_script_the_workflow_cannot_run(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool("preview_run", {"workflow_id": seed.WORKFLOW_DRAFT_ID})
    )
    assert text.startswith("OnePin answered 422")
    assert "request id" in text


async def test_preview_run_explains_a_persistent_outage(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.add(
        {"method": "POST", "path": "/api/v1/workflows/*/runs/preview", "status": 503, "times": None}
    )
    text = error_text(
        await mcp_client.call_tool("preview_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    )
    assert text.startswith("OnePin answered 503")
    assert "Try again in a minute" in text


# --- the toolset as a whole -----------------------------------------------------------------------


async def test_the_run_tools_are_listed_in_order_as_read_only(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(toolsets=("runs",)), mode=mode) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == [
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
    ]
    for tool in tools:
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.idempotent_hint is True
        assert tool.description
        assert len(tool.description) < 300
