"""The `onepin-mcp` command line, run as users run it: a real process, real pipes, a real socket."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from onepin_mcp import __version__
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onepin_mcp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_is_the_package_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"onepin-mcp {__version__}"


def test_no_command_is_a_usage_error_on_stderr_with_nothing_on_stdout() -> None:
    done = _run()
    assert done.returncode == 2
    assert done.stdout == ""
    assert "onepin-mcp sandbox" in done.stderr


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
