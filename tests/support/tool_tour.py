"""One tour of every tool on the seeded sandbox, for the suites that must see every kind of
answer (the output-schema check, the secrets canary): each view, a run started, waited on,
paused, resumed and cancelled, workflows created, edited, copied, checked and deleted,
dictionary entries added, changed and removed, usage by every split. The caller's `call` makes
(and checks) each call; `advance` moves the sandbox's clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from onepin_mcp.sandbox import seed

W = seed.WORKFLOW_COMPLETES_ID
F = seed.WORKFLOW_FAILS_ID
L = seed.WORKFLOW_LONG_ID

Call = Callable[..., Awaitable[dict[str, Any]]]


async def tour_every_tool(call: Call, advance: Callable[[float], None]) -> str:
    """Call every tool (most in several ways); returns a clip id of the seeded failed run."""
    await call("get_account")
    await call("list_workflows")
    await call("list_workflows", status="failed", limit=1)
    for view in ("summary", "definition", "markdown"):
        await call("get_workflow", workflow_id=W, view=view)
    definition = (await call("get_workflow", workflow_id=W, view="definition"))["definition"]
    await call("list_runs", workflow_id=W)
    await call("list_runs", workflow_id=W, from_time="2020-01-01T00:00:00Z")
    await call("get_run_status", workflow_id=W, run_id=seed.RUN_COMPLETED_ID)
    await call("get_run_status", workflow_id=F, run_id=seed.RUN_FAILED_ID)
    await call("get_run", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, include_definition=True)
    await call("get_run_steps", workflow_id=F, run_id=seed.RUN_FAILED_ID, include_result=True)
    for view in ("overview", "analysis", "outputs"):
        await call("get_run_results", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, view=view)
    data = await call("get_run_data", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, limit=2)
    clip = data["rows"][0]["cards"][0]["audio_id"]
    await call("get_audio_clip", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, audio_id=clip)
    failed = await call("get_run_data", workflow_id=F, run_id=seed.RUN_FAILED_ID)
    await call("get_runs_summary", workflow_id=W)
    await call("get_runs_summary", workflow_id=W, from_time="2020-01-01T00:00:00Z")
    await call("get_download_url", workflow_id=W, run_id=seed.RUN_COMPLETED_ID)
    await call("get_download_url", workflow_id=W, run_id=seed.RUN_COMPLETED_ID, audio_id=clip)
    await call("preview_run", workflow_id=W)

    run = await call("start_run", workflow_id=W, max_credits=1000)
    advance(60)
    waited = await call("wait_for_run", workflow_id=W, run_id=run["id"], timeout_s=30)
    assert waited["done"] is True, waited
    await call("cancel_run", workflow_id=W, run_id=run["id"])  # finished: changed=false
    long_run = await call("start_run", workflow_id=L)
    advance(5)
    await call("wait_for_run", workflow_id=L, run_id=long_run["id"], timeout_s=1)  # not done
    await call("pause_run", workflow_id=L)
    advance(120)  # a pause takes effect at the next step boundary
    await call("get_run_status", workflow_id=L, run_id=long_run["id"])  # paused
    await call("resume_run", workflow_id=L)
    await call("cancel_run", workflow_id=L)

    created = await call("create_workflow", name="Tour check")
    await call("update_workflow", workflow_id=created["id"], description="checked")
    await call("update_workflow", workflow_id=W, script_text="One line.", source_language="en-us")
    copy = await call("duplicate_workflow", workflow_id=created["id"])
    await call("duplicate_workflow", workflow_id=W, name="Tour copy", script_text="Two words.")
    await call("validate_workflow", definition=definition)
    await call("validate_workflow", workflow_id=W)
    await call("delete_workflow", workflow_id=copy["id"])
    await call("list_workflow_uploads", workflow_id=L)
    await call("list_node_types")
    await call("list_voices")
    await call("list_templates")

    await call("list_dictionary")
    await call("list_dictionary", language="en-us")
    await call("list_dictionary", search="kube")
    await call("suggest_pronunciation", word="kubectl", language="ja-jp")
    added = await call(
        "add_dictionary_entries",
        language="ja-jp",
        entries=[{"word": "kubectl"}, {"word": "OnePin", "pronunciation": "WUN-pin"}],
    )
    # One word added, one already there: an answer with both lists filled.
    await call(
        "add_dictionary_entries", language="en-us", entries=[{"word": "OnePin"}, {"word": "x1"}]
    )
    entry = added["added"][0]["id"]
    await call("update_dictionary_entry", entry_id=entry, pronunciation="KOOB-c-t-l")
    await call("delete_dictionary_entry", entry_id=entry)
    for by in ("language", "day", "week", "month"):
        await call("get_usage", by=by)
    return str(failed["rows"][0]["cards"][0]["audio_id"])
