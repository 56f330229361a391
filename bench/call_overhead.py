"""Call overhead: one status read straight to the sandbox, and the same read as an MCP tool call.

Run: `python bench/call_overhead.py [--calls N]` (from the project root, in its venv; loopback
only, no network, bounded by a call count and a deadline).

It starts `onepin-mcp sandbox --port 0 --manual-clock` (the manual clock keeps the seeded run
frozen, so every answer is the same), then, against that one sandbox process:

  (a) direct: `GET /api/v1/workflows/{wf}/runs/{run}/status` with the key, from one keep-alive
      `httpx.AsyncClient` - what any client pays for the read itself;
  (b) stdio: the tool `get_run_status` through `onepin-mcp` as a child process on stdio (the
      SDK's `Client`), the server pointed at the sandbox with ONEPIN_BASE_URL / ONEPIN_API_KEY;
  (c) http: the same tool through `onepin-mcp --transport streamable-http --port 0`, also
      pointed at the sandbox;
  (d) bare stdio: the floor the SDK sets - a bare `mcp` server (written to a temp file now) whose
      one tool makes the (a) request with one keep-alive `httpx.AsyncClient` and returns the
      API's `data` as it is, on stdio through the same `Client`;
  (e) bare http: the same bare server's Streamable HTTP app, served by uvicorn on loopback.

(b), (c) and (d) each make exactly one (a)-like request inside, so b - a and c - a are the MCP
server's cost per call (JSON-RPC, validation, the view, the transport) plus the client's, and
b - d and c - e are what onepin-mcp itself adds over the SDK on the same transport.
After a warm-up, the three are timed interleaved (a, b, c, a, b, c, ...) so that a load spike on
this shared machine lands on all three alike rather than on whichever block ran during it.

Beside each latency, the serving process's own CPU time per call (user + system from /proc,
read before and after the timed calls): a latency includes the client's work too, and the SDK's
client checks a structured result against the tool's output schema, which onepin-mcp's tools
publish and the bare tool (returning a plain dict) does not.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_http import children_of, tree_cpu_s  # noqa: E402 - after the path is set
from onepin_mcp.sandbox import seed  # noqa: E402
from tests.support.processes import Launched, launch_announcing, terminate  # noqa: E402

START_DEADLINE_S = 30.0
TOOL = "get_run_status"
WORKFLOW_ID = seed.WORKFLOW_COMPLETES_ID
RUN_ID = seed.RUN_COMPLETED_ID
SANDBOX_URL = re.compile(r"ONEPIN_BASE_URL=(http://127\.0\.0\.1:\d+)")
SANDBOX_KEY = re.compile(r"ONEPIN_API_KEY=(\S+)")
BARE_SERVER = """\
import os
import socket
import sys

import httpx
from mcp.server import MCPServer

BASE = os.environ["ONEPIN_BASE_URL"] + "/api/v1"
HEADERS = {"Authorization": "Bearer " + os.environ["ONEPIN_API_KEY"]}
http = httpx.AsyncClient(timeout=30)
# At warning, as onepin-mcp runs here: a log line per request would be measured as cost.
server = MCPServer("bare", log_level="WARNING")


@server.tool()
async def get_run_status(workflow_id: str, run_id: str) -> dict:
    url = f"{BASE}/workflows/{workflow_id}/runs/{run_id}/status"
    response = await http.get(url, headers=HEADERS)
    response.raise_for_status()
    return response.json()["data"]


if sys.argv[1:2] == ["http"]:
    import uvicorn

    # Port 0 on a socket bound here, so the address can be announced like onepin-mcp's.
    # IPPROTO_TCP named, as getaddrinfo names it for onepin-mcp's socket: asyncio turns Nagle's
    # algorithm off (TCP_NODELAY) only on sockets whose proto says TCP, and a plain
    # socket.socket() says 0. Left on, each answer's last write waited for the client's delayed
    # ACK: about 40 ms a call, which this bench once measured as the SDK's HTTP floor.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    print(f"bare: serving at http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)
    # `http stateless`: the SDK's stateless mode, for the side-by-side of bench/http_cpu.py.
    app = server.streamable_http_app(stateless_http=sys.argv[2:] == ["stateless"])
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[listener])
else:
    server.run()
