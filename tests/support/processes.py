"""A child process as the tests use it: stderr drained by a thread for the process's whole life
(an undrained pipe would eventually block it) and kept for assertions; stdout in a file (the
servers must never write there); start-up awaited on an announcement, with a deadline."""

from __future__ import annotations

import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

STOP_DEADLINE_S = 15.0


@dataclass
class Launched:
    process: subprocess.Popen[str]
    stderr_lines: list[str]
    reader: threading.Thread
    stdout_file: IO[str]
    # Every stderr line as it arrives (None once the stream ends), for waiting on a line.
    arrivals: queue.Queue[str | None] | None = None


def launch(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    ready: Callable[[str], bool],
    deadline_s: float,
    cwd: Path | None = None,
) -> Launched:
    """Start `argv` and return once `ready` holds for the stderr read so far; fail (and stop the
    process) if it doesn't within `deadline_s`."""
    stdout_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed by terminate
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout_file,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
        cwd=cwd,
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
    launched = Launched(process, lines, reader, stdout_file, arrivals)
    deadline = time.monotonic() + deadline_s
    while not ready("".join(lines)):
        remaining = deadline - time.monotonic()
        try:
            line = arrivals.get(timeout=remaining) if remaining > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            terminate(launched)
            raise AssertionError(
                f"`{' '.join(argv)}` did not announce itself within {deadline_s} s "
                f"(exit code {process.returncode}); stderr:\n{''.join(lines)}"
            )
    return launched


def launch_announcing(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    patterns: Sequence[re.Pattern[str]],
    deadline_s: float,
    cwd: Path | None = None,
) -> tuple[Launched, list[str]]:
    """`launch`, ready once every pattern has matched its stderr; also returns each pattern's
    first group (an announced URL, key, ...)."""
    launched = launch(
        argv,
        env=env,
        ready=lambda text: all(pattern.search(text) for pattern in patterns),
        deadline_s=deadline_s,
        cwd=cwd,
    )
    text = "".join(launched.stderr_lines)
    return launched, [match.group(1) for p in patterns if (match := p.search(text))]


def terminate(launched: Launched) -> int:
    """SIGTERM, then SIGKILL if it lingers; close the pipes and the stdout file.

    Returns the exit code."""
    process = launched.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_S)
    launched.reader.join(timeout=STOP_DEADLINE_S)
    if process.stderr is not None:
        process.stderr.close()
    if not launched.stdout_file.closed:
        launched.stdout_file.close()
    return process.returncode
