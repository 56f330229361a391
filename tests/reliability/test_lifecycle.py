"""Stopping: stdin closed under stdio, SIGTERM/SIGINT under HTTP, with work in flight.

Real processes (`python -m onepin_mcp --sandbox`), sandbox on the real clock. Each test first
makes sure a `wait_for_run` call is really in flight (a progress notification has arrived for
it) and, over HTTP, that a run watcher is running (a subscription), then stops the server and
checks: exit code 0 within a bound; the in-flight call ended (the client is not left hanging);
the watcher stopped; the lifespan finished (that is where the OnePin HTTP client is closed);
no traceback on stderr; and, on stdio, nothing but JSON-RPC on stdout.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter

from onepin_mcp.sandbox import seed
from tests.transports.served import REPO, Served, child_env, command, start_server
from tests.transports.test_http import INITIALIZE

pytestmark = pytest.mark.anyio

DEADLINE_S = 30.0
STOP_BOUND_S = 15.0  # generous: the HTTP graceful window is 3 s; stdio stops at once
MESSAGE = TypeAdapter(JSONRPCMessage)
RUN = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
RUN_URI = f"onepin://workflows/{seed.WORKFLOW_COURSE_ID}/runs/{seed.RUN_RUNNING_ID}"


def _no_crash(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Exception in ASGI application" not in stderr, stderr
    assert "Application shutdown failed" not in stderr, stderr


# --- stdio: stdin closes -------------------------------------------------------------------------


def test_stdio_exits_0_when_stdin_closes_during_a_wait_and_prints_only_json_rpc(
    tmp_path: Path,
) -> None:
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w", encoding="utf-8") as stderr_file:
        process = subprocess.Popen(
            command("--sandbox", "--log-level", "debug"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            env=child_env(tmp_path),
            cwd=REPO,
        )
    assert process.stdin is not None
    assert process.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    seen: list[bytes] = []

    def read(stream: Any) -> None:
        for line in stream:
            seen.append(line)
            lines.put(line)
        lines.put(b"")

    reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
    reader.start()

    def send(message: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    def next_message() -> dict[str, Any]:
        line = lines.get(timeout=DEADLINE_S)
        assert line, "stdout closed early"
        message: dict[str, Any] = json.loads(line)
        return message

    try:
        send(INITIALIZE)
        assert "result" in next_message()
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "wait_for_run",
                    "arguments": {**RUN, "timeout_s": 120},
                    "_meta": {"progressToken": "wait"},
                },
            }
        )
        # A progress notification for the call: the wait is running, not merely queued.
        progress = next_message()
        assert progress.get("method") == "notifications/progress", progress
        process.stdin.close()
        code = process.wait(timeout=STOP_BOUND_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_BOUND_S)
    reader.join(timeout=STOP_BOUND_S)
    process.stdout.close()
    assert code == 0
    assert seen, "nothing on stdout"
    for line in seen:
        assert line.endswith(b"\n")
        MESSAGE.validate_json(line)  # every byte on stdout is JSON-RPC
    # The in-flight call was answered (with an error), not left without a reply.
    replies = [json.loads(line) for line in seen if b'"id":2' in line]
    assert len(replies) == 1
    assert "error" in replies[0]
    stderr = stderr_path.read_text(encoding="utf-8")
    _no_crash(stderr)
    assert seed.EXAMPLE_KEY not in stderr


# --- HTTP: SIGTERM and SIGINT ---------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_http_stops_cleanly_on_a_signal_with_a_call_and_a_watcher_running(
    tmp_path: Path, signum: signal.Signals
) -> None:
    served: Served = start_server(
        "--sandbox", "--transport", "streamable-http", "--log-level", "info", home=tmp_path
    )
    outcome: dict[str, str] = {}
    in_flight = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        in_flight.set()

    async def wait_call(client: Client) -> None:
        try:
            result = await client.call_tool(
                "wait_for_run", {**RUN, "timeout_s": 120}, progress_callback=on_progress
            )
            outcome["ended"] = f"result, is_error={result.is_error}"
        except Exception as exc:  # the connection goes away under it: that is the point
            outcome["ended"] = f"{type(exc).__name__}: {exc}"

    try:
        with anyio.fail_after(DEADLINE_S):
            try:
                async with Client(served.url, mode="legacy", read_timeout_seconds=60) as client:
                    with pytest.warns(MCPDeprecationWarning):
                        await client.subscribe_resource(RUN_URI)  # type: ignore[deprecated]
                    assert "Watching run" in served.stderr_text()
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(wait_call, client)
                        await in_flight.wait()
                        served.process.send_signal(signum)
                        code = await anyio.to_thread.run_sync(
                            lambda: served.process.wait(timeout=STOP_BOUND_S)
                        )
            except Exception as exc:  # closing a session whose server is gone may fail too
                outcome.setdefault("closing", f"{type(exc).__name__}")
    finally:
        if served.process.poll() is None:
            served.process.kill()
        served.process.wait(timeout=STOP_BOUND_S)
        served.reader.join(timeout=STOP_BOUND_S)
        if served.process.stderr is not None:
            served.process.stderr.close()
        served.stdout_file.seek(0)
        stdout = served.stdout_file.read()
        served.stdout_file.close()
    stderr = served.stderr_text()
    assert code == 0, stderr
    assert "ended" in outcome, "the in-flight call never ended"
    assert "Stopped watching run" in stderr  # the watcher stopped with its session
    assert "Application shutdown complete." in stderr  # the lifespan (OnePin client) closed
    assert "stopped" in stderr.splitlines()[-1]
    _no_crash(stderr)
    assert stdout == ""
