"""The secrets canary: a recognisable API key goes everywhere, and comes out nowhere.

The canary is a valid key (`op_live_` and 32 letters or digits) whose body starts with
`CANARY`. Sandboxes accept it (or, for the error paths, refuse it or lack scopes for it), the
server holds it or, in passthrough mode, a caller sends it, and logging is at DEBUG everywhere:
every logger in process (`caplog`), `--log-level debug` in every child process. Then every tool
from `tools/list`, every resource template, every prompt, the completions, the error paths
(401, 403, 5xx, bad bodies, dropped connections, timeouts), the doctor (the functions and the
command) and each transport (stdio, Streamable HTTP with the server's key and in passthrough,
SSE) are driven, and every output is scanned: tool results (text and structured, as JSON),
resource contents, prompt renderings, completions, notifications, caplog records (formatted,
with tracebacks and extra fields), audit lines, the str, repr and traceback of every exception,
and stdout and stderr of every child process.

A leak is the whole key, its 32-character body, or any 8-character slice of the body: a key
cut short in a log line is still a leak. The doctor's masked hint (`op_live_…` and the last 4
characters) is by design and is not a leak under this rule. Not scanned: the line in which the
sandbox process (the fake OnePin, the API side) announces the key it accepts; that is its user
interface, and the rest of its output is scanned.

The module prints `canary: L leaks in N outputs (M bytes)` when it ends.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PromptReference, ResourceTemplateReference
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.errors import OnePinError
from onepin_mcp.api.settings import Settings
from onepin_mcp.doctor import diagnose, render
from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.state import WritePolicy
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.support.tool_tour import tour_every_tool
from tests.transports.served import (
    REPO,
    Served,
    child_env,
    command,
    start_server,
    stdio_params,
    stop_server,
)
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

pytestmark = pytest.mark.anyio

CANARY = "op_live_" + "CANARY" + "x7Qm2Zr9Kd4Wp8Tn5Vb3Jh6Lf1"
# A different key that the refusing sandbox accepts instead of the canary.
OTHER_KEY = "op_live_" + "Other" + "k" * 27
SANDBOX_URL = "http://sandbox.onepin.test"
DEADLINE_S = 60.0

_BODY = CANARY.removeprefix("op_live_")
MARKERS = (CANARY, _BODY, *(_BODY[i : i + 8] for i in range(len(_BODY) - 7)))
_LEAK = re.compile("|".join(re.escape(m) for m in MARKERS))

W = seed.WORKFLOW_COMPLETES_ID
F = seed.WORKFLOW_FAILS_ID
L = seed.WORKFLOW_LONG_ID
RUNNING_WF = seed.WORKFLOW_COURSE_ID  # its run RUN_RUNNING_ID is active in the seed
PROMPT_ARGUMENTS = {"workflow_id": W, "run_id": seed.RUN_COMPLETED_ID, "script_text": "Hello."}

# The attributes every LogRecord has; anything else on a record is an `extra` that a structured
# log formatter would write out, so it is scanned too.
_RECORD_ATTRS = {*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime"}


# --- the scanner ---------------------------------------------------------------------------------


def find_leaks(text: str) -> list[str]:
    """Where the canary (or a slice of it) is in `text`, shown with the canary masked."""
    found = []
    for match in _LEAK.finditer(text):
        context = text[max(match.start() - 60, 0) : match.end() + 60]
        found.append(_LEAK.sub("<CANARY>", context))
    return found


@dataclass
class Totals:
    outputs: int = 0
    bytes: int = 0
    leaks: list[str] = field(default_factory=list)


class Scan:
    """One test's outputs, added to the module's totals as they are scanned."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals
        self.outputs = 0
        self.leaks: list[str] = []

    def add(self, where: str, output: str | bytes) -> None:
        size = len(output) if isinstance(output, bytes) else len(output.encode("utf-8"))
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
        self.outputs += 1
        self.totals.outputs += 1
        self.totals.bytes += size
        leaks = [f"{where}: …{context}…" for context in find_leaks(text)]
        self.leaks += leaks
        self.totals.leaks += leaks

    def exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where} str", str(exc))
        self.add(f"{where} repr", repr(exc))
        self.add(f"{where} traceback", "".join(traceback.format_exception(exc)))

    def logs(self, caplog: pytest.LogCaptureFixture) -> None:
        records = caplog.records
        # Logging really was at DEBUG, or this test proves less than it says.
        assert any(r.levelno == logging.DEBUG for r in records), "no DEBUG record was captured"
        for record in records:
            extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
            text = caplog.handler.format(record)
            self.add(f"log {record.name}", f"{text}\n{extras!r}" if extras else text)

    def file(self, where: str, path: Path) -> list[str]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            self.add(where, line)
        return lines

    def assert_clean(self, *, at_least: int) -> None:
        assert not self.leaks, "the canary leaked:\n" + "\n".join(self.leaks)
        assert self.outputs >= at_least, f"only {self.outputs} outputs were scanned"


