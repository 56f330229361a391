"""Load on loopback: concurrent MCP sessions calling a cheap tool, and memory across sessions.

Run: `python bench/load_http.py` (from the project root, in its venv; loopback only, no network).
`--quick` runs a small version (what tests/reliability/test_http_serving.py runs).

It starts `onepin-mcp --sandbox --transport streamable-http --port 0` as its own process (the
URL is read from its announcement on stderr), then, for each concurrency level N (default 1, 10,
50): N MCP client sessions at once (the SDK's `Client`, Streamable HTTP), each opening, calling
`get_run_status` on the seeded running run K times and closing. Every call is timed on the
client side. The baseline, measured in the same run against the same process, is N concurrent
plain HTTP clients each sending K `GET /healthz`: what the HTTP stack alone costs, so the ratio
shows what MCP (sessions, JSON-RPC, SSE framing, the tool, the in-process sandbox) adds.

Then the churn: 2025-11-25 sessions opened, used for one tool call and closed (DELETE), four at
a time, spoken at the HTTP level (`raw_session`, lighter on this 2-core machine than the SDK
client, so the time goes to the server), with the server process's resident memory (VmRSS from
/proc/<pid>/status) read before, after 100 and after 1000.

Each level is repeated (default 3 times); the table shows medians and ratios. Everything is
bounded: a count of sessions and calls, and a deadline for the whole run. Errors must be 0.
The server logs at warning, so that the figures measure serving rather than the access log.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onepin_mcp.sandbox import seed  # noqa: E402 - after the path is set

ANNOUNCED = re.compile(r"serving MCP over \S+ at (http://\S+)")
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0
TOOL = "get_run_status"
TOOL_ARGS = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}


# --- the server process ---------------------------------------------------------------------------


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    stderr_lines: list[str]
    reader: threading.Thread

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)


def server_command(*args: str) -> list[str]:
    """The console script beside the interpreter, else `python -m onepin_mcp`."""
    script = Path(sys.executable).with_name("onepin-mcp")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("onepin-mcp")
    return [found, *args] if found else [sys.executable, "-m", "onepin_mcp", *args]


def start_server(*extra: str, log_level: str = "warning") -> ServerProcess:
    """Start the sandboxed server on a free loopback port; return once it announced its URL."""
    argv = server_command(
        "--sandbox", "--transport", "streamable-http", "--port", "0", "--log-level", log_level,
        *extra,
    )  # fmt: skip
    home = tempfile.mkdtemp(prefix="onepin-load-home-")
    # A clean environment: no developer key or credentials file can reach the server.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
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
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = arrivals.get(timeout=remaining) if remaining > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            stop_server(ServerProcess(process, "", lines, reader))
            raise RuntimeError(f"the server did not announce its URL; stderr:\n{''.join(lines)}")
        if match := ANNOUNCED.search(line):
            return ServerProcess(process, match.group(1), lines, reader)


def stop_server(server: ServerProcess) -> int:
    """SIGTERM, bounded wait (then SIGKILL); the exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_DEADLINE_S)
    server.reader.join(timeout=STOP_DEADLINE_S)
    if server.process.stderr is not None:
        server.process.stderr.close()
    return server.process.returncode


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Level:
    """One run of one concurrency level."""

    kind: str  # "mcp" or "baseline"
    sessions: int
    calls_per_session: int
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies_s) + len(self.errors)

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] * 1000


async def _timed(level: Level, call: Callable[[], Awaitable[object]]) -> None:
    started = time.perf_counter()
    try:
        await call()
    except Exception as exc:  # every failure counts; the text says which
        level.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        return
    level.latencies_s.append(time.perf_counter() - started)


async def mcp_session(url: str, calls: int, level: Level, mode: str) -> None:
    """Open a session, call the tool `calls` times, close it; failures go to `level.errors`."""

    async def call_tool(client: Client) -> None:
        result = await client.call_tool(TOOL, TOOL_ARGS)
        if result.is_error:
            raise RuntimeError(f"tool error: {result.content}")

    try:
        async with Client(url, mode=mode, read_timeout_seconds=60) as client:
            for _ in range(calls):
                await _timed(level, lambda: call_tool(client))
    except Exception as exc:  # opening or closing the session failed
        level.errors.append(f"session: {type(exc).__name__}: {exc}"[:300])


