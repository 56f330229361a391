"""`onepin-mcp sandbox` as a real process on a loopback socket, for the CLI, SDK and contract tests.

The process is started exactly as a user starts it (the console script, falling back to
``python -m onepin_mcp`` when the script is not beside the interpreter), on port 0. Its stderr is
drained by a thread for the whole life of the process: the announcement is read from it with a
deadline, and the rest is kept for diagnostics (uvicorn's access log also goes there, and an
undrained pipe would eventually block the server).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ANNOUNCED_URL = re.compile(r"ONEPIN_BASE_URL=(https?://[^\s'\"]+)")
ANNOUNCED_KEY = re.compile(r"ONEPIN_API_KEY=(op_live_[A-Za-z0-9]{32})")
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0


def sibling_script(name: str) -> str | None:
    """A console script installed beside the running interpreter (the venv's bin directory)."""
    return shutil.which(name, path=str(Path(sys.executable).parent))


def sandbox_command(*args: str) -> list[str]:
    script = sibling_script("onepin-mcp")
    prefix = [script] if script else [sys.executable, "-m", "onepin_mcp"]
    return [*prefix, "sandbox", "--port", "0", *args]


@dataclass
class ServedSandbox:
    process: subprocess.Popen[str]
    base_url: str
    key: str
    stderr_lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    # A file rather than a pipe: nothing drains stdout, and the command must never write there.
    stdout_file: Any = None

    def stdout_text(self) -> str:
        self.stdout_file.seek(0)
        return str(self.stdout_file.read())

    def stderr_tail(self, lines: int = 60) -> str:
        return "".join(self.stderr_lines[-lines:])

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the sandbox's own control API (`/_sandbox/...`, no auth)."""
        response = httpx.request(method, f"{self.base_url}{path}", timeout=30, **kwargs)
        assert response.is_success, (
            f"{method} {path} -> {response.status_code} {response.text}\n"
            f"sandbox stderr:\n{self.stderr_tail()}"
        )
        return response

    def reset(self) -> None:
        self.control("POST", "/_sandbox/reset")

    def advance(self, seconds: float) -> None:
        self.control("POST", "/_sandbox/clock", json={"advance_s": seconds})


def start_sandbox(*args: str, deadline_s: float = START_DEADLINE_S) -> ServedSandbox:
    # Closed by stop_sandbox (or below, when the start fails).
    stdout_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        sandbox_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=stdout_file,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    lines: list[str] = []
    arrivals: queue.Queue[str | None] = queue.Queue()

    def drain(stream: Any) -> None:
        for line in stream:
            lines.append(line)
            arrivals.put(line)
        arrivals.put(None)

    reader = threading.Thread(target=drain, args=(process.stderr,), daemon=True)
    reader.start()

    url = key = None
    deadline = time.monotonic() + deadline_s
    while not (url and key):
        remaining = deadline - time.monotonic()
        try:
            line = arrivals.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            _terminate(process, reader)
            stdout_file.close()
            raise AssertionError(
                f"`{' '.join(sandbox_command(*args))}` did not announce ONEPIN_BASE_URL and "
                f"ONEPIN_API_KEY within {deadline_s} s (exit code {process.returncode}); "
                f"stderr:\n{''.join(lines)}"
            )
        url = url or (m.group(1).rstrip("/") if (m := ANNOUNCED_URL.search(line)) else None)
        key = key or (m.group(1) if (m := ANNOUNCED_KEY.search(line)) else None)
    return ServedSandbox(process, url, key, lines, reader, stdout_file)


def stop_sandbox(served: ServedSandbox, *, expect_running: bool = True) -> None:
    """Stop the process; fail loudly if it had already died on its own (unless a test ended it)."""
    died_early = served.process.poll() if expect_running else None
    _terminate(served.process, served.reader)
    if served.stdout_file is not None:
        served.stdout_file.close()
    assert died_early is None, (
        f"the sandbox process exited on its own with code {died_early}; stderr:\n"
        f"{served.stderr_tail()}"
    )


def _terminate(process: subprocess.Popen[str], reader: threading.Thread | None) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_S)
    if reader is not None:
        reader.join(timeout=STOP_DEADLINE_S)
    if process.stderr is not None:
        process.stderr.close()