@pytest.fixture(scope="module")
def totals(request: pytest.FixtureRequest) -> Iterator[Totals]:
    totals = Totals()
    yield totals
    line = f"canary: {len(totals.leaks)} leaks in {totals.outputs} outputs ({totals.bytes} bytes)"
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(line)
    else:  # pragma: no cover - only without pytest's terminal
        print(line)


@pytest.fixture
def scan(totals: Totals) -> Scan:
    return Scan(totals)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG for every logger: loggers with a level of their own are lowered, and
    loggers that don't propagate to the root get caplog's handler directly."""
    caplog.set_level(logging.DEBUG)
    attached: list[logging.Logger] = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if logger.level > logging.DEBUG:
            caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            attached.append(logger)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def test_the_scanner_finds_the_canary_whole_or_in_part(totals: Totals) -> None:
    # Its own Totals: these planted leaks must not count in the module's figures.
    planted = Scan(Totals())
    planted.add("whole", f"Authorization: Bearer {CANARY}")
    planted.add("body", json.dumps({"key": _BODY}))
    planted.add("slice", f"key={_BODY[10:19]}…")
    planted.add("bytes", f"x {CANARY[:20]} y".encode())
    planted.add("masked hint", "op_live_…" + CANARY[-4:])
    assert [leak.split(":")[0] for leak in planted.leaks] == ["whole", "body", "slice", "bytes"]
    assert all(CANARY not in leak and _BODY[:8] not in leak for leak in planted.leaks)
    assert planted.outputs == 5


# --- driving a client ----------------------------------------------------------------------------


class Notifications:
    """Everything the server sends the client outside results: progress, log messages."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def message(self, message: Any) -> None:
        self.seen.append(repr(message))
        await anyio.lowlevel.checkpoint()

    async def log(self, params: Any) -> None:
        self.seen.append(repr(params))
        await anyio.lowlevel.checkpoint()

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append(f"progress {progress}/{total}: {message}")
        await anyio.lowlevel.checkpoint()

    def scan_into(self, scan: Scan, where: str) -> None:
        for seen in self.seen:
            scan.add(f"{where} notification", seen)


async def drive_every_tool(
    client: Client,
    scan: Scan,
    where: str,
    advance: Callable[[float], None],
    notes: Notifications,
) -> set[str]:
    """Call every tool that tools/list shows, with valid arguments from the seeded sandbox, and
    every resource template and prompt; each call must succeed. Returns the tools called."""
    listed = await client.list_tools()
    scan.add(f"{where} tools/list", listed.model_dump_json())
    schemas = {tool.name: tool.input_schema for tool in listed.tools}
    called: set[str] = set()

    async def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
        result = await client.call_tool(tool, arguments, progress_callback=notes.progress)
        scan.add(f"{where} {tool}", result.model_dump_json())
        assert not result.is_error, f"{where}: {tool}({arguments}) failed: {result.content}"
        called.add(tool)
        return result.structured_content or {}

    failed_clip = await tour_every_tool(call, advance)

    # A tool added later is still called: its ids from the seed, or the test says what to add.
    for name in sorted(set(schemas) - called):
        required = schemas[name].get("required", [])
        known = {"workflow_id": W, "run_id": seed.RUN_COMPLETED_ID}
        assert set(required) <= set(known), f"give {name} valid arguments in drive_every_tool"
        await call(name, **{argument: known[argument] for argument in required})
    assert called == set(schemas)

    templates = await client.list_resource_templates()
    scan.add(f"{where} resources/templates/list", templates.model_dump_json())
    assert templates.resource_templates
    for template in templates.resource_templates:
        uri = template.uri_template.format(
            workflow_id=F, run_id=seed.RUN_FAILED_ID, audio_id=failed_clip
        )
        scan.add(f"{where} {uri}", (await client.read_resource(uri)).model_dump_json())
    scan.add(f"{where} resources/list", (await client.list_resources()).model_dump_json())

    prompts = await client.list_prompts()
    scan.add(f"{where} prompts/list", prompts.model_dump_json())
    assert prompts.prompts
    for prompt in prompts.prompts:
        arguments = {a.name: PROMPT_ARGUMENTS[a.name] for a in prompt.arguments or []}
        rendered = await client.get_prompt(prompt.name, arguments)
        scan.add(f"{where} prompt {prompt.name}", rendered.model_dump_json())

    completions = [
        (PromptReference(type="ref/prompt", name="run_workflow"), {"name": "workflow_id"}),
        (
            ResourceTemplateReference(
                type="ref/resource", uri=templates.resource_templates[0].uri_template
            ),
            {"name": "workflow_id"},
        ),
    ]
    for reference, argument in completions:
        completed = await client.complete(reference, {**argument, "value": "Pro"})
        scan.add(f"{where} completion", completed.model_dump_json())
    return called


