"""The `onepin-mcp` command line, run as users run it: a real process, real pipes, a real socket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from onepin_mcp import __version__

ANNOUNCED_URL = re.compile(r"ONEPIN_BASE_URL=(http://127\.0\.0\.1:\d+)")
ANNOUNCED_KEY = re.compile(r"ONEPIN_API_KEY=(op_live_[A-Za-z0-9]{32})")


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


@dataclass
class ServedSandbox:
    process: subprocess.Popen[str]
    base_url: str
    key: str
    announcement: str


def _start_sandbox(*args: str) -> ServedSandbox:
    process = subprocess.Popen(
        [sys.executable, "-m", "onepin_mcp", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    seen: list[str] = []
    url = key = None
    # Reading the pipe blocks until the child writes; the child announces itself once it listens.
    for line in process.stderr:
        seen.append(line)
        url = url or (m.group(1) if (m := ANNOUNCED_URL.search(line)) else None)
        key = key or (m.group(1) if (m := ANNOUNCED_KEY.search(line)) else None)
        if url and key:
            break
    if not (url and key):
        process.kill()
        raise AssertionError("sandbox did not announce its URL and key:\n" + "".join(seen))
    return ServedSandbox(process, url, key, "".join(seen))


@pytest.fixture
def served() -> Iterator[ServedSandbox]:
    sandbox = _start_sandbox("--manual-clock")
    try:
        yield sandbox
    finally:
        if sandbox.process.poll() is None:
            sandbox.process.kill()
        sandbox.process.communicate(timeout=30)


def test_the_sandbox_command_serves_the_api_on_loopback_and_announces_how_to_use_it(
    served: ServedSandbox,
) -> None:
    headers = {"Authorization": f"Bearer {served.key}"}
    response = httpx.get(f"{served.base_url}/api/v1/auth/whoami", headers=headers, timeout=30)
    assert response.status_code == 200
    assert response.json()["data"]["auth_kind"] == "api_key"


def test_the_sandbox_stops_cleanly_on_sigterm_and_never_writes_to_stdout(
    served: ServedSandbox,
) -> None:
    httpx.get(f"{served.base_url}/api/v1/nodes", timeout=30).raise_for_status()
    served.process.send_signal(signal.SIGTERM)
    stdout, _ = served.process.communicate(timeout=30)
    assert served.process.returncode == 0
    assert stdout == ""


def test_a_sandbox_started_with_keys_accepts_only_those_keys() -> None:
    allowed = "op_live_" + "A" * 32
    other = "op_live_" + "B" * 32
    sandbox = _start_sandbox("--manual-clock", "--api-key", allowed)
    try:
        assert sandbox.key == allowed
        url = f"{sandbox.base_url}/api/v1/auth/whoami"
        ok = httpx.get(url, headers={"Authorization": f"Bearer {allowed}"}, timeout=30)
        refused = httpx.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=30)
        assert ok.status_code == 200
        assert refused.status_code == 401
        assert "error" in json.loads(refused.text)
    finally:
        sandbox.process.kill()
        sandbox.process.communicate(timeout=30)