"""
BARE_URL = re.compile(r"bare: serving at (http://127\.0\.0\.1:\d+/mcp)")
MCP_URL = re.compile(r"serving MCP over streamable-http at (http://127\.0\.0\.1:\d+/\S*)")


# --- child processes ------------------------------------------------------------------------------


def onepin_command(*args: str) -> list[str]:
    """The console script beside the interpreter (how users start it), else `python -m`."""
    script = Path(sys.executable).with_name("onepin-mcp")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "onepin_mcp", *args]


def clean_env(home: str, **extra: str) -> dict[str, str]:
    # Children get only what they need: no developer key or credentials file can leak in, and
    # the same environment serves all three paths.
    return {"PATH": os.environ.get("PATH", ""), "HOME": home, "PYTHONUNBUFFERED": "1", **extra}


def start_child(
    argv: Sequence[str], env: dict[str, str], patterns: Sequence[re.Pattern[str]]
) -> tuple[Launched, list[str]]:
    """Start `argv` and wait (bounded) until every pattern has matched a stderr line; return the
    child and each pattern's first group."""
    return launch_announcing(
        argv, env=env, patterns=patterns, deadline_s=START_DEADLINE_S, cwd=ROOT
    )


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    latencies_s: list[float] = field(default_factory=list)
    # The serving process's user + system CPU over the timed calls, per call (None: no server
    # process of its own, the direct path).
    server_cpu_s: float | None = None

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile: an observed value, no interpolation."""
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def stdio_child(params: StdioServerParameters) -> int:
    """The pid of this process's child started from `params` (the SDK's Client starts it and
    doesn't say), found by its command line in /proc."""
    name = Path(params.command).name
    for pid in children_of(os.getpid()):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        # A console script runs as `python <script> args...`: the args after the command, and
        # exactly those (the HTTP server's end with the same `--log-level warning`).
        starts = [i for i, part in enumerate(argv) if Path(part).name == name]
        if any(argv[i + 1 :] == list(params.args) for i in starts):
            return pid
    raise RuntimeError(f"no child process runs {params.command} {' '.join(params.args)}")


async def measure(
    sandbox_url: str,
    key: str,
    mcp_url: str,
    stdio: StdioServerParameters,
    bare: StdioServerParameters,
    bare_url: str,
    http_pids: tuple[int, int],
    calls: int,
    warmup: int,
) -> list[Series]:
    status_url = f"{sandbox_url}/api/v1/workflows/{WORKFLOW_ID}/runs/{RUN_ID}/status"
    arguments = {"workflow_id": WORKFLOW_ID, "run_id": RUN_ID}
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        Client(stdio, read_timeout_seconds=30) as over_stdio,
        Client(mcp_url, read_timeout_seconds=30) as over_http,
        Client(bare, read_timeout_seconds=30) as bare_stdio,
        Client(bare_url, read_timeout_seconds=30) as bare_http,
    ):

        async def direct() -> None:
            response = await http.get(status_url, headers=headers)
            response.raise_for_status()

        def tool_call(client: Client) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                result = await client.call_tool(TOOL, arguments)
                # A failed call would be cheap and flatter the figures: stop instead.
                if result.is_error:
                    raise RuntimeError(f"{TOOL} failed: {result.content}")

            return call

        paths = [
            (Series("(a) direct httpx"), direct),
            (Series("(b) MCP stdio"), tool_call(over_stdio)),
            (Series("(c) MCP streamable-http"), tool_call(over_http)),
            (Series("(d) bare SDK server, stdio"), tool_call(bare_stdio)),
            (Series("(e) bare SDK server, streamable-http"), tool_call(bare_http)),
        ]
        # Warm-up, not recorded: connections, first-call imports and caches on both sides.
        for _ in range(warmup):
            for _, call in paths:
                await call()
        # Each MCP path has a server process of its own: its CPU over the timed calls is what
        # serving them cost, without the client's share (the SDK client checks a structured
        # result against the tool's output schema, which the bare tool doesn't publish).
        servers = [None, stdio_child(stdio), http_pids[0], stdio_child(bare), http_pids[1]]
        before = [None if pid is None else tree_cpu_s(pid) for pid in servers]
        for _ in range(calls):
            for series, call in paths:
                series.latencies_s.append(await timed(call))
        for (series, _), pid, start in zip(paths, servers, before, strict=True):
            if pid is not None and start is not None:
                series.server_cpu_s = (tree_cpu_s(pid) - start) / calls
    return [series for series, _ in paths]


