"""Server CPU per HTTP call: onepin-mcp against a bare SDK server making the same request.

Run: `python bench/http_cpu.py` (from the project root, in its venv; loopback only, no network).
`--quick` runs a small version; `--profile FILE` also writes a cProfile of one onepin-mcp
server process under the same load (`python -m pstats FILE` to read it).

One `onepin-mcp sandbox --port 0 --manual-clock` process is the OnePin API for every server.
For each Streamable HTTP mode (stateful: sessions; stateless: `--stateless`), two servers run
side by side as child processes on loopback, pointed at that sandbox through ONEPIN_BASE_URL and
ONEPIN_API_KEY, both logging at warning:

* onepin-mcp: `onepin-mcp --transport streamable-http --port 0 [--stateless]`;
* bare: a minimal `mcp` MCPServer (written to a temp file at run time) with one tool,
  `get_run_status`, that makes the same status GET with one keep-alive httpx client and returns
  the API's `data` unchanged, served as the SDK's Streamable HTTP app by uvicorn.

The same client load is sent to each, alternately (onepin, bare, onepin, ...), so load spikes
from other processes hit both alike: `--sessions` MCP client sessions at once (the SDK's
`Client`, protocol 2025-11-25), each calling `get_run_status` on the seeded completed run
`--calls` times. A server's CPU time for a repetition is user + system time from
`/proc/<pid>/stat` read just before and just after, divided by the calls made; sessions are
opened inside the window, so a session's initialize and close count as part of its calls'
cost (identically for both servers). The table shows medians over `--repeats` repetitions and
the ratio onepin-mcp / bare; the target is a ratio of at most 1.2 in both modes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from mcp import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.call_overhead import (  # noqa: E402 - after the path is set
    BARE_SERVER,
    BARE_URL,
    MCP_URL,
    SANDBOX_KEY,
    SANDBOX_URL,
    clean_env,
    onepin_command,
    start_child,
)
from bench.load_http import tree_cpu_s  # noqa: E402
from onepin_mcp.sandbox import seed  # noqa: E402
from tests.support.processes import Launched, terminate  # noqa: E402

TARGET_RATIO = 1.2
TOOL = "get_run_status"
TOOL_ARGS = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
MODES = ("stateful", "stateless")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    launched: Launched
    values: list[str]

    @property
    def pid(self) -> int:
        return self.launched.process.pid

    @property
    def url(self) -> str:
        return self.values[0]


def start(argv: Sequence[str], env: dict[str, str], *patterns: re.Pattern[str]) -> Child:
    return Child(*start_child(argv, env, patterns))


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Series:
    server: str
    mode: str
    ms_per_call: list[float] = field(default_factory=list)
    wall_ms_per_call: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def load(url: str, sessions: int, calls: int, errors: list[str]) -> int:
    """`sessions` concurrent sessions of `calls` tool calls each; the calls answered."""
    done = 0

    async def session() -> None:
        nonlocal done
        try:
            async with Client(url, mode="legacy", read_timeout_seconds=60) as client:
                for _ in range(calls):
                    result = await client.call_tool(TOOL, TOOL_ARGS)
                    if result.is_error:
                        errors.append(f"tool error: {result.content}"[:300])
                    else:
                        done += 1
        except Exception as exc:  # counted; the text says which
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    async with anyio.create_task_group() as tasks:
        for _ in range(sessions):
            tasks.start_soon(session)
    return done


async def measure_once(child: Child, series: Series, sessions: int, calls: int) -> None:
    before, started = tree_cpu_s(child.pid), time.perf_counter()
    done = await load(child.url, sessions, calls, series.errors)
    wall, after = time.perf_counter() - started, tree_cpu_s(child.pid)
    if done:
        series.ms_per_call.append((after - before) * 1000 / done)
        series.wall_ms_per_call.append(wall * 1000 / done)


async def alternate(pairs: list[tuple[Child, Series]], args: argparse.Namespace) -> None:
    """A warm-up per server (not measured), then the servers measured in turn, repeatedly."""
    with anyio.fail_after(args.deadline):
        for child, series in pairs:
            await load(child.url, 2, 3, series.errors)
            series.errors.clear()
        for _ in range(args.repeats):
            for child, series in pairs:
                await measure_once(child, series, args.sessions, args.calls)


def render(results: dict[str, tuple[Series, Series]], args: argparse.Namespace) -> str:
    out = [
        f"load: {args.sessions} sessions at once x {args.calls} `{TOOL}` calls each, "
        f"{args.repeats} repetitions per server, servers alternated; CPU = user + sys of the "
        f"server process from /proc, per call answered",
        "",
        "| mode | onepin-mcp CPU ms/call | bare SDK CPU ms/call | ratio | target <= 1.2 "
        "| onepin wall ms/call | bare wall ms/call | errors |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for mode, (ours, bare) in results.items():
        a, b = statistics.median(ours.ms_per_call), statistics.median(bare.ms_per_call)
        wa, wb = statistics.median(ours.wall_ms_per_call), statistics.median(bare.wall_ms_per_call)
        met = "met" if a <= TARGET_RATIO * b else "missed"
        out.append(
            f"| {mode} | {a:.2f} | {b:.2f} | {a / b:.2f} | {met} | {wa:.2f} | {wb:.2f} "
            f"| {len(ours.errors) + len(bare.errors)} |"
        )
    out.append(
        f"\n(medians; CPU time has the kernel's tick resolution, {1000 / CLOCK_TICKS:g} ms, "
        "summed over the whole window, so more calls per repetition mean a finer figure)"
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4, help="sessions at once (default 4)")
    parser.add_argument("--calls", type=int, default=50, help="calls per session (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per server")
    parser.add_argument("--modes", default=",".join(MODES), help="stateful,stateless")
    parser.add_argument("--profile", metavar="FILE", help="also cProfile one onepin-mcp server")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for everything")
    parser.add_argument("--quick", action="store_true", help="2 sessions x 10 calls, twice")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.calls, args.repeats = 2, 10, 2
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    home = tempfile.mkdtemp(prefix="onepin-http-cpu-")
    bare_path = Path(home) / "bare_server.py"
    bare_path.write_text(BARE_SERVER, encoding="utf-8")
    sandbox = start(
        onepin_command("sandbox", "--port", "0", "--manual-clock", "--log-level", "warning"),
        clean_env(home),
        SANDBOX_URL,
        SANDBOX_KEY,
    )
    pointed = clean_env(home, ONEPIN_BASE_URL=sandbox.values[0], ONEPIN_API_KEY=sandbox.values[1])
    results: dict[str, tuple[Series, Series]] = {}
    codes: list[int] = []
    try:
        for mode in modes:
            flags = ["--stateless"] if mode == "stateless" else []
            serve = ["--transport", "streamable-http", "--port", "0", "--log-level", "warning"]
            ours = start(onepin_command(*serve, *flags), pointed, MCP_URL)
            bare = start([sys.executable, str(bare_path), "http", mode], pointed, BARE_URL)
            try:
                pair = (Series("onepin-mcp", mode), Series("bare", mode))

                anyio.run(alternate, [(ours, pair[0]), (bare, pair[1])], args)
                results[mode] = pair
            finally:
                codes.append(terminate(ours.launched))
                # The bare script has no signal handling of its own: SIGTERM ends it with -15.
                codes.append(0 if terminate(bare.launched) == -15 else 1)
        if args.profile:
            profile(args, pointed)
    finally:
        codes.append(terminate(sandbox.launched))
    print(render(results, args))
    errors = [e for pair in results.values() for s in pair for e in s.errors]
    for error in errors[:10]:
        print(f"  {error}")
    print(f"exit codes: {codes}; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 1 if errors or any(codes) else 0


def profile(args: argparse.Namespace, env: dict[str, str]) -> None:
    """One stateless onepin-mcp server under cProfile, the same load once; the profile written
    when it stops (uvicorn's shutdown on SIGTERM is a normal exit, so cProfile saves it)."""
    argv = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "onepin_mcp"]
    serve = ["--transport", "streamable-http", "--port", "0", "--log-level", "warning"]
    child = start([*argv, *serve, "--stateless"], env, MCP_URL)
    errors: list[str] = []
    try:
        anyio.run(load, child.url, args.sessions, args.calls * args.repeats, errors)
    finally:
        terminate(child.launched)
    print(f"profile of {args.sessions * args.calls * args.repeats} calls: {args.profile}")


if __name__ == "__main__":
    sys.exit(main())