# --- in process: every tool, every error path ---------------------------------------------------


async def _no_sleep(seconds: float) -> None:
    """Retry back-off is not waited for in process."""


NO_WAIT_RETRY = RetryPolicy(sleep=_no_sleep)


class SandboxClock:
    """Waits sleep on the sandbox's manual clock: minutes of a run take no real time."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def now(self) -> float:
        return self.sandbox.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        self.sandbox.advance(seconds)
        await anyio.lowlevel.checkpoint()


def canary_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": SecretStr(CANARY),
        "key_source": "env",
        "base_url": SANDBOX_URL,
    }
    values.update(overrides)
    return Settings(**values)


def canary_server(sandbox: Sandbox, audit_log: Path, **settings: Any) -> OnePinServer:
    return create_server(
        canary_settings(**settings),
        selection=ToolSelection(toolsets=("all",)),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=SandboxClock(sandbox),
        policy=WritePolicy(audit_log=str(audit_log)),
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_tool_resource_and_prompt_keeps_the_canary_out_of_every_output(
    tmp_path: Path, mode: str, scan: Scan, debug_logs: pytest.LogCaptureFixture
) -> None:
    # The sandbox accepts the canary and nothing else: each call that succeeds sent it.
    sandbox = Sandbox(manual_clock=True, api_keys=[CANARY])
    audit = tmp_path / "audit.jsonl"
    notes = Notifications()
    with anyio.fail_after(DEADLINE_S):
        async with Client(
            canary_server(sandbox, audit),  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            message_handler=notes.message,
            logging_callback=notes.log,
        ) as client:
            called = await drive_every_tool(
                client, scan, f"in-process/{mode}", sandbox.advance, notes
            )
    assert len(called) >= 26
    assert any(seen.startswith("progress") for seen in notes.seen), "wait_for_run sent no progress"
    notes.scan_into(scan, mode)
    assert len(scan.file("audit line", audit)) >= 9  # one per write call
    scan.logs(debug_logs)
    scan.assert_clean(at_least=100)


async def _failing_calls(client: Client, scan: Scan, where: str, expect: str) -> None:
    """Reads, writes, a resource and a completion against a OnePin that fails them (a viewer's
    key fails only the writes and the catalog); the agent must read `expect` in the failures."""
    failures: list[str] = []
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_account", {}),
        ("list_workflows", {}),
        ("get_run_status", {"workflow_id": RUNNING_WF, "run_id": seed.RUN_RUNNING_ID}),
        ("start_run", {"workflow_id": W}),
        ("cancel_run", {"workflow_id": RUNNING_WF, "run_id": seed.RUN_RUNNING_ID}),
        ("create_workflow", {"name": "Canary check"}),
        ("delete_workflow", {"workflow_id": seed.WORKFLOW_DRAFT_ID}),
        ("list_voices", {}),
    ]
    for name, arguments in calls:
        result = await client.call_tool(name, arguments)
        scan.add(f"{where} {name}", result.model_dump_json())
        if result.is_error:
            failures.append(" ".join(getattr(block, "text", "") for block in result.content))
    assert len(failures) >= 5, f"{where}: only {len(failures)} calls failed"
    assert all(expect in text for text in failures), f"{where}: no {expect!r} in {failures}"
    try:
        read = await client.read_resource(f"onepin://workflows/{W}")
        scan.add(f"{where} read_resource", read.model_dump_json())
    except MCPError as exc:
        scan.exception(f"{where} read_resource", exc)
    try:
        completed = await client.complete(
            PromptReference(type="ref/prompt", name="run_workflow"),
            {"name": "workflow_id", "value": "Pro"},
        )
        scan.add(f"{where} completion", completed.model_dump_json())
    except MCPError as exc:
        scan.exception(f"{where} completion", exc)


async def _client_errors(settings: Settings, sandbox: Sandbox, scan: Scan, where: str) -> None:
    """The OnePin client's own exceptions, as a library user (or a traceback) would see them."""
    async with OnePinClient(settings, transport=sandbox.transport(), retry=NO_WAIT_RETRY) as api:
        attempts: list[Callable[[], Any]] = [
            api.whoami,
            api.get_credits,
            api.list_workflows,
            lambda: api.get_run(RUNNING_WF, seed.RUN_RUNNING_ID),
            lambda: api.start_run(L),
        ]
        failed = 0
        for attempt in attempts:
            try:
                scan.add(f"{where} client result", repr(await attempt()))
            except OnePinError as exc:
                failed += 1
                scan.exception(f"{where} client", exc)
        scan.add(f"{where} client repr", repr(api))
    # A viewer's key still reads; everything else fails every call.
    assert failed >= 2, f"{where}: only {failed} client calls failed"