def render(series: list[Series]) -> str:
    base = series[0]
    out = [
        "| path | calls | median ms | p95 ms | median - (a) ms | p95 - (a) ms | median / (a) "
        "| server CPU ms/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in series:
        med, p95 = s.median_ms, s.percentile_ms(0.95)
        cpu = "-" if s.server_cpu_s is None else f"{s.server_cpu_s * 1000:.3f}"
        if s is base:
            out.append(
                f"| {s.name} | {len(s.latencies_s)} | {med:.3f} | {p95:.3f} | - | - | 1 | {cpu} |"
            )
            continue
        diff = f"{med - base.median_ms:+.3f} | {p95 - base.percentile_ms(0.95):+.3f}"
        out.append(
            f"| {s.name} | {len(s.latencies_s)} | {med:.3f} | {p95:.3f} | {diff} "
            f"| {med / base.median_ms:.2f} | {cpu} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per path (300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per path first (20)")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for everything")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join(["python bench/call_overhead.py", *given])
    home = tempfile.mkdtemp(prefix="onepin-bench-home-")
    children: list[Launched] = []
    try:
        sandbox, (sandbox_url, key) = start_child(
            onepin_command("sandbox", "--port", "0", "--manual-clock"),
            clean_env(home),
            [SANDBOX_URL, SANDBOX_KEY],
        )
        children.append(sandbox)
        # Both servers log at warning: an info line per call would be measured as server cost.
        pointed = clean_env(home, ONEPIN_BASE_URL=sandbox_url, ONEPIN_API_KEY=key)
        http_server, (mcp_url,) = start_child(
            onepin_command(
                "--transport", "streamable-http", "--port", "0", "--log-level", "warning"
            ),
            pointed,
            [MCP_URL],
        )
        children.append(http_server)
        argv_stdio = onepin_command("--log-level", "warning")
        stdio = StdioServerParameters(command=argv_stdio[0], args=argv_stdio[1:], env=pointed)
        bare_path = Path(home) / "bare_server.py"
        bare_path.write_text(BARE_SERVER, encoding="utf-8")
        bare = StdioServerParameters(command=sys.executable, args=[str(bare_path)], env=pointed)
        bare_http, (bare_url,) = start_child(
            [sys.executable, str(bare_path), "http"], pointed, [BARE_URL]
        )
        children.append(bare_http)

        async def run() -> list[Series]:
            with anyio.fail_after(args.deadline):
                return await measure(
                    sandbox_url,
                    key,
                    mcp_url,
                    stdio,
                    bare,
                    bare_url,
                    (http_server.process.pid, bare_http.process.pid),
                    args.calls,
                    args.warmup,
                )

        started = time.perf_counter()
        series = anyio.run(run)
        elapsed = time.perf_counter() - started
    finally:
        # The stdio child is the Client's own and ends with its context; these two are ours.
        for child in reversed(children):
            terminate(child)
    print(f"command: {command}")
    print(f"read: {TOOL}({WORKFLOW_ID}, {RUN_ID}) vs GET .../runs/{{run}}/status")
    print(render(series))
    print()
    for label, onepin, floor in (
        ("stdio (b - d)", series[1], series[3]),
        ("streamable-http (c - e)", series[2], series[4]),
    ):
        print(
            f"onepin-mcp over the bare SDK server, {label}: median "
            f"{onepin.median_ms - floor.median_ms:+.3f} ms, p95 "
            f"{onepin.percentile_ms(0.95) - floor.percentile_ms(0.95):+.3f} ms, ratio "
            f"{onepin.median_ms / floor.median_ms:.2f}; server CPU per call "
            f"{((onepin.server_cpu_s or 0) - (floor.server_cpu_s or 0)) * 1000:+.3f} ms"
        )
    print(
        f"\n{args.calls} calls per path after {args.warmup} warm-up, interleaved, {elapsed:.1f} s; "
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