async def run_mcp_level(url: str, sessions: int, calls: int, mode: str) -> Level:
    level = Level("mcp", sessions, calls)
    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(sessions):
            tasks.start_soon(mcp_session, url, calls, level, mode)
    level.elapsed_s = time.perf_counter() - started
    return level


async def run_baseline_level(base: str, sessions: int, calls: int) -> Level:
    """N concurrent HTTP clients, each sending K `GET /healthz` on its own connection."""
    level = Level("baseline", sessions, calls)

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(calls):

                async def get() -> None:
                    (await http.get(f"{base}/healthz")).raise_for_status()

                await _timed(level, get)

    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(sessions):
            tasks.start_soon(worker)
    level.elapsed_s = time.perf_counter() - started
    return level


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "load_http", "version": "1"},
    },
}
POST_HEADERS = {"Accept": "application/json, text/event-stream"}


def _message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a POST answered as SSE (one event) or as plain JSON."""
    response.raise_for_status()
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message: dict[str, Any] = json.loads(line[5:])
                return message
        raise RuntimeError("an SSE response without a message")
    answer: dict[str, Any] = response.json()
    return answer


async def raw_session(http: httpx.AsyncClient, url: str, calls: int = 1) -> str:
    """One 2025-11-25 session at the HTTP level: initialize, initialized, `calls` tool calls,
    DELETE. Lighter on the client than the SDK's `Client`, so that churning many sessions
    measures the server; returns the session id (gone once this returns)."""
    opened = await http.post(url, json=INITIALIZE, headers=POST_HEADERS)
    if "result" not in _message(opened):
        raise RuntimeError(f"initialize failed: {opened.text[:200]}")
    session = opened.headers["mcp-session-id"]
    headers = {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    (await http.post(url, json=note, headers=headers)).raise_for_status()
    for n in range(calls):
        call = {
            "jsonrpc": "2.0",
            "id": 2 + n,
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": TOOL_ARGS},
        }
        answer = _message(await http.post(url, json=call, headers=headers))
        if answer.get("result", {}).get("isError", True):
            raise RuntimeError(f"tool call failed: {json.dumps(answer)[:200]}")
    (await http.delete(url, headers=headers)).raise_for_status()
    return session


@dataclass
class Churn:
    """Sessions opened, used and closed, a few at a time; the server's RSS at checkpoints."""

    rss_kib: dict[int, int] = field(default_factory=dict)  # sessions done -> server RSS
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    last_session: str | None = None