# Every failure a OnePin can answer with, each for every call: (id, sandbox keys, fault rules,
# settings overrides, text the agent must read). Faults last until cleared (`times: null`).
ERROR_PATHS: list[tuple[str, list[ApiKey | str], list[dict[str, Any]], dict[str, Any], str]] = [
    ("401-refused-key", [OTHER_KEY], [], {}, "401"),
    (
        "403-viewer",
        [ApiKey(CANARY, scopes=frozenset({"workflows:read"}), role="viewer")],
        [{"path": "/api/v1/auth/whoami", "status": 403}],
        {},
        "403",
    ),
    *(
        (f"{status}", [CANARY], [{"path": "/api/v1/*", "status": status}], {}, str(status))
        for status in (500, 502, 503, 504)
    ),
    ("429", [CANARY], [{"path": "/api/v1/*", "status": 429, "retry_after": "120"}], {}, "429"),
    ("html", [CANARY], [{"path": "/api/v1/*", "body": "html"}], {}, "502"),
    ("malformed-json", [CANARY], [{"path": "/api/v1/*", "body": "malformed_json"}], {}, ""),
    ("empty-body", [CANARY], [{"path": "/api/v1/*", "body": "empty"}], {}, ""),
    ("dropped-before", [CANARY], [{"path": "/api/v1/*", "drop": "before"}], {}, ""),
    ("dropped-after", [CANARY], [{"path": "/api/v1/*", "drop": "after"}], {}, ""),
    (
        "timeout",
        [CANARY],
        [{"path": "/api/v1/*", "latency_ms": 10_000}],
        {"request_timeout_s": 0.02},
        "in time",
    ),
]


@pytest.mark.parametrize(
    ("keys", "faults", "overrides", "expect"),
    [case[1:] for case in ERROR_PATHS],
    ids=[case[0] for case in ERROR_PATHS],
)
async def test_every_error_path_keeps_the_canary_out_of_errors_audit_and_logs(
    tmp_path: Path,
    keys: list[ApiKey | str],
    faults: list[dict[str, Any]],
    overrides: dict[str, Any],
    expect: str,
    scan: Scan,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=keys)
    for rule in faults:
        sandbox.faults.add({**rule, "times": None})
    audit = tmp_path / "audit.jsonl"
    where = f"error path {expect or faults[0]}"
    notes = Notifications()
    with anyio.fail_after(DEADLINE_S):
        async with Client(
            canary_server(sandbox, audit, **overrides),  # type: ignore[arg-type]
            message_handler=notes.message,
            logging_callback=notes.log,
        ) as client:
            await _failing_calls(client, scan, where, expect)
        await _client_errors(canary_settings(**overrides), sandbox, scan, where)
    notes.scan_into(scan, where)
    assert scan.file("audit line", audit), "the failed writes left no audit record"
    scan.logs(debug_logs)
    scan.assert_clean(at_least=30)


# --- the doctor ---------------------------------------------------------------------------------


