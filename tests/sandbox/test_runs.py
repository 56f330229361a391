"""Runs on the manual clock: lifecycle, steps and nodes advancing, failures, pause/resume/cancel,
conflicts and credits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio

WF = "/api/v1/workflows/{}"
TERMINAL = {"completed", "failed", "cancelled"}


def runs_of(workflow_id: str) -> str:
    return WF.format(workflow_id) + "/runs"


async def start(client: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(runs_of(workflow_id), json=body or None)
    assert response.status_code == 202, response.text
    return dict(response.json()["data"])


async def status(client: httpx.AsyncClient, workflow_id: str, run_id: str) -> dict[str, Any]:
    response = await client.get(f"{runs_of(workflow_id)}/{run_id}/status")
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def action(
    client: httpx.AsyncClient, workflow_id: str, run_id: str, verb: str
) -> httpx.Response:
    return await client.post(f"{runs_of(workflow_id)}/{run_id}/{verb}")


async def run_until(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    workflow_id: str,
    run_id: str,
    wanted: set[str],
    *,
    step_s: float = 0.5,
    limit_s: float = 3600,
) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Advance the clock in steps until the run reaches a wanted status; returns the status,
    the sandbox seconds it took and every status seen on the way."""
    seen = []
    waited = 0.0
    while True:
        current = await status(client, workflow_id, run_id)
        seen.append(current)
        if current["status"] in wanted:
            return current, waited, seen
        assert waited < limit_s, f"still {current['status']} after {waited} s"
        sandbox.advance(step_s)
        waited += step_s


async def test_start_run_returns_202_and_a_pending_run_with_nothing_done_yet(
    client: httpx.AsyncClient,
) -> None:
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    assert run["status"] == "pending"
    assert run["workflow_id"] == seed.WORKFLOW_COMPLETES_ID
    assert run["run_number"] == 3, "two seeded runs came before"
    assert (run["total_steps"], run["finished_steps"], run["finished_nodes"]) == (0, 0, 0)
    assert run["total_nodes"] == 6
    assert run["credits"] is None
    assert run["has_export"] is False
    assert run["triggered_by"] == {"user_id": seed.USER_ID, "user_name": "Mina Park"}


