"""The fault matrix: every sandbox fault against reads, a resource, a wait and
the write tools, through an MCP client connected to the real server.

The cases, what each expects and the exact observation it must make come from
`tests.reliability.fault_matrix`, which also generates the docs table; a test here keeps that
table in sync. Each case runs on a fresh sandbox and server, measures the sandbox's request log
(attempts on the faulted route, POSTs, runs created), then clears the faults and makes the same
call again, which must succeed. The session prints the tally: cases tried, passed, duplicates
created and crashes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import INTERNAL_ERROR, TextContent, TextResourceContents

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.state import WritePolicy
from tests.server.conftest import NO_WAIT_RETRY, SandboxClock, sandbox_settings
from tests.support.advice import invitations, invites_a_second_start

from .fault_matrix import (
    CASES,
    DOC,
    REQUEST_TIMEOUT_S,
    SECTION_END,
    SECTION_START,
    SETTLE_S,
    START_UNKNOWN,
    Case,
    Expect,
    Target,
    describe,
    render_section,
)

pytestmark = pytest.mark.anyio

# Long enough for any case (the slowest spends 4 x 0.2 s in timeouts), short enough to fail fast.
REAL_BOUND_S = 20
# A wait long enough for a run of WORKFLOW_COMPLETES (about 16.5 s of sandbox time) to end.
WAIT_S = 120
SDK_WORDING = "Error executing tool"


@dataclass
class Tally:
    tried: int = 0
    passed: int = 0
    duplicates: int = 0
    crashes: int = 0

    def line(self) -> str:
        return (
            f"fault matrix: tried {self.tried}, passed {self.passed}, "
            f"duplicates {self.duplicates}, crashes {self.crashes}"
        )


TALLY = Tally()
# Every error text start_run gave in the matrix, for the wording checks at the end.
START_ERROR_TEXTS: list[str] = []


class _Summary:
    """Prints the tally at the end of the session (registered once, by the fixture below)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if TALLY.tried:
            terminalreporter.write_line(TALLY.line())


