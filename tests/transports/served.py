"""`onepin-mcp` as a real process: the environment it gets, and HTTP servers on loopback ports.

Each child gets an environment built from scratch (PATH, a temporary HOME, and what the test
passes), never the developer's: a real `ONEPIN_API_KEY` or `~/.onepin/credentials` must not leak
into a test, and a test must not pass because of one. HTTP servers are started on `--port 0`;
the URL is read from the announcement on stderr, with a deadline. Stderr is drained by a thread
for the whole life of the process (an undrained pipe would eventually block the server) and kept
for assertions and diagnostics. Stdout goes to a file: the server must never write there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import Launched, launch, terminate

REPO = Path(__file__).resolve().parents[2]
ANNOUNCED = re.compile(r"serving MCP over \S+ at (http://\S+)")
START_DEADLINE_S = 30.0


def child_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "onepin_mcp", *args]


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    stderr_lines: list[str]
    reader: threading.Thread
    stdout_file: Any
    # What the process wrote to stdout, read when it was stopped.
    stdout: str | None = field(default=None)

    @property
    def base(self) -> str:
        """The URL without its path: where /healthz lives."""
        return self.url.rsplit("/", 1)[0]

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    def stdout_text(self) -> str:
        assert self.stdout is not None, "stdout is read once the server is stopped"
        return self.stdout


def start_server(
    *args: str,
    home: Path,
    env: Mapping[str, str] | None = None,
    deadline_s: float = START_DEADLINE_S,
) -> Served:
    """Start `onepin-mcp ARGS --port 0` and wait for the URL it announces."""
    launched = launch(
        command(*args, "--port", "0"),
        env=child_env(home, env),
        ready=lambda stderr: ANNOUNCED.search(stderr) is not None,
        deadline_s=deadline_s,
        cwd=REPO,
    )
    match = ANNOUNCED.search("".join(launched.stderr_lines))
    assert match is not None
    return Served(
        launched.process,
        match.group(1),
        launched.stderr_lines,
        launched.reader,
        launched.stdout_file,
    )


def stop_server(served: Served) -> int:
    """Stop the process with SIGTERM; fail loudly if it had died on its own. Returns its code."""
    died_early = served.process.poll()
    served.stdout_file.seek(0)
    served.stdout = str(served.stdout_file.read())
    code = terminate(
        Launched(served.process, served.stderr_lines, served.reader, served.stdout_file)
    )
    assert died_early is None, (
        f"the server exited on its own with code {died_early}; stderr:\n{served.stderr_text()}"
    )
    return code


@contextmanager
def serving_with_token(token: str, *, home: Path) -> Iterator[Served]:
    """`--sandbox` over Streamable HTTP with static token auth; on the way out it must stop
    cleanly, with no traceback and the token nowhere in its log."""
    served = start_server(
        "--sandbox",
        "--transport",
        "streamable-http",
        "--auth",
        "token",
        home=home,
        env={"ONEPIN_MCP_HTTP_TOKEN": token},
    )
    try:
        yield served
    finally:
        code = stop_server(served)
    assert code == 0, served.stderr_text()
    assert "Traceback" not in served.stderr_text()
    assert token not in served.stderr_text()
