"""One voice for what to do next: for every state a run can be in, every tool that advises
about it (get_run_status, wait_for_run, and the run_control tools' `next`) gives the same advice,
in both protocol eras. The control tools may only say first that nothing changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.models import RUN_STATUSES, RunState
from onepin_mcp.sandbox import seed
from onepin_mcp.views.run_control import RunControlView
from onepin_mcp.views.runs import RunStatusView, RunWaitView

from .conftest import structured

pytestmark = pytest.mark.anyio

COURSE = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
IVR = {"workflow_id": seed.WORKFLOW_IVR_ID, "run_id": seed.RUN_PAUSED_ID}
ONBOARDING = {"workflow_id": seed.WORKFLOW_ONBOARDING_ID, "run_id": seed.RUN_PENDING_ID}
COMPLETED = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
FAILED = {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}
CANCELLED = {"workflow_id": seed.WORKFLOW_LONG_ID, "run_id": seed.RUN_CANCELLED_ID}

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def unchanged(state: str) -> str:
    return f"Nothing changed: the run was already {state}. "


async def advice(call: Call, ids: dict[str, str]) -> str:
    return str((await call("get_run_status", ids))["next"])


async def test_every_tool_gives_the_same_next_step_for_the_same_run_state(
    mcp_client: Client,
) -> None:
    async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return structured(await mcp_client.call_tool(tool, arguments))

    # Finished runs: cancel_run leaves them as they are; wait_for_run returns at once.
    for ids, state in ((COMPLETED, "completed"), (FAILED, "failed"), (CANCELLED, "cancelled")):
        expected = await advice(call, ids)
        assert (await call("cancel_run", ids))["next"] == unchanged(state) + expected
        assert (await call("wait_for_run", ids))["next"] == expected

    # Pending: a pause parks it at once, so the pending advice comes from start_run's answer.
    started = await call("start_run", {"workflow_id": seed.WORKFLOW_COMPLETES_ID})
    pending = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": started["id"]}
    assert started["next"] == await advice(call, pending)

    # Paused: a second pause changes nothing.
    assert (await call("pause_run", IVR))["next"] == unchanged("paused") + await advice(call, IVR)

    # Pausing (still running while a long step finishes), then a second pause.
    pausing = await call("pause_run", COURSE)
    expected = await advice(call, COURSE)
    assert expected.startswith("Pausing:")
    assert pausing["next"] == expected
    assert (await call("pause_run", COURSE))["next"] == unchanged("pausing") + expected

    # Running: the paused run, resumed.
    await call("cancel_run", COURSE)
    resumed = await call("resume_run", IVR)
    assert resumed["status"] == "running"
    assert resumed["next"] == await advice(call, IVR)


async def test_a_pausing_run_is_advised_to_wait_with_pause_run_or_wait_for_run_never_polling(
    mcp_client: Client,
) -> None:
    await mcp_client.call_tool("pause_run", COURSE)

    status = structured(await mcp_client.call_tool("get_run_status", COURSE))

    assert "pause_run with wait_s or wait_for_run" in status["next"]
    assert "get_run_status" not in status["next"]


def _state(status: str, **fields: Any) -> RunState:
    return RunState.model_validate(
        {"id": "run-1", "workflow_id": "wf-1", "status": status, "run_number": 3, **fields}
    )


_NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
_EVERY_STATE = [
    *(_state(status) for status in RUN_STATUSES),
    _state("running", pause_requested_at=_NOW),
    _state("completed", has_export=False),
    *(
        _state("paused", pause_reason=reason, paused_at=_NOW)
        for reason in (
            "user",
            "provider_outage",
            "provider_rate_limited",
            "provider_billing",
            "node_timeout",
            "something_new",
        )
    ),
]


@pytest.mark.parametrize("state", _EVERY_STATE, ids=lambda s: f"{s.status}-{s.pause_reason}")
def test_status_and_control_views_word_every_state_alike(state: RunState) -> None:
    expected = RunStatusView.of(state).next

    assert RunControlView.of(state).next == expected
    assert RunControlView.of(state, changed=False).next.endswith(" " + expected)
    if state.is_terminal:
        assert RunWaitView.after_wait(state, 3.0).next == expected