@pytest.fixture(scope="session", autouse=True)
def _print_tally(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("fault-matrix-summary"):
        manager.register(_Summary(), "fault-matrix-summary")


# --- driving one call ---------------------------------------------------------------------------


@dataclass
class Answer:
    ok: bool
    text: str  # the error text, or "" on success
    data: dict[str, Any]
    crashed: bool = False


def build_server(sandbox: Sandbox, retry: RetryPolicy = NO_WAIT_RETRY) -> OnePinServer:
    return create_server(
        sandbox_settings(sandbox, request_timeout_s=REQUEST_TIMEOUT_S),
        selection=ToolSelection(toolsets=("all",)),
        transport=sandbox.transport(),
        retry=retry,
        clock=SandboxClock(sandbox),
        policy=WritePolicy(confirm="never"),
    )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one server session can serve every case of the matrix."""
    return "asyncio"


@dataclass
class World:
    """One sandbox, one server and one MCP session for the whole matrix: the same server must
    stay up through every fault. Each case puts the sandbox back in its seeded state first."""

    sandbox: Sandbox
    client: Client
    api: OnePinClient
    """A plain OnePin client on the same sandbox, to set up runs and count what calls did."""


@pytest.fixture(scope="module")
async def world(anyio_backend: str) -> AsyncIterator[World]:
    sandbox = Sandbox(manual_clock=True)
    async with (
        Client(build_server(sandbox), mode="auto") as client,
        OnePinClient(
            sandbox_settings(sandbox), transport=sandbox.transport(), retry=NO_WAIT_RETRY
        ) as api,
    ):
        yield World(sandbox, client, api)


# The reads that take no workflow: their arguments.
_WORKSPACE_READS: dict[str, dict[str, Any]] = {
    "list_workflows": {},
    "list_dictionary": {"language": "en-us"},
    "get_usage": {"days": 30, "by": "language"},
}


def _arguments(target: Target, run_id: str | None) -> dict[str, Any]:
    if target.kind == "read" and target.key in _WORKSPACE_READS:
        return dict(_WORKSPACE_READS[target.key])
    arguments: dict[str, Any] = {"workflow_id": target.workflow_id}
    if run_id is not None:
        arguments["run_id"] = run_id
    if target.kind == "wait":
        arguments["timeout_s"] = WAIT_S
    return arguments


async def invoke(client: Client, target: Target, arguments: dict[str, Any]) -> Answer:
    """Make the call as an agent would; an answer the server should never give is a crash."""
    try:
        return await _invoke(client, target, arguments)
    except Exception as error:  # a hang, or anything but a tool result or a resource error
        return Answer(False, f"{type(error).__name__}: {error}", {}, crashed=True)


async def _invoke(client: Client, target: Target, arguments: dict[str, Any]) -> Answer:
    with anyio.fail_after(REAL_BOUND_S):
        if target.kind == "resource":
            uri = f"onepin://workflows/{arguments['workflow_id']}/runs/{arguments['run_id']}"
            try:
                read = await client.read_resource(uri)
            except MCPError as error:
                crashed = error.code != INTERNAL_ERROR or SDK_WORDING in error.message
                return Answer(False, error.message, {}, crashed)
            content = read.contents[0]
            assert isinstance(content, TextResourceContents)
            return Answer(True, "", {"text": content.text})
        tool = "wait_for_run" if target.kind == "wait" else target.key
        result = await client.call_tool(tool, arguments)
    if result.is_error:
        block = result.content[0]
        text = block.text if isinstance(block, TextContent) else ""
        return Answer(False, text, {}, crashed=not text or text.startswith(SDK_WORDING))
    return Answer(True, "", result.structured_content or {})


def _on_route(sandbox: Sandbox, since: int, target: Target) -> list[int]:
    """Statuses of the requests to the faulted route since log index `since`."""
    return [
        r.status
        for r in list(sandbox.requests)[since:]
        if r.method == target.method and fnmatchcase(r.path, target.path)
    ]


async def _runs(api: OnePinClient, workflow_id: str) -> int:
    if not workflow_id:
        return 0
    return (await api.list_runs(workflow_id, limit=1)).total or 0


# --- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fault_matrix(case: Case, world: World) -> None:
    TALLY.tried += 1
    sandbox, client, api = world.sandbox, world.client, world.api
    sandbox.reset()
    target = case.target
    run_id = target.run_id
    if target.kind == "wait":
        run_id = (await api.start_run(target.workflow_id)).id
    arguments = _arguments(target, run_id)
    runs_before = await _runs(api, target.workflow_id)

    fault = sandbox.faults.add(case.rule)
    mark = len(sandbox.requests)
    answer = await invoke(client, target, arguments)
    route = _on_route(sandbox, mark, target)
    left = next((f.remaining for f in sandbox.faults.active() if f.id == fault.id), 0)
    sandbox.faults.clear()
    if target.kind == "start":
        sandbox.advance(SETTLE_S)  # a start OnePin processes late still counts
    runs_created = await _runs(api, target.workflow_id) - runs_before

    # Writes: a start is sent once and creates at most one run; nothing else creates any.
    allowed = 1 if target.kind == "start" else 0
    duplicates = max(0, runs_created - allowed)
    if target.kind == "start":
        duplicates += max(0, len(route) - 1)
    TALLY.duplicates += duplicates
    TALLY.crashes += answer.crashed

    # The server is still up and the next call works (a start on another workflow).
    again = dict(arguments)
    if target.kind == "start":
        again["workflow_id"] = seed.WORKFLOW_FAILS_ID
    clean = await invoke(client, target, again)
    if not clean.ok:
        TALLY.crashes += 1

    outcome: Expect
    if not answer.ok:
        outcome = "error"
        attempts = len(route)
    elif answer.data.get("recovered") is True:
        outcome = "recovered"
        attempts = len(route)
    else:
        outcome = "retried"
        # Attempts until the first that the fault let through (a wait polls on after it).
        used = (case.times or 0) - (left or 0)
        attempts = used + 1
        if target.kind != "wait":
            assert len(route) == attempts, route
    observed = describe(
        outcome,
        attempts=attempts,
        phrase=case.phrase if case.phrase in answer.text else f"<{answer.text[:300]}>",
        runs_created=runs_created if case.write else None,
    )
    if clean.ok:
        assert not answer.crashed, answer.text
        assert duplicates == 0
    else:
        observed = observed.replace("next call ok", f"next call failed: {clean.text[:200]}")

    assert observed == case.observed
    if outcome == "error":
        _assert_actionable(answer.text)
    if target.kind == "start" and outcome == "error":
        # Never an invitation to start again after a start that may have happened.
        assert not invites_a_second_start(answer.text), answer.text
        START_ERROR_TEXTS.append(answer.text)
    if outcome == "retried":
        _assert_normal_answer(target, answer.data)
    if target.kind == "start":
        assert clean.data["recovered"] is False
    else:
        _assert_normal_answer(target, clean.data)
    TALLY.passed += 1


def _assert_actionable(text: str) -> None:
    """An error an agent can act on: what happened, and what to do next."""
    assert not text.startswith(SDK_WORDING)
    assert text.startswith(("OnePin", "The connection to OnePin")), text
    nexts = ("try again", "Try again", "Check", "Call", "call", "wait", "report")
    assert any(word in text for word in nexts), text
    assert "Traceback" not in text


def _assert_normal_answer(target: Target, data: dict[str, Any]) -> None:
    """A retried call answers as if nothing had happened."""
    if target.key == "list_workflows":
        assert len(data["items"]) == data["total"] > 0
    elif target.key == "list_dictionary":
        assert {entry["word"] for entry in data["entries"]} == {"Northwind", "OnePin"}
    elif target.key == "get_usage":
        assert data["credits"] > 0
        assert data["rows"]
    elif target.key == "get_run_status":
        assert (data["run_number"], data["status"]) == (2, "completed")
    elif target.key == "get_run_steps":
        assert data["counts"] == {"completed": 6, "failed": 1}
    elif target.kind == "wait":
        assert data["done"] is True
        assert data["status"] == "completed"
    elif target.kind == "cancel":
        assert data["status"] == "cancelled"
    elif target.kind == "resource":
        assert seed.RUN_COMPLETED_ID in data["text"]


# --- Retry-After is honoured in the (recorded) waits -------------------------------------------


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("retry_after", "expected_waits"),
    [
        ("3", [3.0, 3.0]),  # never less than the server asked for
        (None, [0.25, 0.5]),  # half of each backoff ceiling (0.5 s, then 1 s)
    ],
)
async def test_retry_after_is_honoured_in_the_waits_between_attempts(
    retry_after: str | None, expected_waits: list[float]
) -> None:
    sandbox = Sandbox(manual_clock=True)
    sleep = RecordingSleep()
    policy = RetryPolicy(sleep=sleep, random=lambda: 0.5)
    rule: dict[str, Any] = {"method": "GET", "path": "/api/v1/workflows", "times": 2}
    rule |= {"status": 429} | ({"retry_after": retry_after} if retry_after else {})
    sandbox.faults.add(rule)

    async with Client(build_server(sandbox, retry=policy), mode="auto") as client:
        answer = await invoke(client, CASES[0].target, {})

    assert answer.ok, answer.text
    assert sleep.waits == expected_waits
    # list_workflows then looks up each row's latest run: only its own request was retried.
    listing = [r.status for r in sandbox.requests if r.path == "/api/v1/workflows"]
    assert listing == [429, 429, 200]


# --- the docs -----------------------------------------------------------------------------------


def test_the_docs_fault_matrix_is_generated_from_the_case_table() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert doc.index(SECTION_START) < doc.index(SECTION_END)
    generated = doc[doc.index(SECTION_START) : doc.index(SECTION_END) + len(SECTION_END)]
    assert generated == render_section(), (
        "docs/reliability.md's fault matrix is stale; "
        "run `python -m tests.reliability.fault_matrix`"
    )


def test_the_matrix_covers_every_fault_against_every_kind_of_call() -> None:
    kinds = {c.target.kind for c in CASES}
    assert kinds == {"read", "resource", "wait", "start", "cancel"}
    faults = {c.fault.key for c in CASES}
    assert len(faults) == 15
    assert len({c.id for c in CASES}) == len(CASES)


# --- the advice after a start -------------------------------------------------------------------


def test_no_start_error_in_the_matrix_invites_another_start() -> None:
    # Runs after the matrix (file order): every start_run error text it met, read again as a
    # whole. Only a refusal in so many words (a 429 here) may leave out "The outcome is unknown".
    if not START_ERROR_TEXTS:
        pytest.skip("run with the fault matrix to collect start_run's answers")
    assert [t for t in START_ERROR_TEXTS if invitations(t)] == []
    assert all(START_UNKNOWN in t or "Rate limited" in t for t in START_ERROR_TEXTS)


def test_the_invitation_reader_catches_the_old_wording_and_passes_refusals() -> None:
    # The reader above is only as good as this: the wording that once cost a second run is
    # caught, and the sentences that tell the agent not to start are not.
    old = (
        "No run of workflow w was created since 09:00, so the start most likely did not "
        "happen. To be sure, call list_runs with workflow_id=w: if no new run is listed, "
        "calling start_run again is safe."
    )
    assert invitations(old) == ["if no new run is listed, calling start_run again is safe."]
    assert invites_a_second_start("Then call start_run again if a new run is still wanted.")
    for refusal in (
        "Do not call start_run now.",
        "The start did create run r; do not call start_run again.",
        "Do not call start_run while that run is active.",
        "Do not call start_run again: check each with get_run_status.",
    ):
        assert not invites_a_second_start(refusal), refusal


def test_no_wording_in_the_package_calls_another_start_safe() -> None:
    # A source scan: "safe" in the same sentence as start_run or a new start, anywhere in the
    # package's wording (the tools, the failure wording, the views, the prompts).
    package = DOC.parents[1] / "onepin_mcp"
    sentence = re.compile(r"[^.;:]*\bstart(?:_run| again| another)[^.;:]*\bsafe\b[^.;:]*")
    found = [
        f"{path.relative_to(package)}: {match.group(0).strip()}"
        for path in sorted(package.rglob("*.py"))
        for match in sentence.finditer(" ".join(path.read_text(encoding="utf-8").split()))
    ]
    assert found == []