async def churn(
    url: str, pid: int, checkpoints: Sequence[int], *, at_once: int = 4, calls: int = 1
) -> Churn:
    """Open, use and close sessions until each checkpoint, `at_once` in flight (each on its
    own connection); record the server's RSS at every checkpoint (and before)."""
    result = Churn()
    started = time.perf_counter()
    result.rss_kib[0] = rss_kib(pid)
    done = 0

    async def worker(http: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            try:
                result.last_session = await raw_session(http, url, calls)
            except Exception as exc:  # counted; the text says which
                result.errors.append(f"churn: {type(exc).__name__}: {exc}"[:300])

    for checkpoint in sorted(checkpoints):
        todo = checkpoint - done
        share, extra = divmod(todo, at_once)
        async with anyio.create_task_group() as tasks:
            for i in range(at_once):
                http = httpx.AsyncClient(timeout=60)
                tasks.start_soon(_closing_worker, worker, http, share + (i < extra))
        done = checkpoint
        result.rss_kib[checkpoint] = rss_kib(pid)
    result.elapsed_s = time.perf_counter() - started
    return result


async def _closing_worker(
    worker: Callable[[httpx.AsyncClient, int], Awaitable[None]],
    http: httpx.AsyncClient,
    count: int,
) -> None:
    async with http:
        await worker(http, count)


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Report:
    command: str
    mode: str
    levels: dict[tuple[str, int], list[Level]] = field(default_factory=dict)
    churn: Churn | None = None

    @property
    def errors(self) -> list[str]:
        found = [e for runs in self.levels.values() for level in runs for e in level.errors]
        return found + (self.churn.errors if self.churn else [])


async def measure(
    server: ServerProcess,
    *,
    concurrency: Sequence[int],
    calls: int,
    repeats: int,
    churn_checkpoints: Sequence[int],
    mode: str,
    command: str = "",
) -> Report:
    report = Report(command=command, mode=mode)
    # Warm-up (imports, first connections, the sandbox's first responses): not measured.
    await run_mcp_level(server.url, 2, 2, mode)
    await run_baseline_level(server.base, 2, 2)
    for _ in range(repeats):
        for n in concurrency:
            report.levels.setdefault(("baseline", n), []).append(
                await run_baseline_level(server.base, n, calls)
            )
            report.levels.setdefault(("mcp", n), []).append(
                await run_mcp_level(server.url, n, calls, mode)
            )
    if churn_checkpoints:
        report.churn = await churn(server.url, server.pid, churn_checkpoints)
    return report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(report: Report) -> str:
    out = [f"command: {report.command}", f"client protocol mode: {report.mode}", ""]
    out.append(
        "| sessions | calls each | calls | errors | MCP calls/s | MCP p50 ms | MCP p99 ms "
        "| base req/s | base p50 ms | base p99 ms | p50 / base p50 | calls/s / base req/s |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sorted({n for _, n in report.levels}):
        mcp = report.levels[("mcp", n)]
        base = report.levels[("baseline", n)]
        tp, p50, p99 = (
            _median([x.throughput for x in mcp]),
            _median([x.percentile_ms(0.5) for x in mcp]),
            _median([x.percentile_ms(0.99) for x in mcp]),
        )
        btp, b50, b99 = (
            _median([x.throughput for x in base]),
            _median([x.percentile_ms(0.5) for x in base]),
            _median([x.percentile_ms(0.99) for x in base]),
        )
        calls = sum(x.calls for x in mcp)
        errors = sum(len(x.errors) for x in mcp)
        out.append(
            f"| {n} | {mcp[0].calls_per_session} | {calls} | {errors} | {tp:.0f} | {p50:.1f} "
            f"| {p99:.1f} | {btp:.0f} | {b50:.1f} | {b99:.1f} | {p50 / b50:.1f} "
            f"| {tp / btp:.2f} |"
        )
    repeats = len(next(iter(report.levels.values()))) if report.levels else 0
    out.append(f"\n(medians of {repeats} repetitions per level; calls and errors are totals)")
    if report.churn is not None:
        churn = report.churn
        out.append("")
        out.append("| sessions opened and closed | server RSS MiB |")
        out.append("|---:|---:|")
        for count, kib in sorted(churn.rss_kib.items()):
            out.append(f"| {count} | {kib / 1024:.1f} |")
        points = sorted(churn.rss_kib)
        if len(points) >= 3:
            first, last = points[1], points[-1]
            grew = churn.rss_kib[last] - churn.rss_kib[first]
            out.append(
                f"\nRSS from {first} to {last} sessions: {grew / 1024:+.1f} MiB "
                f"({grew / churn.rss_kib[first]:+.1%}); churn errors {len(churn.errors)}, "
                f"{churn.elapsed_s:.1f} s"
            )
    errors = report.errors
    out.append(f"\ntotal errors: {len(errors)}")
    out.extend(f"  {e}" for e in errors[:10])
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,10,50", help="session counts (default 1,10,50)")
    parser.add_argument("--calls", type=int, default=20, help="tool calls per session")
    parser.add_argument("--repeats", type=int, default=3, help="runs per level (median shown)")
    parser.add_argument("--churn", default="100,1000", help="RSS checkpoints (sessions)")
    parser.add_argument("--mode", choices=("legacy", "auto"), default="legacy",
                        help="client protocol: legacy = 2025-11-25 sessions (default), "
                        "auto = 2026-07-28, sessionless")  # fmt: skip
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for everything")
    parser.add_argument("--quick", action="store_true", help="10 sessions x 5 calls, once")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.calls, args.repeats, args.churn = "10", 5, 1, ""
    concurrency = [int(n) for n in args.concurrency.split(",") if n]
    checkpoints = [int(n) for n in args.churn.split(",") if n]
    command = " ".join(["python bench/load_http.py", *(argv if argv is not None else sys.argv[1:])])
    server = start_server()
    try:

        async def run() -> Report:
            with anyio.fail_after(args.deadline):
                return await measure(
                    server,
                    concurrency=concurrency,
                    calls=args.calls,
                    repeats=args.repeats,
                    churn_checkpoints=checkpoints,
                    mode=args.mode,
                    command=command,
                )

        report = anyio.run(run)
    finally:
        code = stop_server(server)
    print(render(report))
    print(
        f"server exit code: {code}; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    return 1 if report.errors or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
