"""The `onepin-mcp` command line, run as users run it: a real process, real pipes, a real socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onepin_mcp import __version__
from onepin_mcp.options import (
    Command,
    DoctorOptions,
    OptionsError,
    SandboxOptions,
    ServeOptions,
    is_loopback,
    parse_command,
)
from onepin_mcp.selection import ToolSelection
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with stdin at EOF, in an environment without the developer's OnePin setup."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONEPIN_")}
    return subprocess.run(
        [sys.executable, "-m", "onepin_mcp", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**base, **(env or {})},
    )


def test_version_is_the_package_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"onepin-mcp {__version__}"


def test_no_command_serves_stdio_and_ends_cleanly_when_the_client_closes_stdin() -> None:
    done = _run("--sandbox")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "SANDBOX" in done.stderr


def test_the_server_starts_without_a_key_and_says_how_to_configure_one(tmp_path: Path) -> None:
    done = _run(env={"HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "No OnePin API key configured" in done.stderr
    assert "ONEPIN_API_KEY" in done.stderr


def test_an_unusable_configuration_stops_the_server_with_exit_2_and_the_reason(
    tmp_path: Path,
) -> None:
    done = _run(env={"HOME": str(tmp_path), "ONEPIN_BASE_URL": "ftp://files.example"})
    assert done.returncode == 2
    assert "ONEPIN_BASE_URL must start with http:// or https://" in done.stderr
    assert done.stdout == ""


def test_a_port_already_in_use_is_reported_with_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        done = _run("--sandbox", "--transport", "streamable-http", "--port", port)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_binding_beyond_loopback_without_auth_is_refused_with_exit_2(host: str) -> None:
    done = _run("--transport", "streamable-http", "--host", host, "--sandbox")
    assert done.returncode == 2
    assert f"refusing to serve on {host} without authentication" in done.stderr
    assert "--auth token" in done.stderr
    assert done.stdout == ""


def test_token_auth_without_a_token_is_refused_with_exit_2() -> None:
    done = _run("--transport", "sse", "--auth", "token", "--sandbox")
    assert done.returncode == 2
    assert "ONEPIN_MCP_HTTP_TOKEN" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--toolsets", "workflows,nope"), {}, "unknown toolset(s) nope"),
        ((), {"ONEPIN_MCP_EXCLUDE_TOOLS": "start_runn"}, "unknown tool(s) start_runn"),
    ],
)
def test_unknown_tool_or_toolset_names_are_a_usage_error_listing_valid_ones(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    done = _run("--sandbox", *args, env=env)
    assert done.returncode == 2
    assert message in done.stderr
    assert "choose from" in done.stderr


def test_a_malformed_sandbox_key_is_refused_without_echoing_it() -> None:
    bad_key = "op_live_short_but_secret_value"
    done = _run("sandbox", "--api-key", bad_key)
    assert done.returncode == 2
    assert "op_live_ followed by 32 letters or digits" in done.stderr
    assert bad_key not in done.stderr + done.stdout


@pytest.mark.parametrize("speed", ["0", "-1", "fast"])
def test_a_speed_that_is_not_a_positive_number_is_a_usage_error(speed: str) -> None:
    done = _run("sandbox", "--speed", speed)
    assert done.returncode == 2
    assert "--speed" in done.stderr


@pytest.fixture
def served() -> Iterator[ServedSandbox]:
    sandbox = start_sandbox("--manual-clock")
    try:
        yield sandbox
    finally:
        # One test ends the process itself, with SIGTERM.
        stop_sandbox(sandbox, expect_running=False)


def test_the_sandbox_command_announces_pasteable_settings_and_serves_on_loopback(
    served: ServedSandbox,
) -> None:
    announcement = "".join(served.stderr_lines)
    assert f"export ONEPIN_BASE_URL={served.base_url}\n" in announcement
    assert f"export ONEPIN_API_KEY={served.key}\n" in announcement
    assert served.base_url.startswith("http://127.0.0.1:")
    response = httpx.get(
        f"{served.base_url}/api/v1/auth/whoami",
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["data"]["auth_kind"] == "api_key"


def test_the_sandbox_stops_cleanly_on_sigterm_and_never_writes_to_stdout(
    served: ServedSandbox,
) -> None:
    httpx.get(f"{served.base_url}/api/v1/nodes", timeout=30).raise_for_status()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    assert served.stdout_text() == ""


def test_a_sandbox_started_with_keys_accepts_only_those_keys() -> None:
    allowed = "op_live_" + "A" * 32
    other = "op_live_" + "B" * 32
    sandbox = start_sandbox("--manual-clock", "--api-key", allowed)
    try:
        assert sandbox.key == allowed
        url = f"{sandbox.base_url}/api/v1/auth/whoami"
        ok = httpx.get(url, headers={"Authorization": f"Bearer {allowed}"}, timeout=30)
        refused = httpx.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=30)
        assert ok.status_code == 200
        assert refused.status_code == 401
        assert refused.json()["error"]["code"]
    finally:
        stop_sandbox(sandbox)


# --- options: argv and environment in, one frozen value out (pure, no process) -------------------

TOKEN = "a-token-long-enough-to-guard"


def _parse(*argv: str, **env: str) -> Command:
    return parse_command(argv, env)


def _serve(*argv: str, **env: str) -> ServeOptions:
    options = _parse(*argv, **env)
    assert isinstance(options, ServeOptions)
    return options


def _refused(*argv: str, **env: str) -> str:
    with pytest.raises(OptionsError) as refused:
        _parse(*argv, **env)
    return str(refused.value)


def test_no_arguments_serve_the_default_toolsets_on_stdio() -> None:
    assert _parse() == ServeOptions()
    assert ServeOptions().transport == "stdio"
    assert ServeOptions().selection == ToolSelection()


def test_http_options_have_loopback_defaults_and_the_sdk_port() -> None:
    options = _serve("--transport", "streamable-http")
    assert (options.host, options.port, options.auth, options.stateless) == (
        "127.0.0.1",
        8000,
        "none",
        False,
    )


def test_environment_twins_configure_the_selection() -> None:
    options = _serve(
        ONEPIN_MCP_TOOLSETS="workflows, runs",
        ONEPIN_MCP_TOOLS="get_account",
        ONEPIN_MCP_EXCLUDE_TOOLS="wait_for_run,get_run_data",
        ONEPIN_MCP_READ_ONLY="yes",
    )
    assert options.selection == ToolSelection(
        toolsets=("workflows", "runs"),
        tools=("get_account",),
        exclude_tools=("wait_for_run", "get_run_data"),
        read_only=True,
    )


def test_flags_win_over_their_environment_twins() -> None:
    options = _serve(
        "--toolsets",
        "catalog",
        "--no-read-only",
        "--exclude-tools",
        "list_voices",
        ONEPIN_MCP_TOOLSETS="workflows",
        ONEPIN_MCP_READ_ONLY="1",
        ONEPIN_MCP_EXCLUDE_TOOLS="get_workflow",
    )
    assert options.selection == ToolSelection(
        toolsets=("catalog",), exclude_tools=("list_voices",), read_only=False
    )


def test_repeated_and_comma_separated_names_combine_in_order_once_each() -> None:
    options = _serve("--toolsets", "workflows,runs", "--toolsets", " runs , catalog,")
    assert options.selection.toolsets == ("workflows", "runs", "catalog")


def test_empty_environment_variables_count_as_unset() -> None:
    assert _parse(ONEPIN_MCP_TOOLSETS="", ONEPIN_MCP_READ_ONLY=" ") == ServeOptions()


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--toolsets", "bogus"), {}, "unknown toolset(s) bogus"),
        ((), {"ONEPIN_MCP_TOOLS": "nope"}, "unknown tool(s) nope"),
        ((), {"ONEPIN_MCP_READ_ONLY": "maybe"}, "ONEPIN_MCP_READ_ONLY must be true or false"),
        ((), {"ONEPIN_MCP_TRANSPORT": "websocket"}, "ONEPIN_MCP_TRANSPORT must be one of"),
        ((), {"ONEPIN_MCP_LOG_LEVEL": "loud"}, "ONEPIN_MCP_LOG_LEVEL must be one of"),
        (("--transport", "sse"), {"ONEPIN_MCP_PORT": "http"}, "ONEPIN_MCP_PORT: not a port"),
        (("--transport", "sse", "--port", "70000"), {}, "port must be 0..65535"),
        (("--transport", "carrier-pigeon"), {}, "invalid choice: 'carrier-pigeon'"),
        (("--sandbox-speed", "0"), {}, "must be greater than 0"),
        (("--sandbox-speed", "nan"), {}, "must be greater than 0"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_the_setting(
    argv: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    assert message in _refused(*argv, **env)


@pytest.mark.parametrize(
    "argv",
    [("--port", "9000"), ("--host", "0.0.0.0"), ("--auth", "token"), ("--stateless",)],
)
def test_http_flags_without_an_http_transport_are_a_mistake_worth_saying(
    argv: tuple[str, ...],
) -> None:
    assert "only apply to HTTP" in _refused(*argv)


def test_http_environment_twins_are_ignored_on_stdio() -> None:
    # A shell profile may set them for another use of the command.
    assert _parse(ONEPIN_MCP_HOST="0.0.0.0", ONEPIN_MCP_PORT="1") == ServeOptions()


def test_stateless_applies_to_streamable_http_only() -> None:
    assert _serve("--transport", "streamable-http", "--stateless").stateless
    assert "streamable-http only" in _refused("--transport", "sse", "--stateless")
    assert not _serve("--transport", "sse", ONEPIN_MCP_STATELESS="1").stateless
    assert _serve("--transport", "streamable-http", ONEPIN_MCP_STATELESS="on").stateless


def test_the_transport_and_address_come_from_the_environment_too() -> None:
    options = _serve(ONEPIN_MCP_TRANSPORT="SSE", ONEPIN_MCP_HOST="localhost", ONEPIN_MCP_PORT="0")
    assert (options.transport, options.host, options.port) == ("sse", "localhost", 0)


def test_a_configured_http_token_switches_token_auth_on_unless_told_otherwise() -> None:
    options = _serve("--transport", "sse", ONEPIN_MCP_HTTP_TOKEN=TOKEN)
    assert (options.auth, options.http_token) == ("token", TOKEN)
    explicit = _serve("--transport", "sse", "--auth", "none", ONEPIN_MCP_HTTP_TOKEN=TOKEN)
    assert (explicit.auth, explicit.http_token) == ("none", None)


def test_token_auth_needs_a_token_of_reasonable_length() -> None:
    assert "needs the token in ONEPIN_MCP_HTTP_TOKEN" in _refused(
        "--transport", "sse", "--auth", "token"
    )
    assert "too short" in _refused("--transport", "sse", ONEPIN_MCP_HTTP_TOKEN="short")


def test_the_token_never_appears_in_the_options_repr() -> None:
    options = _serve("--transport", "sse", ONEPIN_MCP_HTTP_TOKEN=TOKEN)
    assert TOKEN not in repr(options)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_need_no_auth(host: str) -> None:
    options = _serve("--transport", "streamable-http", "--host", host)
    assert options.loopback
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.4", "example.com"])
def test_beyond_loopback_auth_is_required_and_either_mode_satisfies_it(host: str) -> None:
    assert "without authentication" in _refused("--transport", "sse", "--host", host)
    with_token = _serve("--transport", "sse", "--host", host, ONEPIN_MCP_HTTP_TOKEN=TOKEN)
    assert not with_token.loopback
    assert with_token.auth == "token"
    passthrough = _serve("--transport", "sse", "--host", host, "--auth", "passthrough")
    assert passthrough.auth == "passthrough"


def test_allowed_hosts_come_from_flags_or_a_comma_separated_variable() -> None:
    flags = _serve(
        "--transport",
        "sse",
        "--allowed-host",
        "MCP.example.com",
        "--allowed-host",
        "api.example.com:8443",
    )
    assert flags.allowed_hosts == ("mcp.example.com", "api.example.com:8443")
    env = _serve("--transport", "sse", ONEPIN_MCP_ALLOWED_HOSTS="a.example, [fd00::1]:80")
    assert env.allowed_hosts == ("a.example", "[fd00::1]:80")
    assert _serve("--transport", "sse", "--allowed-host", "*").allowed_hosts == ("*",)


@pytest.mark.parametrize(
    "value", ["https://mcp.example.com", "mcp.example.com/mcp", "a b", "*,mcp.example.com"]
)
def test_allowed_hosts_are_host_names_not_urls(value: str) -> None:
    assert "--allowed-host" in _refused("--transport", "sse", ONEPIN_MCP_ALLOWED_HOSTS=value)


@pytest.mark.parametrize(
    "argv",
    [
        ("doctor", "--sandbox", "--read-only"),
        ("--sandbox", "doctor", "--read-only"),
        ("--sandbox", "--read-only", "doctor"),
    ],
)
def test_doctor_takes_the_selection_and_sandbox_flags_before_or_after_its_name(
    argv: tuple[str, ...],
) -> None:
    options = _parse(*argv)
    assert options == DoctorOptions(
        selection=ToolSelection(read_only=True), sandbox=True, log_level="warning"
    )


def test_the_doctor_honours_the_selection_environment() -> None:
    options = _parse("doctor", ONEPIN_MCP_TOOLSETS="all", ONEPIN_MCP_LOG_LEVEL="debug")
    assert options == DoctorOptions(selection=ToolSelection(toolsets=("all",)), log_level="debug")


def test_the_sandbox_command_keeps_its_own_options_and_defaults() -> None:
    assert _parse("sandbox") == SandboxOptions()
    assert SandboxOptions().port == 8787
    key = "op_live_" + "k" * 32
    options = _parse(
        "--log-level", "debug", "sandbox", "--port", "0", "--api-key", key, "--manual-clock"
    )
    assert options == SandboxOptions(port=0, api_keys=(key,), manual_clock=True, log_level="debug")
    assert key not in repr(options)


def test_the_sandbox_flag_and_speed_reach_the_serve_options() -> None:
    options = _serve("--sandbox", "--sandbox-speed", "4", "--log-level", "DEBUG")
    assert (options.sandbox, options.sandbox_speed, options.log_level) == (True, 4.0, "debug")


# --- a key pasted into the wrong setting is never printed back ---------------------------------

PASTED_KEY = "op_live_" + "Mn3" * 10 + "ab"
# A secret of another form in ONEPIN_API_KEY: masked by its value, wherever it shows up.
OTHER_FORM_SECRET = "sk-other-form-secret-0123456789"


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"ONEPIN_WORKSPACE_ID": PASTED_KEY}, "ONEPIN_WORKSPACE_ID"),
        ((), {"ONEPIN_BASE_URL": PASTED_KEY}, "ONEPIN_BASE_URL"),
        ((), {"ONEPIN_MCP_TOOLSETS": PASTED_KEY}, "toolset"),
        ((), {"ONEPIN_MCP_TRANSPORT": PASTED_KEY}, "ONEPIN_MCP_TRANSPORT"),
        ((), {"ONEPIN_MCP_LOG_LEVEL": PASTED_KEY}, "ONEPIN_MCP_LOG_LEVEL"),
        ((), {"ONEPIN_MCP_CONFIRM": PASTED_KEY.upper()}, "ONEPIN_MCP_CONFIRM"),
        ((), {"ONEPIN_MCP_MAX_RUN_CREDITS": PASTED_KEY}, "ONEPIN_MCP_MAX_RUN_CREDITS"),
        (
            ("--transport", "streamable-http"),
            {"ONEPIN_MCP_PORT": PASTED_KEY},
            "ONEPIN_MCP_PORT",
        ),
        (
            ("--transport", "streamable-http"),
            {"ONEPIN_MCP_ALLOWED_HOSTS": f"https://{PASTED_KEY}@example.com"},
            "--allowed-host",
        ),
        (
            ("--transport", "streamable-http"),
            {"ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S": PASTED_KEY},
            "ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S",
        ),
        (("--transport", PASTED_KEY), {}, "--transport"),
        (("--tools", PASTED_KEY), {}, "tool"),
        (
            (),
            {"ONEPIN_API_KEY": OTHER_FORM_SECRET, "ONEPIN_WORKSPACE_ID": OTHER_FORM_SECRET},
            "ONEPIN_WORKSPACE_ID",
        ),
    ],
    ids=[
        "workspace-id",
        "base-url",
        "toolsets",
        "transport",
        "log-level",
        "confirm-uppercased",
        "max-run-credits",
        "port",
        "allowed-hosts",
        "header-timeout",
        "transport-flag",
        "tools-flag",
        "configured-secret-of-another-form",
    ],
)
def test_a_key_in_any_setting_is_masked_in_the_startup_error(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    done = _run(*args, env={"HOME": str(tmp_path), **env})
    assert done.returncode == 2, done.stderr
    assert named in done.stderr, done.stderr  # the error still says which setting is wrong
    for secret in (PASTED_KEY, OTHER_FORM_SECRET):
        assert secret.lower() not in done.stderr.lower(), done.stderr
    assert done.stdout == ""


def test_http_read_deadlines_default_to_10_and_30_seconds_and_come_from_the_environment() -> None:
    http = ("--transport", "streamable-http")
    assert (_serve(*http).header_timeout_s, _serve(*http).body_timeout_s) == (10.0, 30.0)
    tuned = _serve(
        *http, ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S="2.5", ONEPIN_MCP_HTTP_BODY_TIMEOUT_S="60"
    )
    assert (tuned.header_timeout_s, tuned.body_timeout_s) == (2.5, 60.0)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_read_deadline_that_is_not_a_positive_number_is_refused(value: str) -> None:
    message = _refused("--transport", "streamable-http", ONEPIN_MCP_HTTP_BODY_TIMEOUT_S=value)
    assert "ONEPIN_MCP_HTTP_BODY_TIMEOUT_S" in message