async def test_the_doctor_reports_never_show_the_canary(
    scan: Scan, debug_logs: pytest.LogCaptureFixture
) -> None:
    viewer = ApiKey(CANARY, scopes=frozenset({"workflows:read"}), role="viewer")
    outage = Sandbox(manual_clock=True, api_keys=[CANARY])
    outage.faults.add({"path": "/api/v1/auth/whoami", "status": 503, "times": None})
    slow = Sandbox(manual_clock=True, api_keys=[CANARY])
    slow.faults.add({"path": "/api/v1/auth/whoami", "latency_ms": 10_000, "times": None})
    cases: list[tuple[str, Sandbox | None, dict[str, Any], bool | None]] = [
        ("healthy", Sandbox(manual_clock=True, api_keys=[CANARY]), {}, True),
        ("refused", Sandbox(manual_clock=True, api_keys=[OTHER_KEY]), {}, False),
        ("scopes", Sandbox(manual_clock=True, api_keys=[viewer]), {}, True),
        ("5xx", outage, {}, None),
        ("timeout", slow, {"request_timeout_s": 0.02}, None),
        # Nothing listens on port 9 of loopback: refused at once, for real.
        ("unreachable", None, {"base_url": "http://127.0.0.1:9"}, None),
    ]
    for name, sandbox, overrides, key_valid in cases:
        settings = canary_settings(**overrides)
        with anyio.fail_after(DEADLINE_S):
            report = await diagnose(
                lambda settings=settings: settings,  # type: ignore[misc]
                ToolSelection(toolsets=("all",)),
                transport=sandbox.transport() if sandbox else None,
            )
        assert report.key_valid is key_valid, (name, report.problems)
        assert report.healthy is (name == "healthy"), (name, report.problems)
        scan.add(f"doctor {name} render", render(report))
        scan.add(f"doctor {name} repr", repr(report))
    settings = canary_settings()
    scan.add("settings repr", repr(settings))
    scan.add("settings str", str(settings))
    scan.add("settings json", settings.model_dump_json())
    scan.logs(debug_logs)
    scan.assert_clean(at_least=15)


# --- real processes: the doctor command and each transport --------------------------------------


@pytest.fixture(scope="module")
def onepin(totals: Totals) -> Iterator[ServedSandbox]:
    """OnePin as its own process on loopback, accepting the canary and no other key."""
    served = start_sandbox("--manual-clock", "--api-key", CANARY, "--log-level", "debug")
    yield served
    stdout = served.stdout_text()
    stop_sandbox(served)
    # The fake OnePin announces the key it accepts (`export ONEPIN_API_KEY=…`) by design: that
    # line is its user interface, and it is the API side, which holds the key anyway. Everything
    # else it wrote (its access log) is scanned.
    scan = Scan(totals)
    scan.add("sandbox process stdout", stdout)
    stderr = [line for line in served.stderr_lines if "ONEPIN_API_KEY=" not in line]
    scan.add("sandbox process stderr", "".join(stderr))
    scan.assert_clean(at_least=2)


def _server_env(onepin: ServedSandbox, home: Path, **extra: str) -> dict[str, str]:
    return child_env(
        home,
        {
            "ONEPIN_BASE_URL": onepin.base_url,
            "ONEPIN_MCP_REQUEST_TIMEOUT_S": "1",
            "ONEPIN_MCP_AUDIT_LOG": str(home / "audit.jsonl"),
            **extra,
        },
    )


def test_the_doctor_command_never_prints_the_canary(
    onepin: ServedSandbox, tmp_path: Path, scan: Scan
) -> None:
    onepin.reset()
    env = _server_env(onepin, tmp_path, ONEPIN_API_KEY=CANARY)

    def doctor(expected_code: int, expected_text: str) -> None:
        done = subprocess.run(
            command("doctor", "--log-level", "debug", "--toolsets", "all"),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=DEADLINE_S,
            check=False,
        )
        scan.add("doctor stdout", done.stdout)
        scan.add("doctor stderr", done.stderr)
        assert done.returncode == expected_code, done.stdout + done.stderr
        assert expected_text in done.stdout, done.stdout
        onepin.control("DELETE", "/_sandbox/faults")

    doctor(0, "Healthy")
    onepin.control(
        "POST",
        "/_sandbox/faults",
        json={"path": "/api/v1/auth/whoami", "status": 401, "times": None},
    )
    doctor(1, "401")
    scan.assert_clean(at_least=4)


# Settings a key gets pasted into by mistake; each one's error quotes the value it refuses.
MISPLACED = ("ONEPIN_WORKSPACE_ID", "ONEPIN_BASE_URL", "ONEPIN_MCP_TOOLSETS", "ONEPIN_MCP_CONFIRM")


