"""`onepin-mcp sandbox` as a real process on a loopback socket, for the CLI, SDK and contract tests.

The process is started exactly as a user starts it (the console script, falling back to
``python -m onepin_mcp`` when the script is not beside the interpreter), on port 0, through
`tests.support.processes`: the announced URL and key are read from stderr with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Launched, launch, terminate

ANNOUNCED_URL = re.compile(r"ONEPIN_BASE_URL=(https?://[^\s'\"]+)")
ANNOUNCED_KEY = re.compile(r"ONEPIN_API_KEY=(op_live_[A-Za-z0-9]{32})")
START_DEADLINE_S = 30.0


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
    def announced(stderr: str) -> bool:
        return bool(ANNOUNCED_URL.search(stderr) and ANNOUNCED_KEY.search(stderr))

    launched = launch(
        sandbox_command(*args),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ready=announced,
        deadline_s=deadline_s,
    )
    stderr = "".join(launched.stderr_lines)
    url = ANNOUNCED_URL.search(stderr)
    key = ANNOUNCED_KEY.search(stderr)
    assert url is not None
    assert key is not None
    return ServedSandbox(
        launched.process,
        url.group(1).rstrip("/"),
        key.group(1),
        launched.stderr_lines,
        launched.reader,
        launched.stdout_file,
    )


def stop_sandbox(served: ServedSandbox, *, expect_running: bool = True) -> None:
    """Stop the process; fail loudly if it had already died on its own (unless a test ended it)."""
    died_early = served.process.poll() if expect_running else None
    assert served.reader is not None
    terminate(Launched(served.process, served.stderr_lines, served.reader, served.stdout_file))
    assert died_early is None, (
        f"the sandbox process exited on its own with code {died_early}; stderr:\n"
        f"{served.stderr_tail()}"
    )
