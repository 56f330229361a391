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
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from mcp.client.stdio import StdioServerParameters

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
    arrivals: queue.Queue[str | None] | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        """The URL without its path: where /healthz lives."""
        return self.url.rsplit("/", 1)[0]

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    async def stderr_shows(self, pattern: re.Pattern[str], since: int = 0) -> None:
        """Return once a stderr line from index `since` on matches `pattern` (callers bound it
        with `anyio.fail_after`): waits on the lines as they arrive, never on time."""
        assert self.arrivals is not None
        while not any(pattern.search(line) for line in self.stderr_lines[since:]):
            if await anyio.to_thread.run_sync(self.arrivals.get, abandon_on_cancel=True) is None:
                raise AssertionError(f"stderr ended without {pattern.pattern!r}")

    def stdout_text(self) -> str:
        assert self.stdout is not None, "stdout is read once the server is stopped"
        return self.stdout


def stdio_params(
    home: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stderr_to: Path | None = None,
) -> StdioServerParameters:
    """`onepin-mcp ARGS` over stdio, launched as a client launches it. The child gets only this
    environment (the SDK does not pass the parent's through). With `stderr_to`, a shell in
    between sends the server's stderr to that file, for the test to read afterwards."""
    argv = [sys.executable, "-m", "onepin_mcp", *args]
    if stderr_to is not None:
        argv = ["/bin/sh", "-c", 'exec "$@" 2>"$0"', str(stderr_to), *argv]
    return StdioServerParameters(command=argv[0], args=argv[1:], env=child_env(home, env), cwd=REPO)


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
        arrivals=launched.arrivals,
    )


def start_passthrough(
    onepin_url: str,
    home: Path,
    *args: str,
    transport: str = "streamable-http",
    env: Mapping[str, str] | None = None,
) -> Served:
    """`onepin-mcp` over HTTP in passthrough mode (each caller's bearer is its own OnePin key),
    in front of the OnePin at `onepin_url`."""
    return start_server(
        "--transport",
        transport,
        "--auth",
        "passthrough",
        *args,
        home=home,
        env={"ONEPIN_BASE_URL": onepin_url, **(env or {})},
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
def stopping(served: Served) -> Iterator[Served]:
    """Hold a started server for a `with` block; on the way out it must stop cleanly (exit 0)."""
    try:
        yield served
    finally:
        code = stop_server(served)
    assert code == 0, served.stderr_text()


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
    with stopping(served):
        yield served
    assert "Traceback" not in served.stderr_text()
    assert token not in served.stderr_text()