def test_the_canary_pasted_into_another_setting_is_never_printed(
    tmp_path: Path, scan: Scan
) -> None:
    for name in MISPLACED:
        for args, codes in ((("--log-level", "debug"), {2}), (("doctor",), {1, 2})):
            done = subprocess.run(
                command(*args),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=child_env(tmp_path, {name: CANARY}),
                cwd=REPO,
                timeout=DEADLINE_S,
                check=False,
            )
            scan.add(f"{args[0]} with the canary in {name}: stdout", done.stdout)
            scan.add(f"{args[0]} with the canary in {name}: stderr", done.stderr)
            assert done.returncode in codes, done.stdout + done.stderr
    scan.assert_clean(at_least=4 * len(MISPLACED))


async def test_the_canary_in_a_resource_uri_or_an_argument_stays_out_of_errors_and_logs(
    tmp_path: Path, scan: Scan
) -> None:
    log = tmp_path / "stderr.txt"
    params = stdio_params(tmp_path, "--sandbox", "--log-level", "debug", stderr_to=log)
    with anyio.fail_after(DEADLINE_S):
        async with Client(params, read_timeout_seconds=30) as client:
            for uri in (f"onepin://workflows/{CANARY}", f"onepin://other/{CANARY}"):
                with pytest.raises(MCPError) as refused:
                    await client.read_resource(uri)
                scan.add(f"read {uri[:18]}… error", refused.value.error.model_dump_json())
            found = await client.call_tool("list_workflows", {"search": CANARY})
            scan.add("list_workflows searching for the canary", found.model_dump_json())
    stderr = log.read_text(encoding="utf-8")
    assert "HTTP Request: GET" in stderr, "httpx did not log its requests: the test proves less"
    scan.add("stdio stderr at debug", stderr)
    scan.assert_clean(at_least=4)


# Faults a real OnePin process answers with, one per call, on routes the client does not retry
# (so no real back-off is waited for): (tool, arguments, fault rule, text the agent reads).
PROCESS_FAULTS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("get_account", {}, {"path": "/api/v1/auth/whoami", "status": 401}, "401"),
    (
        "create_workflow",
        {"name": "Canary check"},
        {"method": "POST", "path": "/api/v1/workflows", "status": 403},
        "403",
    ),
    (
        "start_run",
        {"workflow_id": W},
        {"method": "POST", "path": "/api/v1/workflows/*/runs", "status": 500},
        "500",
    ),
    (
        "resume_run",
        {"workflow_id": seed.WORKFLOW_IVR_ID, "run_id": seed.RUN_PAUSED_ID},
        {"method": "POST", "path": "/api/v1/workflows/*/runs/*/resume", "status": 503},
        "503",
    ),
    (
        # ONEPIN_MCP_REQUEST_TIMEOUT_S is 1: the start times out, and is looked for.
        "start_run",
        {"workflow_id": W},
        {"method": "POST", "path": "/api/v1/workflows/*/runs", "latency_ms": 2500},
        "in time",
    ),
]


async def drive_faults(client: Client, onepin: ServedSandbox, scan: Scan, where: str) -> None:
    for tool, arguments, rule, expect in PROCESS_FAULTS:
        onepin.control("POST", "/_sandbox/faults", json={**rule, "times": None})
        try:
            result = await client.call_tool(tool, arguments)
        finally:
            onepin.control("DELETE", "/_sandbox/faults")
        scan.add(f"{where} {tool} under {rule}", result.model_dump_json())
        text = " ".join(getattr(block, "text", "") for block in result.content)
        assert result.is_error, f"{where}: {tool} did not fail under {rule}"
        assert expect in text, text


async def exercise(
    client: Client, onepin: ServedSandbox, scan: Scan, where: str, notes: Notifications
) -> None:
    called = await drive_every_tool(client, scan, where, onepin.advance, notes)
    assert len(called) >= 26
    await drive_faults(client, onepin, scan, where)


def scan_server_files(scan: Scan, where: str, home: Path) -> None:
    assert len(scan.file(f"{where} audit line", home / "audit.jsonl")) >= 9


