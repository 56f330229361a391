"""Server CPU per HTTP call: onepin-mcp against a bare SDK server making the same request.

Run: `python bench/http_cpu.py` (from the project root, in its venv; loopback only, no network).
`--quick` runs a small version. `--tree PATH` also measures onepin-mcp imported from another
checkout (say, the commit before a change) in the same alternation, for a before/after in one
run. `--profile DIR` then profiles both servers in each mode under the same load, side by side:
each runs under cProfile switched on by a signal once it has been warmed up and off when the
load is done (so start-up is not in it), and the garbage collector's time is measured apart
(cProfile doesn't see it); the profiles are written to DIR (`python -m pstats FILE` reads
them), and the script prints own time per call by package, the functions that differ most,
and the collections per generation.

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
cost (identically for both servers). The table shows medians over `--repeats` repetitions, the
ratio onepin-mcp / bare of the medians and the range of the ratios of each repetition's two
back-to-back measurements; the target is a ratio of at most 1.2 in both modes. The CPU figures
have the kernel's tick resolution (10 ms) over each window: the more calls per repetition, the
finer they are.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import signal
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


def render(results: dict[str, list[Series]], args: argparse.Namespace) -> str:
    """One row per onepin-mcp server and mode, against that mode's bare server (its last
    series)."""
    out = [
        f"load: {args.sessions} sessions at once x {args.calls} `{TOOL}` calls each, "
        f"{args.repeats} repetitions per server, servers alternated; CPU = user + sys of the "
        f"server process from /proc, per call answered",
        "",
        "| mode | server | CPU ms/call | bare SDK CPU ms/call | ratio | ratio per repetition "
        "| target <= 1.2 | wall ms/call | bare wall ms/call | errors |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for mode, (*servers, bare) in results.items():
        b, wb = statistics.median(bare.ms_per_call), statistics.median(bare.wall_ms_per_call)
        for ours in servers:
            a, wa = statistics.median(ours.ms_per_call), statistics.median(ours.wall_ms_per_call)
            # A repetition's servers ran back to back: their ratio is the least drift-prone.
            pairwise = sorted(
                x / y for x, y in zip(ours.ms_per_call, bare.ms_per_call, strict=False)
            )
            spread = f"{pairwise[0]:.2f}-{pairwise[-1]:.2f}" if pairwise else "-"
            met = "met" if a <= TARGET_RATIO * b else "missed"
            out.append(
                f"| {mode} | {ours.server} | {a:.2f} | {b:.2f} | {a / b:.2f} | {spread} | {met} "
                f"| {wa:.2f} | {wb:.2f} | {len(ours.errors) + len(bare.errors)} |"
            )
    out.append(
        f"\n(medians; CPU time has the kernel's tick resolution, {1000 / CLOCK_TICKS:g} ms, "
        "summed over the whole window, so more calls per repetition mean a finer figure)"
    )
    return "\n".join(out)


def onepin_servers(args: argparse.Namespace, env: dict[str, str], mode: str) -> list[Child]:
    """This tree's onepin-mcp, and with `--tree` the same command importing another checkout."""
    flags = ["--stateless"] if mode == "stateless" else []
    serve = ["--transport", "streamable-http", "--port", "0", "--log-level", "warning"]
    children = [start(onepin_command(*serve, *flags), env, MCP_URL)]
    if args.tree is not None:
        # PYTHONPATH comes before the editable install's path entry, so `-m onepin_mcp` runs
        # the other checkout's package (with this venv's dependencies).
        other = {**env, "PYTHONPATH": str(args.tree)}
        argv = [sys.executable, "-m", "onepin_mcp", *serve, *flags]
        children.append(start(argv, other, MCP_URL))
    return children


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4, help="sessions at once (default 4)")
    parser.add_argument("--calls", type=int, default=150, help="calls per session (default 150)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per server")
    parser.add_argument("--modes", default=",".join(MODES), help="stateful,stateless")
    parser.add_argument(
        "--profile", metavar="DIR", help="also cProfile both servers per mode, into DIR"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="also measure onepin-mcp imported from this checkout (e.g. the commit before)",
    )
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for everything")
    parser.add_argument("--quick", action="store_true", help="2 sessions x 10 calls, twice")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.calls, args.repeats = 2, 10, 2
    if args.tree is not None:
        args.tree = args.tree.resolve()
        if not (args.tree / "onepin_mcp" / "__init__.py").exists():
            parser.error(f"--tree: no onepin_mcp package in {args.tree}")
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
    results: dict[str, list[Series]] = {}
    codes: list[int] = []
    names = ["onepin-mcp", *([f"onepin-mcp @ {args.tree}"] if args.tree else []), "bare"]
    try:
        for mode in modes:
            children = onepin_servers(args, pointed, mode)
            bare = start([sys.executable, str(bare_path), "http", mode], pointed, BARE_URL)
            children.append(bare)
            try:
                series = [Series(name, mode) for name in names]
                anyio.run(alternate, list(zip(children, series, strict=True)), args)
                results[mode] = series
            finally:
                for child in children[:-1]:
                    codes.append(terminate(child.launched))
                # The bare script has no signal handling of its own: SIGTERM ends it with -15.
                codes.append(0 if terminate(bare.launched) == -15 else 1)
        if args.profile:
            for mode in modes:
                profile(args, pointed, bare_path, mode)
    finally:
        codes.append(terminate(sandbox.launched))
    print(render(results, args))
    errors = [e for series in results.values() for s in series for e in s.errors]
    for error in errors[:10]:
        print(f"  {error}")
    print(f"exit codes: {codes}; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 1 if errors or any(codes) else 0


# --- profiling ------------------------------------------------------------------------------------

# Runs a server under cProfile switched on and off by signals, so that only the measured load is
# profiled (not the start, the imports or the warm-up): SIGUSR1 enables the profiler and touches
# FILE.on, SIGUSR2 disables it and writes FILE. argv: FILE, then `-m MODULE ARGS` or `PATH ARGS`.
PROFILED = """\
import cProfile, gc, json, os, runpy, signal, sys, time
out, target = sys.argv[1], sys.argv[2:]
profiler = cProfile.Profile()
# cProfile does not see the garbage collector: its time is measured apart, per generation.
collections = {"0": [0, 0.0], "1": [0, 0.0], "2": [0, 0.0]}
profiling = False
began = 0.0

def collecting(phase, info):
    global began
    if not profiling:
        return
    if phase == "start":
        began = time.thread_time()
    else:
        counted = collections[str(info["generation"])]
        counted[0] += 1
        counted[1] += time.thread_time() - began

def on(*_):
    global profiling
    profiling = True
    profiler.enable()
    open(out + ".on", "w").close()

def off(*_):
    global profiling
    profiler.disable()
    profiling = False
    with open(out + ".gc.json", "w") as written:
        json.dump(collections, written)
    profiler.dump_stats(out + ".tmp")
    os.replace(out + ".tmp", out)  # whole when it appears

gc.callbacks.append(collecting)
signal.signal(signal.SIGUSR1, on)
signal.signal(signal.SIGUSR2, off)
if target[0] == "-m":
    sys.argv = [target[1], *target[2:]]
    runpy.run_module(target[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = target
    runpy.run_path(target[0], run_name="__main__")
"""
# cProfile times by the wall clock; the one call that waits rather than works is left out.
IDLE_WAIT = "<method 'poll' of 'select.epoll' objects>"
# Where a function's time is counted, by the path of its source file (first match wins).
GROUPS = (
    ("onepin_mcp", "/onepin_mcp/"),
    ("mcp (SDK)", "/mcp/"),
    ("mcp_types", "/mcp_types/"),
    ("pydantic", "/pydantic"),
    ("starlette", "/starlette/"),
    ("sse_starlette", "/sse_starlette/"),
    ("uvicorn", "/uvicorn/"),
    ("h11", "/h11/"),
    ("httpx", "/httpx/"),
    ("httpcore", "/httpcore/"),
    ("anyio", "/anyio/"),
    ("asyncio", "/asyncio/"),
    ("logging", "/logging/"),
    ("json", "/json/"),
)


def profile(args: argparse.Namespace, env: dict[str, str], bare_path: Path, mode: str) -> None:
    """Both servers under cProfile in `mode`, the same load each (one repetition's worth, times
    `--repeats`), profiled only while it runs; the profiles written to `--profile DIR` and
    compared per call: time by package, and the functions whose own time differs most."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    runner = bare_path.with_name("profiled.py")
    runner.write_text(PROFILED, encoding="utf-8")
    flags = ["--stateless"] if mode == "stateless" else []
    serve = ["--transport", "streamable-http", "--port", "0", "--log-level", "warning"]
    servers = {
        "onepin-mcp": (["-m", "onepin_mcp", *serve, *flags], MCP_URL),
        "bare": ([str(bare_path), "http", mode], BARE_URL),
    }
    calls = args.sessions * args.calls * args.repeats
    stats: dict[str, pstats.Stats] = {}
    collected: dict[str, dict[str, list[float]]] = {}
    for name, (target, pattern) in servers.items():
        path = out / f"{name}-{mode}.prof"
        path.unlink(missing_ok=True)
        child = start([sys.executable, str(runner), str(path), *target], env, pattern)
        errors: list[str] = []
        try:
            anyio.run(load, child.url, 2, 3, errors)  # warm-up, not profiled
            os.kill(child.pid, signal.SIGUSR1)
            wait_for_file(path.with_name(path.name + ".on"))
            done = anyio.run(load, child.url, args.sessions, args.calls * args.repeats, errors)
            os.kill(child.pid, signal.SIGUSR2)
            wait_for_file(path)
        finally:
            terminate(child.launched)
        if done != calls or errors:
            raise SystemExit(f"profiling {name}: {done} of {calls} calls, errors {errors[:3]}")
        stats[name] = pstats.Stats(str(path))
        collected[name] = json.loads(path.with_name(path.name + ".gc.json").read_text())
    print(render_profiles(stats["onepin-mcp"], stats["bare"], calls, mode, out))
    print(render_collections(collected["onepin-mcp"], collected["bare"], calls))


def render_collections(
    ours: dict[str, list[float]], bare: dict[str, list[float]], calls: int
) -> str:
    """The garbage collector's CPU time per call, which cProfile does not attribute."""
    lines = [
        "\nGarbage collection (CPU time of the collections, not in the profile above):",
        "",
        "| generation | onepin-mcp collections | onepin-mcp us/call | bare collections "
        "| bare us/call |",
        "|---|---:|---:|---:|---:|",
    ]
    for generation in ("0", "1", "2"):
        (n, a), (m, b) = ours[generation], bare[generation]
        lines.append(
            f"| {generation} | {n:.0f} | {a * 1e6 / calls:.0f} | {m:.0f} | {b * 1e6 / calls:.0f} |"
        )
    return "\n".join(lines)


def wait_for_file(path: Path, deadline_s: float = 30.0) -> None:
    # A bench may poll: the file is the child's answer to a signal, with nothing to await.
    give_up = time.monotonic() + deadline_s
    while not path.exists():
        if time.monotonic() > give_up:
            raise SystemExit(f"{path} did not appear within {deadline_s} s")
        time.sleep(0.05)


def group_of(filename: str) -> str:
    for name, marker in GROUPS:
        if marker in filename:
            return name
    if filename == "~" or filename.startswith("<"):
        return "builtins (C)"
    return "other (stdlib, small deps)"


def own_times(stats: pstats.Stats) -> dict[str, float]:
    """Each function's own time (tottime) in seconds, keyed `file:line(name)`."""
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    table = stats.stats  # type: ignore[attr-defined]
    times: dict[str, float] = {}
    for (file, line, func), entry in table.items():
        if func == IDLE_WAIT:
            continue  # waiting for the network: wall time, not the server's work
        # Built-ins are named with their address, which differs between the two processes.
        key = f"{file}:{line}({re.sub(r' at 0x[0-9a-f]+', '', func)})"
        times[key] = times.get(key, 0.0) + entry[2]
    return times


def render_profiles(
    ours: pstats.Stats, bare: pstats.Stats, calls: int, mode: str, out: Path, top: int = 25
) -> str:
    a, b = own_times(ours), own_times(bare)
    per_call = 1e6 / calls  # seconds in total -> microseconds per call
    lines = [
        f"\nProfiles, {mode}: {calls} calls each, written to {out}/*-{mode}.prof; own time "
        "(cProfile tottime) per call in microseconds, cProfile's overhead included, the event "
        "loop's idle wait in epoll left out",
        "",
        "| where | onepin-mcp us/call | bare us/call | difference |",
        "|---|---:|---:|---:|",
    ]
    groups: dict[str, list[float]] = {}
    for times, column in ((a, 0), (b, 1)):
        for key, seconds in times.items():
            groups.setdefault(group_of(key), [0.0, 0.0])[column] += seconds
    for name, (x, y) in sorted(groups.items(), key=lambda item: -(item[1][0] - item[1][1])):
        lines.append(
            f"| {name} | {x * per_call:.0f} | {y * per_call:.0f} | {(x - y) * per_call:+.0f} |"
        )
    x, y = sum(a.values()), sum(b.values())
    lines.append(
        f"| **total** | {x * per_call:.0f} | {y * per_call:.0f} | {(x - y) * per_call:+.0f} |"
    )
    lines += [
        "",
        f"The {top} functions whose own time per call differs most (onepin-mcp - bare):",
        "",
        "| function | onepin-mcp us/call | bare us/call | difference |",
        "|---|---:|---:|---:|",
    ]
    keys = sorted(set(a) | set(b), key=lambda k: -abs(a.get(k, 0.0) - b.get(k, 0.0)))
    for key in keys[:top]:
        x, y = a.get(key, 0.0), b.get(key, 0.0)
        shown = re.sub(r"^.*/site-packages/|^.*/work/main/", "", key)
        lines.append(
            f"| `{shown}` | {x * per_call:.1f} | {y * per_call:.1f} | {(x - y) * per_call:+.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
