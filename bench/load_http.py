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

`--api-latency-ms N` (N > 0) puts the OnePin API in a separate process, as a real OnePin is a
remote API: `onepin-mcp sandbox --port 0` is started first (its URL and key read from its
`export ONEPIN_...` lines on stderr), a fault rule is installed over its control API that delays
every status read (`GET /api/v1/workflows/*/runs/*/status`, the one request the tool makes) by N
ms for as long as the sandbox runs, and the MCP server is started without `--sandbox`, pointed at
it through ONEPIN_BASE_URL and ONEPIN_API_KEY. Each tool call then waits on the API the way it
would over a network, and concurrent sessions overlap those waits; with the default N = 0 the
sandbox runs inside the server process with no added latency (CPU-bound: by Little's law the
latency of N closed-loop sessions is about N times one call's service time). The baseline then
also has the floor the API sets: the same status GET sent straight to the sandbox (one client,
sequential, `API_FLOOR_REQUESTS` requests), and the sandbox's request log is summed up at the end.
The server's RSS is then the MCP server's alone (the sandbox's memory is in its own process).

`--workers N` (with `--stateless`, and `--api-latency-ms`, since `--workers` refuses
`--sandbox`) serves with N worker processes on the one port; `--stateless` alone serves
Streamable HTTP without sessions. For the ratio to one worker, run it once with `--workers 1`
and once with `--workers N`, the same other flags. With workers, the CPU time of the whole
process tree is printed (the workers are the server's children), and the RSS shown is the
supervisor's plus its workers'.

Each level is repeated (default 3 times); the table shows medians and ratios, and the issue's
target (p99 at the largest session count at most 10 times the single-session median) is checked.
Everything is bounded: a count of sessions and calls, a deadline for the whole run, and bounded
waits for the child processes, which are always stopped. Errors must be 0. The server logs at
warning, so that the figures measure serving rather than the access log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
from tests.support.processes import Launched, launch_announcing, terminate  # noqa: E402

ANNOUNCED = re.compile(r"serving MCP over \S+ at (http://\S+)")
SANDBOX_URL = re.compile(r"ONEPIN_BASE_URL=(http://\S+)")
SANDBOX_KEY = re.compile(r"ONEPIN_API_KEY=(\S+)")
START_DEADLINE_S = 30.0
CONTROL_TIMEOUT_S = 10.0
TOOL = "get_run_status"
TOOL_ARGS = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
# The one API request the tool makes, as a fault-rule glob and as the URL path the floor reads.
STATUS_GLOB = "/api/v1/workflows/*/runs/*/status"
STATUS_PATH = f"/api/v1/workflows/{seed.WORKFLOW_COURSE_ID}/runs/{seed.RUN_RUNNING_ID}/status"
API_FLOOR_REQUESTS = 30
TARGET_RATIO = 10.0


# --- the server process ---------------------------------------------------------------------------


@dataclass
class ServerProcess:
    launched: Launched
    url: str

    @property
    def process(self) -> subprocess.Popen[str]:
        return self.launched.process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def stderr_text(self) -> str:
        return "".join(self.launched.stderr_lines)


def server_command(*args: str) -> list[str]:
    """The console script beside the interpreter, else `python -m onepin_mcp`."""
    script = Path(sys.executable).with_name("onepin-mcp")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("onepin-mcp")
    return [found, *args] if found else [sys.executable, "-m", "onepin_mcp", *args]


@dataclass
class SandboxApi:
    """A separate `onepin-mcp sandbox` process: the OnePin API the server reaches over loopback."""

    process: ServerProcess  # its `url` is the API's base URL
    key: str
    latency_ms: int

    @property
    def base_url(self) -> str:
        return self.process.url


def clean_env(**extra: str) -> dict[str, str]:
    """A clean environment: no developer key or credentials file can reach a child."""
    home = tempfile.mkdtemp(prefix="onepin-load-home-")
    return {"PATH": os.environ.get("PATH", ""), "HOME": home, "PYTHONUNBUFFERED": "1", **extra}


def start_server(
    *extra: str, log_level: str = "warning", api: SandboxApi | None = None
) -> ServerProcess:
    """Start the server on a free loopback port; return once it announced its URL.

    Without `api` the server runs the in-process sandbox (`--sandbox`); with it, the server is
    an ordinary one whose OnePin is that separate sandbox (ONEPIN_BASE_URL, ONEPIN_API_KEY)."""
    sandbox = () if api is not None else ("--sandbox",)
    argv = server_command(
        *sandbox, "--transport", "streamable-http", "--port", "0", "--log-level", log_level,
        *extra,
    )  # fmt: skip
    env = (
        clean_env(ONEPIN_BASE_URL=api.base_url, ONEPIN_API_KEY=api.key)
        if api is not None
        else clean_env()
    )
    server, _ = spawn(argv, env, [ANNOUNCED])
    return server


def start_sandbox(latency_ms: int) -> SandboxApi:
    """Start `onepin-mcp sandbox --port 0` and install the latency fault (stopping the sandbox
    again if that fails); return once both are done."""
    argv = server_command("sandbox", "--port", "0", "--log-level", "warning")
    process, (_, key) = spawn(argv, clean_env(), [SANDBOX_URL, SANDBOX_KEY])
    api = SandboxApi(process, key, latency_ms)
    try:
        install_latency(api)
    except BaseException:
        stop_server(process)
        raise
    return api


def install_latency(api: SandboxApi) -> None:
    """One rule, in force until the sandbox stops (`times: null`): every status read waits
    `latency_ms` before it is answered. Checked by reading the installed rules back."""
    rule = {"method": "GET", "path": STATUS_GLOB, "times": None, "latency_ms": api.latency_ms}
    with httpx.Client(base_url=api.base_url, timeout=CONTROL_TIMEOUT_S) as http:
        http.post("/_sandbox/faults", json=rule).raise_for_status()
        installed = http.get("/_sandbox/faults").raise_for_status().json()["data"]
    expected = {**rule, "remaining": None}
    if [{k: fault.get(k) for k in expected} for fault in installed] != [expected]:
        raise RuntimeError(f"the sandbox's fault rules are not the one installed: {installed}")


def spawn(
    argv: Sequence[str], env: dict[str, str], patterns: Sequence[re.Pattern[str]]
) -> tuple[ServerProcess, list[str]]:
    """Start `argv` and wait (bounded) until every pattern has matched a stderr line; return the
    process (its `url` the first pattern's group) and each pattern's first group."""
    launched, values = launch_announcing(
        argv, env=env, patterns=patterns, deadline_s=START_DEADLINE_S, cwd=ROOT
    )
    return ServerProcess(launched, values[0]), values


def stop_server(server: ServerProcess) -> int:
    """SIGTERM, bounded wait (then SIGKILL); the exit code."""
    return terminate(server.launched)


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` and its children (workers) in KiB (Linux /proc)."""
    total = 0
    for each in (pid, *children_of(pid)):
        for line in Path(f"/proc/{each}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    if not total:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return total


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (a supervisor's workers), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text(encoding="ascii")
        found.extend(int(child) for child in text.split())
    return found


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live children (Linux /proc)."""
    total = 0.0
    for each in (pid, *children_of(pid)):
        stat = Path(f"/proc/{each}/stat").read_text(encoding="ascii")
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` alone (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text(encoding="ascii").split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuShares:
    """Where the machine's CPU went while the MCP level at the top session count ran: the
    server (supervisor and each worker), the sandbox, this load generator, and the rest."""

    wall_s: float = 0.0
    server_s: dict[str, float] = field(default_factory=dict)
    sandbox_s: float = 0.0
    load_s: float = 0.0
    machine_s: float = 0.0

    def snapshot(self, server_pid: int, sandbox_pid: int | None) -> dict[str, float]:
        workers = children_of(server_pid)
        taken = {"supervisor" if workers else "one process": process_cpu_s(server_pid)}
        for child in workers:
            taken[f"worker pid {child}"] = process_cpu_s(child)
        taken["sandbox"] = process_cpu_s(sandbox_pid) if sandbox_pid else 0.0
        taken["load"] = time.process_time()
        taken["machine"] = machine_busy_s()
        taken["wall"] = time.perf_counter()
        return taken

    def add(self, before: dict[str, float], after: dict[str, float]) -> None:
        def spent(key: str) -> float:
            return after.get(key, 0.0) - before.get(key, after.get(key, 0.0))

        self.wall_s += spent("wall")
        self.sandbox_s += spent("sandbox")
        self.load_s += spent("load")
        self.machine_s += spent("machine")
        for key in after:
            if key in ("supervisor", "one process") or key.startswith("worker"):
                self.server_s[key] = self.server_s.get(key, 0.0) + spent(key)

    def render(self, sessions: int) -> str:
        cores = os.cpu_count() or 1
        ours = sum(self.server_s.values()) + self.sandbox_s + self.load_s
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.server_s.items())
        return (
            f"CPU while the MCP level at {sessions} sessions ran ({self.wall_s:.1f} s wall, "
            f"{cores} cores = {self.wall_s * cores:.1f} core-s): MCP server {parts}; sandbox "
            f"{self.sandbox_s:.1f} s; this load generator {self.load_s:.1f} s; other processes "
            f"on the machine {max(0.0, self.machine_s - ours):.1f} s; machine busy "
            f"{self.machine_s / (self.wall_s * cores) * 100:.0f} %"
        )


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Level:
    """One run of one concurrency level."""

    kind: str  # "mcp", "baseline" or "api" (the floor)
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


async def run_api_floor(api: SandboxApi, requests: int = API_FLOOR_REQUESTS) -> Level:
    """The floor the API sets: the tool's status GET sent straight to the sandbox, by one client,
    one request after another (after one unmeasured request that opens the connection)."""
    level = Level("api", 1, requests)
    headers = {"Authorization": f"Bearer {api.key}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=60) as http:

        async def get() -> None:
            (await http.get(STATUS_PATH)).raise_for_status()

        await get()
        started = time.perf_counter()
        for _ in range(requests):
            await _timed(level, get)
        level.elapsed_s = time.perf_counter() - started
    return level


async def api_requests_seen(api: SandboxApi) -> Counter[str]:
    """The sandbox's request log summed up: API requests by kind and status class."""
    async with httpx.AsyncClient(base_url=api.base_url, timeout=CONTROL_TIMEOUT_S) as http:
        log = (await http.get("/_sandbox/requests")).raise_for_status().json()["data"]
    seen: Counter[str] = Counter()
    for entry in log:
        kind = "status reads" if entry["path"].endswith("/status") else entry["path"]
        status = entry["status"]
        seen[f"{entry['method']} {kind} -> {f'{status // 100}xx' if status else 'dropped'}"] += 1
    return seen


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
    api_latency_ms: int | None = None  # None: the in-process sandbox
    api_floor: Level | None = None
    api_requests: Counter[str] | None = None
    server_cpu_s: float = 0.0  # the server's process tree, warm-up and baselines included
    server_calls: int = 0
    shares: CpuShares | None = None  # while the MCP level at the top session count ran

    @property
    def errors(self) -> list[str]:
        found = [e for runs in self.levels.values() for level in runs for e in level.errors]
        floor = self.api_floor.errors if self.api_floor else []
        return found + floor + (self.churn.errors if self.churn else [])


async def measure(
    server: ServerProcess,
    *,
    concurrency: Sequence[int],
    calls: int,
    repeats: int,
    churn_checkpoints: Sequence[int],
    mode: str,
    command: str = "",
    api: SandboxApi | None = None,
) -> Report:
    report = Report(command=command, mode=mode)
    sandbox_pid = api.process.pid if api is not None else None
    report.shares = CpuShares()
    cpu_before = tree_cpu_s(server.pid)
    # Warm-up (imports, first connections, the sandbox's first responses): not measured.
    await run_mcp_level(server.url, 2, 2, mode)
    await run_baseline_level(server.base, 2, 2)
    if api is not None:
        report.api_latency_ms = api.latency_ms
        report.api_floor = await run_api_floor(api)
    for _ in range(repeats):
        for n in concurrency:
            report.levels.setdefault(("baseline", n), []).append(
                await run_baseline_level(server.base, n, calls)
            )
            # At the top session count, where the CPU went is recorded too: it says whether
            # the server, the load generator or the rest of the machine set the tail.
            shares = report.shares if n == max(concurrency) and n > 1 else None
            before = shares.snapshot(server.pid, sandbox_pid) if shares else {}
            report.levels.setdefault(("mcp", n), []).append(
                await run_mcp_level(server.url, n, calls, mode)
            )
            if shares is not None:
                shares.add(before, shares.snapshot(server.pid, sandbox_pid))
    report.server_cpu_s = tree_cpu_s(server.pid) - cpu_before
    report.server_calls = sum(
        len(level.latencies_s)
        for (kind, _), runs in report.levels.items()
        if kind == "mcp"
        for level in runs
    )
    if churn_checkpoints:
        report.churn = await churn(server.url, server.pid, churn_checkpoints)
    if api is not None:
        report.api_requests = await api_requests_seen(api)
    return report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def describe_api(latency_ms: int | None) -> str:
    if latency_ms is None:
        return (
            "in-process sandbox (`--sandbox`, the fake API in the server's process), "
            "no added latency"
        )
    return (
        f"separate sandbox process (`onepin-mcp sandbox`, over loopback) with {latency_ms} ms "
        f"latency on every status read (fault: GET {STATUS_GLOB}, times null)"
    )


def render(report: Report) -> str:
    out = [
        f"command: {report.command}",
        f"client protocol mode: {report.mode}",
        f"OnePin API: {describe_api(report.api_latency_ms)}",
        "",
    ]
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
    if report.server_calls:
        out.append(
            f"server CPU (whole process tree, warm-up and /healthz baselines included): "
            f"{report.server_cpu_s:.1f} s for {report.server_calls} MCP calls, "
            f"{report.server_cpu_s * 1000 / report.server_calls:.1f} ms per call"
        )
    if report.shares is not None and report.shares.wall_s > 0:
        out.append(report.shares.render(max(n for _, n in report.levels)))
    if report.api_floor is not None:
        floor = report.api_floor
        out.append(
            f"API floor: the same status GET straight to the sandbox, one client, sequential, "
            f"{floor.calls} requests: p50 {floor.percentile_ms(0.5):.1f} ms, "
            f"p99 {floor.percentile_ms(0.99):.1f} ms, errors {len(floor.errors)}"
        )
    counts = sorted({n for kind, n in report.levels if kind == "mcp"})
    if 1 in counts and counts[-1] > 1:
        top = counts[-1]
        single = _median([x.percentile_ms(0.5) for x in report.levels[("mcp", 1)]])
        tail = _median([x.percentile_ms(0.99) for x in report.levels[("mcp", top)]])
        verdict = "met" if tail <= TARGET_RATIO * single else "missed"
        out.append(
            f"target: MCP p99 at {top} sessions <= {TARGET_RATIO:g} x the single-session MCP "
            f"p50: {tail:.1f} ms vs {TARGET_RATIO:g} x {single:.1f} = "
            f"{TARGET_RATIO * single:.1f} ms (ratio {tail / single:.1f}): {verdict}"
        )
    if report.churn is not None:
        churn = report.churn
        out.append("")
        if report.api_latency_ms is not None:
            out.append("(RSS of the MCP server's process alone; the sandbox runs in its own)")
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
    if report.api_requests is not None:
        seen = ", ".join(f"{what}: {n}" for what, n in sorted(report.api_requests.items()))
        out.append(
            f"\nAPI requests the sandbox saw (whole run, warm-up included): {seen or 'none'}"
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
    parser.add_argument("--api-latency-ms", type=int, default=0,
                        help="0 (default): in-process sandbox; N > 0: a separate sandbox "
                        "process whose status reads each take N ms more")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes (needs --stateless and "
                        "--api-latency-ms > 0; default 1)")  # fmt: skip
    parser.add_argument("--stateless", action="store_true",
                        help="serve Streamable HTTP without sessions (--stateless)")  # fmt: skip
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for everything")
    parser.add_argument("--quick", action="store_true", help="10 sessions x 5 calls, once")
    args = parser.parse_args(argv)
    if not 0 <= args.api_latency_ms <= 600_000:
        parser.error("--api-latency-ms must be between 0 and 600000")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and not (args.stateless and args.api_latency_ms > 0):
        parser.error("--workers N needs --stateless and --api-latency-ms > 0 (no --sandbox)")
    if args.quick:
        args.concurrency, args.calls, args.repeats, args.churn = "10", 5, 1, ""
    concurrency = [int(n) for n in args.concurrency.split(",") if n]
    checkpoints = [int(n) for n in args.churn.split(",") if n]
    command = " ".join(["python bench/load_http.py", *(argv if argv is not None else sys.argv[1:])])
    api = start_sandbox(args.api_latency_ms) if args.api_latency_ms > 0 else None
    sandbox_code: int | None = None
    try:
        flags = ("--stateless",) if args.stateless else ()
        if args.workers > 1:
            flags += ("--workers", str(args.workers))
        server = start_server(*flags, api=api)
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
                        api=api,
                    )

            report = anyio.run(run)
        finally:
            code = stop_server(server)
    finally:
        if api is not None:
            sandbox_code = stop_server(api.process)
    print(render(report))
    sandbox = f"; sandbox exit code: {sandbox_code}" if api is not None else ""
    print(
        f"server exit code: {code}{sandbox}; machine: {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    failed = report.errors or code != 0 or (api is not None and sandbox_code != 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