async def test_stdio_keeps_the_canary_off_stdout_stderr_and_the_audit_log(
    onepin: ServedSandbox, tmp_path: Path, scan: Scan
) -> None:
    onepin.reset()
    # A shell copies the server's stdout (the wire) to a file on its way to the client, and
    # sends its stderr to another.
    wire, log = tmp_path / "stdout.bin", tmp_path / "stderr.txt"
    params = StdioServerParameters(
        command="/bin/sh",
        args=[
            "-c",
            'exec "$0" -m onepin_mcp --log-level debug --toolsets all 2>"$2" | tee "$1"',
            sys.executable,
            str(wire),
            str(log),
        ],
        env=_server_env(onepin, tmp_path, ONEPIN_API_KEY=CANARY),
        cwd=REPO,
    )
    notes = Notifications()
    with anyio.fail_after(DEADLINE_S):
        async with Client(
            params,
            read_timeout_seconds=30,
            message_handler=notes.message,
            logging_callback=notes.log,
        ) as client:
            await exercise(client, onepin, scan, "stdio", notes)
    notes.scan_into(scan, "stdio")
    scan.add("stdio stdout (the wire)", wire.read_bytes())
    stderr = log.read_text(encoding="utf-8")
    assert " DEBUG " in stderr, "debug logging was not on, so the test proves less"
    scan.add("stdio stderr", stderr)
    scan_server_files(scan, "stdio", tmp_path)
    scan.assert_clean(at_least=60)


def _stop(served: Served, scan: Scan, where: str) -> None:
    code = stop_server(served)
    scan.add(f"{where} stdout", served.stdout_text())
    stderr = served.stderr_text()
    scan.add(f"{where} stderr", stderr)
    assert code == 0, stderr
    assert " DEBUG " in stderr, "debug logging was not on, so the test proves less"


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_transports_with_the_servers_key_keep_the_canary_out_of_every_output(
    onepin: ServedSandbox, tmp_path: Path, scan: Scan, transport: str
) -> None:
    onepin.reset()
    served = start_server(
        "--transport",
        transport,
        "--log-level",
        "debug",
        "--toolsets",
        "all",
        home=tmp_path,
        env=_server_env(onepin, tmp_path, ONEPIN_API_KEY=CANARY),
    )
    notes = Notifications()
    try:
        streams = (
            streamable_http_client(served.url)
            if transport == "streamable-http"
            else sse_client(served.url)
        )
        with anyio.fail_after(DEADLINE_S):
            async with Client(
                streams,
                mode="auto" if transport == "streamable-http" else "legacy",
                message_handler=notes.message,
                logging_callback=notes.log,
            ) as client:
                await exercise(client, onepin, scan, transport, notes)
    finally:
        _stop(served, scan, transport)
    notes.scan_into(scan, transport)
    scan_server_files(scan, transport, tmp_path)
    scan.assert_clean(at_least=60)


async def test_passthrough_keeps_the_callers_canary_out_of_every_output(
    onepin: ServedSandbox, tmp_path: Path, scan: Scan
) -> None:
    onepin.reset()
    # No key of its own: every call that works was made with the caller's key, the canary.
    served = start_server(
        "--transport",
        "streamable-http",
        "--auth",
        "passthrough",
        "--log-level",
        "debug",
        "--toolsets",
        "all",
        home=tmp_path,
        env=_server_env(onepin, tmp_path),
    )
    notes = Notifications()
    try:
        with anyio.fail_after(DEADLINE_S):
            async with (
                # A call may take over 10 s (start_run looks again for a lost start's run):
                # httpx's default 5 s read timeout would cut it off.
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {CANARY}"}, timeout=30
                ) as http,
                Client(
                    streamable_http_client(served.url, http_client=http),
                    message_handler=notes.message,
                    logging_callback=notes.log,
                ) as client,
            ):
                await exercise(client, onepin, scan, "passthrough", notes)
        # Refused at the door: the answer must not quote what the caller sent.
        async with httpx.AsyncClient(timeout=30) as http_client:
            for authorization in (
                f"Bearer {CANARY}x",
                f"Bearer {CANARY[:-1]}",
                f"Basic {CANARY}",
            ):
                refused = await http_client.post(
                    served.url,
                    json=INITIALIZE,
                    headers={**MCP_POST_HEADERS, "Authorization": authorization},
                )
                assert refused.status_code == 401
                scan.add("passthrough refusal", f"{refused.headers}\n{refused.text}")
    finally:
        _stop(served, scan, "passthrough")
    notes.scan_into(scan, "passthrough")
    scan_server_files(scan, "passthrough", tmp_path)
    scan.assert_clean(at_least=60)
