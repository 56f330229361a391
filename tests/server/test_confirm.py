"""Confirmation before writes, in both protocol eras: the user is asked where the client can
answer (elicitation), nothing reaches OnePin unless they say yes, and clients that can't be
asked, or a policy of `never`, proceed without a question."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.state import ConfirmPolicy, WritePolicy
from tests.support.users import User

from .conftest import ServerFactory, error_text, structured

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID
REAL_BOUND_S = 20


async def call(
    make_server: ServerFactory,
    mode: str,
    tool: str,
    arguments: dict[str, Any],
    *,
    user: User | None,
    confirm: ConfirmPolicy = "destructive",
) -> Any:
    server = make_server(toolsets=("all",), policy=WritePolicy(confirm=confirm))
    async with Client(server, mode=mode, elicitation_callback=user) as client:  # type: ignore[arg-type]
        with anyio.fail_after(REAL_BOUND_S):
            return await client.call_tool(tool, arguments)


def posts(sandbox: Sandbox, suffix: str = "") -> list[str]:
    return [r.path for r in sandbox.requests if r.method == "POST" and r.path.endswith(suffix)]


# --- cancel_run (asked under the default policy) ------------------------------------------------


async def test_cancel_asks_the_user_by_run_number_and_workflow_name_and_cancels_on_yes(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    run = await api.start_run(COMPLETES)
    name = (await api.get_workflow(COMPLETES)).name
    user = User()

    result = await call(
        make_server, mode, "cancel_run", {"workflow_id": COMPLETES, "run_id": run.id}, user=user
    )

    assert structured(result)["status"] == "cancelled"
    assert user.questions == [
        f"Cancel run #{run.run_number} of workflow '{name}'? It cannot be resumed."
    ]
    assert (await api.get_run_status(COMPLETES, run.id)).status == "cancelled"


@pytest.mark.parametrize(
    ("action", "confirm", "how"),
    [
        ("decline", True, "the user declined"),
        ("cancel", True, "the user dismissed the question"),
        ("accept", False, "the user left the confirmation unchecked"),
    ],
)
async def test_cancel_does_nothing_when_the_user_does_not_say_yes(
    make_server: ServerFactory,
    mode: str,
    api: OnePinClient,
    sandbox: Sandbox,
    action: str,
    confirm: bool,
    how: str,
) -> None:
    run = await api.start_run(COMPLETES)
    user = User(action, confirm)

    result = await call(
        make_server, mode, "cancel_run", {"workflow_id": COMPLETES, "run_id": run.id}, user=user
    )

    text = error_text(result)
    assert how in text
    assert "Nothing was sent to OnePin" in text
    assert len(user.questions) == 1
    assert posts(sandbox, "/cancel") == []
    assert (await api.get_run_status(COMPLETES, run.id)).status == "pending"


async def test_a_client_without_elicitation_cancels_without_being_asked(
    make_server: ServerFactory, mode: str, api: OnePinClient
) -> None:
    run = await api.start_run(COMPLETES)

    result = await call(
        make_server, mode, "cancel_run", {"workflow_id": COMPLETES, "run_id": run.id}, user=None
    )

    assert structured(result)["status"] == "cancelled"


async def test_with_confirm_never_no_question_is_asked(
    make_server: ServerFactory, mode: str, api: OnePinClient
) -> None:
    run = await api.start_run(COMPLETES)
    user = User("decline")

    result = await call(
        make_server,
        mode,
        "cancel_run",
        {"workflow_id": COMPLETES, "run_id": run.id},
        user=user,
        confirm="never",
    )

    assert structured(result)["status"] == "cancelled"
    assert user.questions == []


async def test_cancelling_a_finished_run_asks_nothing_since_nothing_would_change(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    user = User("decline")
    arguments = {"workflow_id": COMPLETES, "run_id": seed.RUN_COMPLETED_ID}

    result = await call(make_server, mode, "cancel_run", arguments, user=user)

    assert structured(result)["changed"] is False
    assert user.questions == []


# --- delete_workflow (asked under the default policy) -------------------------------------------


async def test_delete_workflow_asks_and_deletes_only_on_yes(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    copy = await api.duplicate_workflow(COMPLETES)

    no = User("decline")
    refused = await call(make_server, mode, "delete_workflow", {"workflow_id": copy.id}, user=no)
    assert "the user declined" in error_text(refused)
    assert not any(r.method == "DELETE" for r in sandbox.requests)
    assert (await api.get_workflow(copy.id)).id == copy.id

    yes = User()
    deleted = await call(make_server, mode, "delete_workflow", {"workflow_id": copy.id}, user=yes)
    assert structured(deleted)["deleted"] is True
    assert yes.questions == [
        f"Delete workflow '{copy.name}'? It and its runs can no longer be read or run; this "
        "cannot be undone."
    ]
    assert [r.method for r in sandbox.requests if r.method == "DELETE"] == ["DELETE"]


# --- the `writes` policy: every write asks --------------------------------------------------


async def test_under_writes_start_run_asks_and_starts_nothing_on_decline(
    make_server: ServerFactory, mode: str, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = (await api.list_runs(COMPLETES)).total
    user = User("decline")

    result = await call(
        make_server, mode, "start_run", {"workflow_id": COMPLETES}, user=user, confirm="writes"
    )

    assert "the user declined" in error_text(result)
    [question] = user.questions
    assert question.startswith("Start a run of workflow '")
    assert posts(sandbox) == []
    assert (await api.list_runs(COMPLETES)).total == before


async def test_under_writes_start_run_starts_on_yes(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    user = User()

    result = await call(
        make_server, mode, "start_run", {"workflow_id": COMPLETES}, user=user, confirm="writes"
    )

    assert structured(result)["status"] == "pending"
    assert len(user.questions) == 1
    assert posts(sandbox, "/runs") == [f"/api/v1/workflows/{COMPLETES}/runs"]


async def test_under_the_default_policy_start_run_is_not_asked_about(
    make_server: ServerFactory, mode: str
) -> None:
    user = User("decline")

    result = await call(make_server, mode, "start_run", {"workflow_id": COMPLETES}, user=user)

    assert structured(result)["status"] == "pending"
    assert user.questions == []


async def test_under_writes_a_workflow_is_created_only_on_yes(
    make_server: ServerFactory, mode: str, sandbox: Sandbox
) -> None:
    user = User("decline")

    result = await call(
        make_server, mode, "create_workflow", {"name": "Spring promo"}, user=user, confirm="writes"
    )

    assert "the user declined" in error_text(result)
    assert user.questions == ["Create a workflow named 'Spring promo' in this workspace?"]
    assert posts(sandbox) == []


# --- one resolver and one guard for every write -------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("start_run", {"workflow_id": COMPLETES}),
        ("update_workflow", {"workflow_id": COMPLETES, "name": "Renamed"}),
        ("duplicate_workflow", {"workflow_id": COMPLETES}),
    ],
)
async def test_a_question_that_cannot_be_asked_costs_no_read_to_word_it(
    make_server: ServerFactory, mode: str, sandbox: Sandbox, tool: str, arguments: dict[str, Any]
) -> None:
    # Under `writes` these tools would ask, but this client declared no elicitation: the
    # workflow's name, which only words the question, is not worth a request to OnePin.
    result = await call(make_server, mode, tool, arguments, user=None, confirm="writes")

    assert not result.is_error, error_text(result)
    workflow = f"/api/v1/workflows/{COMPLETES}"
    assert [r.path for r in sandbox.requests if r.method == "GET" and r.path == workflow] == []


async def test_every_write_asks_once_under_writes_and_its_record_names_the_tool_called(
    make_server: ServerFactory,
    mode: str,
    api: OnePinClient,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="onepin_mcp.audit")
    run = await api.start_run(COMPLETES)
    copy = await api.duplicate_workflow(COMPLETES)
    calls = {
        "start_run": {"workflow_id": COMPLETES},
        "cancel_run": {"workflow_id": COMPLETES, "run_id": run.id},
        "pause_run": {"workflow_id": COMPLETES, "run_id": run.id},
        "create_workflow": {"name": "Spring promo"},
        "update_workflow": {"workflow_id": copy.id, "name": "Renamed"},
        "duplicate_workflow": {"workflow_id": copy.id},
        "delete_workflow": {"workflow_id": copy.id},
    }
    sent_before = len(sandbox.requests)

    for tool, arguments in calls.items():
        user = User("decline")
        result = await call(make_server, mode, tool, arguments, user=user, confirm="writes")
        assert "the user declined" in error_text(result), tool
        assert len(user.questions) == 1, (tool, user.questions)

    records = [r.getMessage() for r in caplog.records if r.name == "onepin_mcp.audit"]
    assert [(m.split(" tool=")[1].split()[0], "outcome=declined" in m) for m in records] == [
        (tool, True) for tool in calls
    ]
    assert [r.method for r in sandbox.requests[sent_before:] if r.method != "GET"] == []
