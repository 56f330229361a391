"""The audit trail: every write tool call leaves one stderr line and, with an audit log, one JSON
line with time, tool, ids, outcome and request id; the API key never appears in either."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.state import WritePolicy

from .conftest import NO_WAIT_RETRY, SandboxClock, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

# Recognisable, so that any trace of it in a log or a file is found by a plain search.
KEY = "op_live_" + "AUDITKEY" * 4
COMPLETES = seed.WORKFLOW_COMPLETES_ID
LONG = seed.WORKFLOW_LONG_ID
REAL_BOUND_S = 20
FIELDS = {"time", "tool", "workflow_id", "run_id", "outcome", "request_id", "confirmed"}


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(manual_clock=True, api_keys=[ApiKey(KEY)])


@pytest.fixture
def audit_log(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "writes.jsonl"


def server(sandbox: Sandbox, audit_log: Path, **policy: Any) -> OnePinServer:
    audit_log.parent.mkdir(exist_ok=True)
    return create_server(
        sandbox_settings(sandbox, api_key=KEY),
        selection=ToolSelection(toolsets=("all",)),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=SandboxClock(sandbox),
        policy=WritePolicy(audit_log=str(audit_log), **policy),
    )


def read(audit_log: Path) -> str:
    return audit_log.read_text(encoding="utf-8")


def records(audit_log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read(audit_log).splitlines()]


async def decline(
    context: ClientRequestContext, params: ElicitRequestParams
) -> ElicitResult | ErrorData:
    return ElicitResult(action="decline")


async def test_each_write_appends_one_json_line_with_its_ids_and_outcome(
    sandbox: Sandbox, audit_log: Path, mode: str
) -> None:
    async with Client(server(sandbox, audit_log, max_run_credits=100), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))
            conflict = await client.call_tool("start_run", {"workflow_id": COMPLETES})
            refused = await client.call_tool("start_run", {"workflow_id": LONG})
            ids = {"workflow_id": COMPLETES, "run_id": run["id"]}
            structured(await client.call_tool("pause_run", ids))
            structured(await client.call_tool("cancel_run", ids))
            await client.call_tool("get_run_status", ids)  # a read: not audited
    assert "409" in error_text(conflict)
    assert "cap of 100 credits" in error_text(refused)

    lines = records(audit_log)

    assert [(r["tool"], r["outcome"]) for r in lines] == [
        ("start_run", "ok"),
        ("start_run", "error:CONFLICT"),
        ("start_run", "refused"),
        ("pause_run", "ok"),
        ("cancel_run", "ok"),
    ]
    assert all(set(r) >= FIELDS for r in lines)
    assert lines[0]["workflow_id"] == COMPLETES
    assert lines[0]["run_id"] == run["id"]
    assert lines[0]["confirmed"] is None  # nobody asked: this client has no elicitation
    assert lines[1]["request_id"]  # OnePin's id of the 409 answer, to quote to its support
    assert lines[1]["request_id"] in error_text(conflict)
    assert lines[2]["run_id"] is None
    assert lines[4]["run_id"] == run["id"]
    for line in lines:
        when = datetime.fromisoformat(line["time"])
        assert when.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=5)


async def test_a_declined_delete_and_a_recovered_start_are_recorded_as_such(
    sandbox: Sandbox, audit_log: Path, mode: str, api_on_key: OnePinClient
) -> None:
    copy = await api_on_key.duplicate_workflow(COMPLETES)
    sandbox.faults.add({"method": "POST", "path": "/api/v1/workflows/*/runs", "drop": "after"})

    async with Client(
        server(sandbox, audit_log), mode=mode, elicitation_callback=decline
    ) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))
            await client.call_tool("delete_workflow", {"workflow_id": copy.id})

    lines = records(audit_log)
    assert [(r["tool"], r["outcome"]) for r in lines] == [
        ("start_run", "recovered"),
        ("delete_workflow", "declined"),
    ]
    assert lines[0]["run_id"] == run["id"]
    assert lines[1]["workflow_id"] == copy.id


async def test_the_key_appears_in_no_audit_line_or_log_record(
    sandbox: Sandbox, audit_log: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Client(server(sandbox, audit_log), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))
            ids = {"workflow_id": COMPLETES, "run_id": run["id"]}
            structured(await client.call_tool("cancel_run", ids))
            await client.call_tool("resume_run", ids)  # refused by OnePin: 409

    text = read(audit_log)
    assert [r["outcome"] for r in records(audit_log)] == ["ok", "ok", "error:CONFLICT"]
    assert KEY not in text
    assert "AUDITKEY" not in text
    audit_lines = [r.getMessage() for r in caplog.records if r.name == "onepin_mcp.audit"]
    assert len(audit_lines) == 3
    assert audit_lines[0].startswith("write tool=start_run outcome=ok workflow_id=")
    assert all("\n" not in line for line in audit_lines)
    assert KEY not in caplog.text
    assert "AUDITKEY" not in caplog.text


async def test_a_key_passed_as_an_id_is_redacted_from_the_audit_record(
    sandbox: Sandbox, audit_log: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onepin_mcp.audit")
    forged = f"{KEY}\noutcome=ok"
    async with Client(server(sandbox, audit_log), mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            bad = await client.call_tool("cancel_run", {"workflow_id": COMPLETES, "run_id": forged})
    assert bad.is_error

    [line] = records(audit_log)
    assert line["run_id"] == "[redacted]outcome=ok"
    assert line["outcome"] == "error:invalid_input"
    assert "AUDITKEY" not in read(audit_log)
    [message] = [r.getMessage() for r in caplog.records if r.name == "onepin_mcp.audit"]
    # Quoted, so that the crafted id can't pass for a second outcome or a second line.
    assert 'run_id="[redacted]outcome=ok"' in message
    assert "AUDITKEY" not in message


async def test_without_an_audit_log_writes_still_leave_a_stderr_line(
    sandbox: Sandbox, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onepin_mcp.audit")
    plain = create_server(
        sandbox_settings(sandbox, api_key=KEY),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=SandboxClock(sandbox),
    )
    async with Client(plain, mode=mode) as client:
        with anyio.fail_after(REAL_BOUND_S):
            run = structured(await client.call_tool("start_run", {"workflow_id": COMPLETES}))

    [line] = [r.getMessage() for r in caplog.records if r.name == "onepin_mcp.audit"]
    assert f"workflow_id={COMPLETES} run_id={run['id']}" in line


@pytest.fixture
async def api_on_key(sandbox: Sandbox) -> Any:
    async with OnePinClient(
        sandbox_settings(sandbox, api_key=KEY), transport=sandbox.transport(), retry=NO_WAIT_RETRY
    ) as client:
        yield client