async def test_a_run_moves_from_pending_through_running_to_completed_within_20_seconds(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    done, took, seen = await run_until(
        client, sandbox, seed.WORKFLOW_COMPLETES_ID, run["id"], TERMINAL
    )
    assert done["status"] == "completed"
    assert took <= 20
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "pending"
    assert "running" in statuses
    assert statuses.index("running") < statuses.index("completed")
    finished = [s["finished_steps"] for s in seen]
    assert finished == sorted(finished), "progress never goes backwards"
    assert len(set(finished)) > 3, "steps finish one by one"
    assert (
        done["finished_steps"]
        == done["total_steps"]
        > done["total_nodes"]
        == done["finished_nodes"]
    )
    assert done["has_export"] is True
    assert done["started_at"] < done["completed_at"]
    assert done["error"] is None


async def test_steps_appear_node_by_node_and_a_retry_shows_as_a_second_iteration(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    steps_url = f"{runs_of(seed.WORKFLOW_COMPLETES_ID)}/{run['id']}/steps"
    sandbox.advance(1.5)
    early = (await client.get(steps_url)).json()["data"]
    assert [s["node_id"] for s in early] == ["src-1", "norm-1"]
    assert early[0]["status"] == "completed"
    assert early[1]["status"] == "running"
    await run_until(client, sandbox, seed.WORKFLOW_COMPLETES_ID, run["id"], TERMINAL)
    steps = (await client.get(steps_url)).json()["data"]
    assert [(s["node_id"], s["iteration"]) for s in steps] == [
        ("src-1", 0),
        ("norm-1", 0),
        ("tr-1", 0),
        ("gen-1", 0),
        ("wer-1", 0),
        ("gen-1", 1),
        ("wer-1", 1),
        ("sink-1", 0),
    ]
    assert steps[4]["active_ports"] == ["pass", "fail"]
    assert steps[5]["locales"] == ["ko-kr"]
    assert all(s["result"] is None and s["has_result"] for s in steps)
    with_results = (
        await client.get(
            steps_url, params={"include_result": "true", "node_type": "operator_generator"}
        )
    ).json()["data"]
    assert [s["iteration"] for s in with_results] == [0, 1]
    assert with_results[0]["result"]["takes"][0]["playback_url"].startswith(
        "http://sandbox.onepin.test/"
    )


async def test_completion_debits_the_run_credits_from_the_balance(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    before = (await client.get("/api/v1/users/me/credits")).json()["data"]
    preview = (await client.post(runs_of(seed.WORKFLOW_LONG_ID) + "/preview")).json()["data"]
    run = await start(client, seed.WORKFLOW_LONG_ID)
    done, _, _ = await run_until(
        client, sandbox, seed.WORKFLOW_LONG_ID, run["id"], TERMINAL, step_s=30
    )
    detail = (await client.get(f"{runs_of(seed.WORKFLOW_LONG_ID)}/{run['id']}")).json()["data"]
    after = (await client.get("/api/v1/users/me/credits")).json()["data"]
    assert done["status"] == "completed"
    assert preview["min_credits"] <= detail["credits"] <= preview["max_credits"]
    assert after["balance"] == before["balance"] - detail["credits"]
    assert after["used"] == before["used"] + detail["credits"]
    assert preview["current_balance"] == before["balance"]


async def test_a_failing_validator_fails_its_step_and_the_run_with_a_readable_error(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_FAILS_ID)
    done, took, _ = await run_until(client, sandbox, seed.WORKFLOW_FAILS_ID, run["id"], TERMINAL)
    assert done["status"] == "failed"
    assert took <= 20
    assert "Pronunciation check" in done["error"]
    assert "'Kubernetes'" in done["error"]
    assert done["has_export"] is False
    steps = (await client.get(f"{runs_of(seed.WORKFLOW_FAILS_ID)}/{run['id']}/steps")).json()[
        "data"
    ]
    failed = [s for s in steps if s["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["node_type"] == "validator_pronunciation"
    assert failed[0]["error"]
    assert failed[0]["error"] in done["error"]
    assert steps[-1] == failed[0], "nothing runs after the failed step"
    download = await client.get(f"{runs_of(seed.WORKFLOW_FAILS_ID)}/{run['id']}/download")
    assert download.status_code == 409


async def test_the_long_workflow_keeps_running_for_at_least_ten_minutes(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_LONG_ID)
    sandbox.advance(600)
    midway = await status(client, seed.WORKFLOW_LONG_ID, run["id"])
    assert midway["status"] == "running"
    assert 0 < midway["finished_nodes"] < midway["total_nodes"]
    sandbox.advance(1200)
    assert (await status(client, seed.WORKFLOW_LONG_ID, run["id"]))["status"] == "completed"


async def test_a_second_run_of_an_active_workflow_is_a_409(client: httpx.AsyncClient) -> None:
    await start(client, seed.WORKFLOW_COMPLETES_ID)
    again = await client.post(runs_of(seed.WORKFLOW_COMPLETES_ID))
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "CONFLICT",
        "message": "Another run of this workflow is already active.",
    }
    listed = (
        await client.get(runs_of(seed.WORKFLOW_COMPLETES_ID), params={"status": "pending"})
    ).json()
    assert listed["pagination"]["total"] == 1


async def test_the_three_main_workflows_can_all_start_at_once(client: httpx.AsyncClient) -> None:
    for workflow_id in (seed.WORKFLOW_COMPLETES_ID, seed.WORKFLOW_FAILS_ID, seed.WORKFLOW_LONG_ID):
        await start(client, workflow_id)


async def test_exceeding_the_concurrent_run_limit_is_a_409(client: httpx.AsyncClient) -> None:
    limit = (await client.get("/api/v1/users/me/limits")).json()["data"]["concurrent_runs_per_user"]
    busy = 2  # the seeded pending and running runs hold slots; the paused one does not
    copies = []
    for _ in range(limit - busy + 1):
        response = await client.post(WF.format(seed.WORKFLOW_COMPLETES_ID) + "/duplicate")
        copies.append(response.json()["data"]["id"])
    for copy in copies[:-1]:
        await start(client, copy)
    refused = await client.post(runs_of(copies[-1]))
    assert refused.status_code == 409
    assert "Concurrent run limit" in refused.json()["error"]["message"]


async def test_a_run_the_balance_cannot_cover_is_refused_with_402(
    client: httpx.AsyncClient,
) -> None:
    huge = "\n".join(
        f"Line {i} of a very long script that nobody can afford." for i in range(10000)
    )
    preview = (
        await client.post(
            runs_of(seed.WORKFLOW_COMPLETES_ID) + "/preview", json={"script_text": huge}
        )
    ).json()["data"]
    assert preview["can_run"] is False
    refused = await client.post(runs_of(seed.WORKFLOW_COMPLETES_ID), json={"script_text": huge})
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert str(preview["min_credits"]) in refused.json()["error"]["message"]


async def test_a_script_override_runs_only_in_the_snapshot(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(
        client,
        seed.WORKFLOW_COMPLETES_ID,
        script_text="Hello there.\nGoodbye now.",
        source_language="en-US",
    )
    await run_until(client, sandbox, seed.WORKFLOW_COMPLETES_ID, run["id"], TERMINAL)
    detail = (await client.get(f"{runs_of(seed.WORKFLOW_COMPLETES_ID)}/{run['id']}")).json()["data"]
    config = detail["definition_snapshot"]["graph"]["nodes"][0]["config"]
    assert config == {"script_text": "Hello there.\nGoodbye now.", "source_language": "en-us"}
    data = (await client.get(f"{runs_of(seed.WORKFLOW_COMPLETES_ID)}/{run['id']}/data")).json()
    assert [row["script"] for row in data["data"]["rows"]] == ["Hello there.", "Goodbye now."]
    saved = (await client.get(WF.format(seed.WORKFLOW_COMPLETES_ID))).json()["data"]
    assert "Hello there." not in saved["definition"]["graph"]["nodes"][0]["config"]["script_text"]


async def test_pausing_a_pending_run_parks_it_at_once(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    paused = (await action(client, seed.WORKFLOW_COMPLETES_ID, run["id"], "pause")).json()["data"]
    assert paused["status"] == "paused"
    assert paused["pause_reason"] == "user"
    sandbox.advance(120)
    still = await status(client, seed.WORKFLOW_COMPLETES_ID, run["id"])
    assert still["status"] == "paused"
    assert still["total_steps"] == 0
    assert still["paused_ms"] == 120_000


async def test_pausing_a_running_run_drains_the_current_step_then_resume_continues(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    wf = seed.WORKFLOW_LONG_ID
    run = await start(client, wf)
    sandbox.advance(30)
    requested = (await action(client, wf, run["id"], "pause")).json()["data"]
    assert requested["status"] == "running"
    assert requested["pause_requested_at"] is not None
    paused, _, _ = await run_until(client, sandbox, wf, run["id"], {"paused"}, step_s=10)
    assert paused["pause_reason"] == "user"
    assert paused["finished_steps"] == paused["total_steps"], "the in-flight step drained"
    assert paused["held_nodes"]
    assert paused["held_nodes"][0]["node_id"]
    sandbox.advance(600)
    parked = await status(client, wf, run["id"])
    assert parked["finished_steps"] == paused["finished_steps"]

    resumed = (await action(client, wf, run["id"], "resume")).json()["data"]
    assert resumed["status"] == "running"
    assert resumed["pause_reason"] is None
    assert resumed["paused_ms"] >= 600_000
    done, _, _ = await run_until(client, sandbox, wf, run["id"], TERMINAL, step_s=60)
    assert done["status"] == "completed"


async def test_pause_is_idempotent_and_resume_of_a_run_that_is_not_paused_is_409(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    refused = await action(client, seed.WORKFLOW_COMPLETES_ID, run["id"], "resume")
    assert refused.status_code == 409
    assert "not paused" in refused.json()["error"]["message"]
    first = await action(client, seed.WORKFLOW_COMPLETES_ID, run["id"], "pause")
    second = await action(client, seed.WORKFLOW_COMPLETES_ID, run["id"], "pause")
    assert first.json()["data"]["paused_at"] == second.json()["data"]["paused_at"]
    finished = await action(client, seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID, "pause")
    assert finished.status_code == 409


async def test_cancel_stops_an_active_run_and_is_idempotent_on_finished_runs(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    wf = seed.WORKFLOW_COMPLETES_ID
    run = await start(client, wf)
    sandbox.advance(4)
    cancelled = await action(client, wf, run["id"], "cancel")
    body = cancelled.json()["data"]
    assert cancelled.status_code == 200
    assert body["status"] == "cancelled"
    assert body["completed_at"] is not None
    steps = (await client.get(f"{runs_of(wf)}/{run['id']}/steps")).json()["data"]
    assert steps[-1]["status"] == "cancelled"
    sandbox.advance(60)
    assert (await status(client, wf, run["id"]))["status"] == "cancelled"
    again = await action(client, wf, run["id"], "cancel")
    assert again.status_code == 200
    assert again.json()["data"]["updated_at"] == body["updated_at"]
    completed = await action(client, wf, seed.RUN_COMPLETED_ID, "cancel")
    assert completed.status_code == 200
    assert completed.json()["data"]["status"] == "completed"
    # The slot is free again.
    await start(client, wf)


async def test_the_seeded_history_covers_every_status(client: httpx.AsyncClient) -> None:
    expected = {
        seed.RUN_COMPLETED_ID: (seed.WORKFLOW_COMPLETES_ID, "completed"),
        seed.RUN_FAILED_ID: (seed.WORKFLOW_FAILS_ID, "failed"),
        seed.RUN_CANCELLED_ID: (seed.WORKFLOW_LONG_ID, "cancelled"),
        seed.RUN_RUNNING_ID: (seed.WORKFLOW_COURSE_ID, "running"),
        seed.RUN_PAUSED_ID: (seed.WORKFLOW_IVR_ID, "paused"),
        seed.RUN_PENDING_ID: (seed.WORKFLOW_ONBOARDING_ID, "pending"),
    }
    for run_id, (workflow_id, wanted) in expected.items():
        assert (await status(client, workflow_id, run_id))["status"] == wanted
    paused = await status(client, seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID)
    assert paused["pause_reason"] == "user"
    failed = await status(client, seed.WORKFLOW_FAILS_ID, seed.RUN_FAILED_ID)
    assert "mispronounced" in failed["error"]


async def test_runs_summary_counts_runs_and_pass_rate(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    summary_url = runs_of(seed.WORKFLOW_COMPLETES_ID) + "/summary"
    before = (await client.get(summary_url)).json()["data"]
    assert (before["total_runs"], before["completed"], before["pass_rate"]) == (2, 2, 1.0)
    run = await start(client, seed.WORKFLOW_COMPLETES_ID)
    during = (await client.get(summary_url)).json()["data"]
    assert during["pending"] == 1
    await run_until(client, sandbox, seed.WORKFLOW_COMPLETES_ID, run["id"], TERMINAL)
    after = (await client.get(summary_url)).json()["data"]
    assert after["completed"] == 3
    assert after["delivered_audio_ms"] > before["delivered_audio_ms"]
    windowed = (await client.get(summary_url, params={"from": "2026-03-12T08:59:00Z"})).json()[
        "data"
    ]
    assert windowed["total_runs"] == 1


async def test_run_lists_sort_and_search(client: httpx.AsyncClient) -> None:
    url = runs_of(seed.WORKFLOW_LONG_ID)
    newest_first = (await client.get(url)).json()["data"]
    oldest_first = (await client.get(url, params={"order": "asc"})).json()["data"]
    assert [r["run_number"] for r in newest_first] == [2, 1]
    assert [r["run_number"] for r in oldest_first] == [1, 2]
    assert (await client.get(url, params={"search": "jon"})).json()["pagination"]["total"] == 2
    assert (await client.get(url, params={"search": "mina"})).json()["pagination"]["total"] == 0
