"""`onepin-mcp doctor`: the checks as a structured report, and the command as users run it."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from onepin_mcp.api.settings import ConfigError, Settings
from onepin_mcp.doctor import diagnose, mask_key, render
from onepin_mcp.sandbox import ALL_SCOPES, ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection, all_tools, resolve_selection
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import REPO, child_env, command

pytestmark = pytest.mark.anyio

KEY = "op_live_" + "K" * 28 + "wxyz"
OTHER_KEY = "op_live_" + "O" * 28 + "abcd"
SANDBOX_URL = "http://sandbox.onepin.test"
DEFAULT_TOOLS = tuple(spec.name for spec in resolve_selection(ToolSelection())[0])


def _settings(key: str | None = KEY, **values: object) -> Settings:
    return Settings(
        api_key=SecretStr(key) if key else None,
        key_source="env" if key else None,
        base_url=SANDBOX_URL,
        **values,  # type: ignore[arg-type]
    )


async def test_a_working_key_with_every_scope_is_healthy_and_the_enabled_tools_are_listed() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert report.healthy, report.problems
    assert report.reachable is True
    assert report.key_valid is True
    assert report.key_source == "env"
    assert report.key_hint == "op_live_…wxyz"
    assert report.user_id == seed.USER_ID
    assert report.key_workspace_id == seed.WORKSPACE_ID
    assert report.tools == DEFAULT_TOOLS
    assert report.reach_latency_ms is not None
    assert report.whoami_latency_ms is not None
    assert report.key_state == "accepted"
    assert report.reach_url == f"{SANDBOX_URL}/api/v1/nodes"
    assert report.whoami_url == f"{SANDBOX_URL}/api/v1/auth/whoami"
    text = render(report)
    assert "Healthy" in text
    assert f"OnePin answered GET {SANDBOX_URL}/api/v1/nodes in " in text
    assert "start_run" in text
    assert KEY not in text


async def test_scopes_the_enabled_tools_need_but_the_key_lacks_are_named_with_their_tools() -> None:
    read_only_key = ApiKey(KEY, scopes=frozenset({"workflows:read"}))
    sandbox = Sandbox(manual_clock=True, api_keys=[read_only_key])
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert not report.healthy
    assert report.key_valid is True
    assert report.scopes == ("workflows:read",)
    assert set(report.missing_scopes) == {"workflows:run"}
    assert "start_run" in report.missing_scopes["workflows:run"]
    assert "cancel_run" in report.missing_scopes["workflows:run"]
    assert [p.check for p in report.problems] == ["scopes"]
    assert "--read-only" in report.problems[0].fix


async def test_read_only_mode_needs_no_run_scope_and_reports_the_hidden_tools() -> None:
    read_only_key = ApiKey(KEY, scopes=frozenset({"workflows:read"}))
    sandbox = Sandbox(manual_clock=True, api_keys=[read_only_key])
    report = await diagnose(
        lambda: _settings(), ToolSelection(read_only=True), transport=sandbox.transport()
    )
    assert report.healthy, report.problems
    assert "start_run" in report.hidden_by_read_only
    assert "start_run" not in report.tools


async def test_catalog_tools_need_their_own_read_scopes() -> None:
    key = ApiKey(KEY, scopes=frozenset({"workflows:read"}))
    sandbox = Sandbox(manual_clock=True, api_keys=[key])
    report = await diagnose(
        lambda: _settings(), ToolSelection(toolsets=("catalog",)), transport=sandbox.transport()
    )
    assert report.missing_scopes == {
        "templates:read": ("list_templates",),
        "voices:read": ("list_voices",),
    }


async def test_a_refused_key_is_a_key_problem_that_says_how_to_fix_it_without_showing_it() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[OTHER_KEY])
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert report.key_valid is False
    assert report.key_state == "refused"
    assert report.reachable is True
    assert [p.check for p in report.problems] == ["key"]
    assert "401" in report.problems[0].message
    assert f"GET {SANDBOX_URL}/api/v1/auth/whoami" in report.problems[0].message
    assert "ONEPIN_API_KEY" in report.problems[0].fix
    text = render(report)
    assert KEY not in text
    assert "op_live_…wxyz" in text
    assert "[FAIL] key: refused by OnePin (invalid, revoked or mistyped)" in text


async def test_a_key_onepin_knows_but_forbids_is_told_apart_from_a_refused_one() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    sandbox.faults.add({"path": "/api/v1/auth/whoami", "status": 403})
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert report.key_state == "forbidden"
    assert [p.check for p in report.problems] == ["key"]
    assert "403" in report.problems[0].message
    text = render(report)
    assert "[FAIL] key: known to OnePin, but not allowed to ask who it is" in text
    assert "refused by OnePin" not in text


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_from_onepin_or_its_gateway_is_an_outage_not_a_base_url_problem(
    status: int,
) -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    sandbox.faults.add({"path": "/api/v1/nodes", "status": status})
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert report.reachable is False
    assert report.reach_failure == "unavailable"
    assert report.key_state == "unchecked"
    [problem] = report.problems
    assert problem.message.startswith(
        f"OnePin is unavailable: GET {SANDBOX_URL}/api/v1/nodes answered {status} "
    )
    assert "try again in a few minutes" in problem.fix
    assert "base URL" not in problem.fix
    text = render(report)
    assert "[FAIL] reachability: OnePin is unavailable, try again later" in text
    assert "[  - ] key: not checked" in text


async def test_onepin_that_accepts_the_connection_but_never_answers_is_an_outage() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    # Held unanswered (the manual clock never reaches it) until the client's deadline passes.
    sandbox.faults.add({"path": "/api/v1/nodes", "late_s": 60})
    with anyio.fail_after(10):
        report = await diagnose(
            lambda: _settings(request_timeout_s=0.05),
            ToolSelection(),
            transport=sandbox.transport(),
        )
    assert report.reach_failure == "unavailable"
    assert "did not answer in time" in report.problems[0].message


async def test_a_server_that_is_not_the_onepin_api_is_a_base_url_problem() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    sandbox.faults.add({"path": "/api/v1/nodes", "status": 404, "body": "html"})
    report = await diagnose(lambda: _settings(), ToolSelection(), transport=sandbox.transport())
    assert report.reach_failure == "not_onepin"
    [problem] = report.problems
    assert f"GET {SANDBOX_URL}/api/v1/nodes was answered, but not as the OnePin API" in (
        problem.message
    )
    assert "ONEPIN_BASE_URL" in problem.fix


async def test_no_key_is_a_configuration_problem_and_reachability_is_still_checked() -> None:
    sandbox = Sandbox(manual_clock=True)
    report = await diagnose(
        lambda: _settings(None, credentials_path=Path("/home/u/.onepin/credentials")),
        ToolSelection(),
        transport=sandbox.transport(),
    )
    assert report.key_source == "none"
    assert report.key_hint is None
    assert report.reachable is True
    assert report.key_valid is None
    assert report.key_state == "missing"
    assert report.whoami_url is None  # nothing to ask about
    assert "[FAIL] key: missing, none configured\n" in render(report)
    assert [p.check for p in report.problems] == ["configuration"]
    assert "/home/u/.onepin/credentials" in report.problems[0].message
    assert "ONEPIN_API_KEY" in report.problems[0].fix


async def test_a_configuration_error_is_reported_rather_than_raised() -> None:
    def load() -> Settings:
        raise ConfigError("ONEPIN_BASE_URL must start with http:// or https://, got 'ftp://x'")

    report = await diagnose(load, ToolSelection())
    assert not report.healthy
    assert report.problems[0].check == "configuration"
    assert "ONEPIN_BASE_URL" in render(report)
    assert report.tools == DEFAULT_TOOLS


async def test_an_unreachable_onepin_is_a_reachability_problem_and_the_key_is_not_checked() -> None:
    # A loopback port nothing listens on: the connection is refused at once, for real.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        api_key=SecretStr(KEY), key_source="env", base_url=f"http://127.0.0.1:{port}"
    )
    report = await diagnose(lambda: settings, ToolSelection())
    assert report.reachable is False
    assert report.reach_failure == "unreachable"
    assert report.key_valid is None
    assert [p.check for p in report.problems] == ["reachability"]
    assert f"GET http://127.0.0.1:{port}/api/v1/nodes" in report.problems[0].message
    assert "ONEPIN_BASE_URL" in report.problems[0].fix


async def test_a_workspace_other_than_the_keys_is_a_problem() -> None:
    sandbox = Sandbox(manual_clock=True, api_keys=[KEY])
    other = "11111111-2222-4333-8444-555555555555"
    report = await diagnose(
        lambda: _settings(workspace_id=other), ToolSelection(), transport=sandbox.transport()
    )
    assert [p.check for p in report.problems] == ["workspace"]
    assert f"ONEPIN_WORKSPACE_ID is {other}" in report.problems[0].message
    assert seed.WORKSPACE_ID in report.problems[0].message
    assert report.problems[0].fix.startswith("Unset ONEPIN_WORKSPACE_ID")
    assert f"or set it to {seed.WORKSPACE_ID}" in report.problems[0].fix


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("op_live_" + "a" * 28 + "WXYZ", "op_live_…WXYZ"),
        ("op_test_" + "b" * 28 + "1234", "op_test_…1234"),
        ("op_live_short", "op_live_…"),
        ("sk-" + "c" * 40 + "9876", "…9876"),
        ("tiny", "…"),
    ],
)
def test_a_masked_key_shows_at_most_its_last_four_characters(key: str, shown: str) -> None:
    assert mask_key(key) == shown


def test_every_scope_a_tool_record_declares_is_one_onepin_grants() -> None:
    # The doctor checks keys against each tool's record; a misspelt scope would flag every key.
    declared = {scope for spec in all_tools() for scope in spec.scopes}
    assert declared <= ALL_SCOPES, sorted(declared - ALL_SCOPES)
    # A tool that changes OnePin state needs more than a read scope.
    for spec in all_tools():
        if spec.writes:
            assert any(not scope.endswith(":read") for scope in spec.scopes), spec.name


# --- the command ----------------------------------------------------------------------------------


def _doctor(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("doctor", *args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=child_env(home, env),
        cwd=REPO,
    )


def test_doctor_on_the_sandbox_is_healthy_exits_0_and_lists_the_tools(tmp_path: Path) -> None:
    done = _doctor(tmp_path, "--sandbox", "--toolsets", "all")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Healthy" in done.stdout
    for name in ("get_account", "start_run", "delete_workflow", "list_voices"):
        assert name in done.stdout
    assert seed.EXAMPLE_KEY not in done.stdout + done.stderr


def test_doctor_with_a_refused_key_exits_1_says_how_to_fix_it_and_hides_the_key(
    tmp_path: Path,
) -> None:
    onepin = start_sandbox("--manual-clock", "--api-key", KEY)
    try:
        done = _doctor(
            tmp_path, env={"ONEPIN_BASE_URL": onepin.base_url, "ONEPIN_API_KEY": OTHER_KEY}
        )
    finally:
        stop_sandbox(onepin)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused the key" in done.stdout
    assert "[FAIL] key: refused by OnePin" in done.stdout
    assert f"(GET {onepin.base_url}/api/v1/auth/whoami)" in done.stdout
    assert "fix:" in done.stdout
    assert "ONEPIN_API_KEY" in done.stdout
    assert "op_live_…abcd" in done.stdout
    assert OTHER_KEY not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    """The sandbox API as its own process on a loopback port, accepting KEY."""
    served = start_sandbox("--manual-clock", "--api-key", KEY)
    yield served
    stop_sandbox(served)


def _fixes(report: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith("  fix:")]


def test_doctor_calls_a_503_an_outage_shows_the_url_it_tried_and_exits_1(
    onepin: ServedSandbox, tmp_path: Path
) -> None:
    onepin.control(
        "POST", "/_sandbox/faults", json={"path": "/api/v1/nodes", "status": 503, "times": None}
    )
    try:
        done = _doctor(tmp_path, env={"ONEPIN_BASE_URL": onepin.base_url, "ONEPIN_API_KEY": KEY})
    finally:
        onepin.control("DELETE", "/_sandbox/faults")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"[FAIL] reachability: OnePin is unavailable, try again later "
        f"(GET {onepin.base_url}/api/v1/nodes)"
    ) in done.stdout
    assert f"OnePin is unavailable: GET {onepin.base_url}/api/v1/nodes answered 503" in done.stdout
    assert "[  - ] key: not checked" in done.stdout
    [fix] = _fixes(done.stdout)
    assert "base URL" not in fix
    assert KEY not in done.stdout + done.stderr


def test_doctor_with_the_api_path_in_the_base_url_drops_it_says_so_and_is_healthy(
    onepin: ServedSandbox, tmp_path: Path
) -> None:
    done = _doctor(
        tmp_path, env={"ONEPIN_BASE_URL": f"{onepin.base_url}/api/v1/", "ONEPIN_API_KEY": KEY}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Healthy" in done.stdout
    assert f"base URL: {onepin.base_url} (from ONEPIN_BASE_URL)" in done.stdout
    assert "note: ONEPIN_BASE_URL ends in /api/v1, which onepin-mcp adds" in done.stdout
    assert f"OnePin answered GET {onepin.base_url}/api/v1/nodes" in done.stdout
    assert "/api/v1/api/v1" not in done.stdout


def test_doctor_without_any_key_exits_1_and_names_where_it_looked(tmp_path: Path) -> None:
    done = _doctor(tmp_path, env={"ONEPIN_BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 1
    assert "No OnePin API key is configured" in done.stdout
    assert str(tmp_path / ".onepin" / "credentials") in done.stdout


def test_doctor_with_an_unknown_toolset_is_a_usage_error(tmp_path: Path) -> None:
    done = _doctor(tmp_path, "--sandbox", "--toolsets", "workflows,bogus")
    assert done.returncode == 2
    assert "unknown toolset(s) bogus" in done.stderr
    assert done.stdout == ""


PASTED_KEY = "op_live_" + "Dq8" * 10 + "cd"


@pytest.mark.parametrize(
    "env",
    [
        {"ONEPIN_WORKSPACE_ID": PASTED_KEY},
        {"ONEPIN_BASE_URL": PASTED_KEY},
        # Answers nothing (the discard port), so the reachability problem quotes the URL.
        {"ONEPIN_API_KEY": KEY, "ONEPIN_BASE_URL": f"http://127.0.0.1:9/{PASTED_KEY}"},
        # A configured key of another form, pasted into the workspace: masked by its value.
        {
            "ONEPIN_API_KEY": "sk-other-form-0123456789",
            "ONEPIN_WORKSPACE_ID": "sk-other-form-0123456789",
        },
    ],
    ids=["workspace-id", "base-url", "base-url-path", "configured-secret-of-another-form"],
)
def test_doctor_masks_a_key_in_any_setting_on_every_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    done = _doctor(tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[redacted]" in done.stdout, done.stdout  # the setting was quoted, masked
    for secret in (PASTED_KEY, "sk-other-form-0123456789"):
        assert secret.lower() not in (done.stdout + done.stderr).lower(), done.stdout
