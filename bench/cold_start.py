"""Cold start: process start to the first `tools/list` answer over stdio, against the SDK's floor.

Run: `python bench/cold_start.py [--runs N]` (from the project root, in its venv; no network,
bounded by a run count and a deadline per start).

As a user installs it: `python bench/cold_start.py --fresh-venv` builds the wheel from this tree
(`pip wheel --no-deps`), makes a venv in a temporary directory, installs only that wheel there
(its dependencies come from the package index, so this one needs the network) and measures both
servers in that venv; the directory is removed at the end. `--python V/bin/python` measures in a
venv made beforehand instead.

Two servers, each started N times, interleaved (onepin, bare, onepin, bare, ...) so that load on
this shared machine hits both alike, after one untimed start each (the OS file cache and .pyc
files are warm for both, as on a user's second start):

  onepin-mcp  the console script, with no API key and an empty HOME (tools/list makes no API
              call; the server starts and warns), default log level, as a user starts it;
  bare        a bare `mcp` MCPServer with one trivial tool, written to a temp file now: the
              floor the SDK itself sets (interpreter, `mcp` and its dependencies).

Each start is timed from just before `Popen` to the `tools/list` result: the client side is a
few lines of JSON-RPC on the pipes (initialize, initialized, tools/list), not the SDK client, so
that the client's own imports and event loop are not in the figure.

Then an import-time breakdown (`python -X importtime`), medians of a few runs, of:
`import onepin_mcp.server`, `import onepin_mcp.__main__`, and a real stdio start of
`python -m onepin_mcp` answering tools/list (which includes the lazy imports done while serving),
with the bare server's stdio start beside it. Self times are summed per package group, and for the
heavy packages the script names which module first imported them on the stdio start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0
# Building the wheel and installing it with its dependencies (downloaded the first time).
SETUP_DEADLINE_S = 600.0
PROTOCOL = "2025-11-25"

BARE_SERVER = """\
from mcp.server import MCPServer

s = MCPServer("bare")


@s.tool()
def ping() -> str:
    return "pong"


s.run()
"""

# Package groups for the import breakdown, first match wins (so the sandbox is not counted under
# onepin_mcp). Everything else is the standard library or a small dependency: "other".
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("onepin_mcp.sandbox", ("onepin_mcp.sandbox",)),
    ("onepin_mcp (rest)", ("onepin_mcp",)),
    ("mcp + mcp_types", ("mcp", "mcp_types")),
    ("pydantic + core", ("pydantic", "pydantic_core", "pydantic_settings", "annotated_types")),
    ("httpx + httpcore", ("httpx", "httpcore", "h11", "h2", "certifi", "idna")),
    ("starlette + sse", ("starlette", "sse_starlette")),
    ("uvicorn", ("uvicorn",)),
    ("anyio", ("anyio", "sniffio")),
    ("jsonschema", ("jsonschema", "jsonschema_specifications", "referencing", "rpds")),
]
# Packages a stdio start could do without, and the big ones worth naming an importer for.
WATCHED = (
    "onepin_mcp.sandbox",
    "onepin_mcp.http",
    "onepin_mcp.http_auth",
    "onepin_mcp.http_guards",
    "onepin_mcp.serving",
    "uvicorn",
    "starlette",
    "sse_starlette",
    "httpx",
    "pydantic",
    "jsonschema",
    "mcp_types",
    "mcp.client",
    "mcp.server.streamable_http",
    "mcp.server.auth",
)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


STDLIB = frozenset(sys.stdlib_module_names) | {"_distutils_hack", "sitecustomize"}


def package_ms(trace: Trace, package: str) -> float | None:
    """Self times of every module of `package` summed, in ms; None when it was not imported."""
    if package not in trace.self_us:
        return None
    return sum(us for m, us in trace.self_us.items() if in_package(m, package)) / 1000


def group_of(module: str) -> str:
    for name, packages in GROUPS:
        if any(in_package(module, p) for p in packages):
            return name
    return "other (stdlib, small deps)"


# --- one stdio start ------------------------------------------------------------------------------


def onepin_argv(python: str) -> list[str]:
    script = Path(python).with_name("onepin-mcp")
    return [str(script)] if script.exists() else [python, "-m", "onepin_mcp"]


def clean_env(home: str) -> dict[str, str]:
    # No ONEPIN_API_KEY and an empty HOME: no developer credentials reach the child, and the
    # start does no network work. PYTHONDONTWRITEBYTECODE is not set: .pyc files are used, as
    # by an installed package.
    return {"PATH": os.environ.get("PATH", ""), "HOME": home}


@dataclass
class Start:
    seconds: float
    tools: int
    stderr: str


class Lines:
    """Newline-delimited JSON-RPC from the child's stdout, each read bounded by a deadline."""

    def __init__(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.deadline = deadline
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stream, selectors.EVENT_READ)

    def message(self, want_id: int) -> dict[str, object]:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                message = json.loads(line)
                if isinstance(message, dict) and message.get("id") == want_id:
                    return message
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not self.selector.select(timeout=remaining):
                raise TimeoutError(f"no answer to request {want_id} within the deadline")
            chunk = os.read(self.stream.fileno(), 65536)
            if not chunk:
                raise EOFError(f"the server closed stdout before answering request {want_id}")
            self.buffer += chunk

    def close(self) -> None:
        self.selector.close()


def send(process: subprocess.Popen[bytes], *messages: dict[str, object]) -> None:
    assert process.stdin is not None
    process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    process.stdin.flush()


def stdio_start(argv: Sequence[str], env: dict[str, str]) -> Start:
    """Start `argv`, initialize, list tools; the time from Popen to the tools/list answer."""
    # stderr to a file, not a pipe: nothing has to drain it, and it is there for diagnostics
    # (and for -X importtime output).
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        lines = Lines(process, time.monotonic() + START_DEADLINE_S)
        try:
            send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "cold_start", "version": "1"},
            }})  # fmt: skip
            answer = lines.message(1)
            if "result" not in answer:
                raise RuntimeError(f"initialize failed: {answer}")
            send(
                process,
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
            )
            listed = lines.message(2)
            elapsed = time.perf_counter() - started
            result = listed.get("result")
            if not isinstance(result, dict) or not result.get("tools"):
                raise RuntimeError(f"tools/list failed: {listed}")
            tools = len(result["tools"])
        finally:
            lines.close()
            stop(process)
        stderr.seek(0)
        return Start(elapsed, tools, stderr.read().decode(errors="replace"))


def stop(process: subprocess.Popen[bytes]) -> None:
    """Close stdin (a stdio server's normal end), then SIGTERM, then SIGKILL; all bounded."""
    if process.stdin is not None and not process.stdin.closed:
        # The child may already be gone; its exit is what we want anyway.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    try:
        process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_S)
    if process.stdout is not None:
        process.stdout.close()


# --- import time ----------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass
class Trace:
    """One -X importtime trace: per module self and cumulative µs, and who imported it first."""

    self_us: dict[str, int] = field(default_factory=dict)
    cumulative_us: dict[str, int] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)

    @property
    def total_us(self) -> int:
        return sum(self.self_us.values())

    def chain(self, module: str) -> list[str]:
        """The import chain from a root to `module` (root first)."""
        out = [module]
        # A module imported twice (dropped from sys.modules, then re-imported) can make the
        # parent map cyclic: stop at the first repeat.
        while (up := self.parent.get(out[-1])) is not None and up not in out:
            out.append(up)
        return out[::-1]


def parse_trace(stderr: str) -> Trace:
    trace = Trace()
    # Lines come children first; a line at depth d belongs to the next line at depth d - 1.
    entries = []
    for line in stderr.splitlines():
        if match := IMPORT_LINE.match(line):
            depth = (len(match.group(3)) - 1) // 2
            entries.append((int(match.group(1)), int(match.group(2)), depth, match.group(4)))
    stack: list[str] = []  # the open ancestors, walking the lines backwards
    for self_us, cumulative_us, depth, module in reversed(entries):
        del stack[depth:]
        trace.self_us[module] = self_us
        trace.cumulative_us[module] = cumulative_us
        trace.parent[module] = stack[-1] if stack else None
        stack.append(module)
    return trace


def import_trace(argv: Sequence[str], env: dict[str, str], *, serve: bool) -> Trace:
    if serve:
        return parse_trace(stdio_start(argv, env).stderr)
    done = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=START_DEADLINE_S, check=True
    )
    return parse_trace(done.stderr)


def groups_ms(trace: Trace) -> dict[str, float]:
    sums: dict[str, float] = {}
    for module, us in trace.self_us.items():
        name = group_of(module)
        sums[name] = sums.get(name, 0.0) + us / 1000
    return sums


def median_groups(traces: list[Trace]) -> dict[str, float]:
    names = {name for t in traces for name in groups_ms(t)}
    per = [groups_ms(t) for t in traces]
    return {name: statistics.median(g.get(name, 0.0) for g in per) for name in names}


# --- a venv with only the wheel -------------------------------------------------------------------


def fresh_venv(scratch: Path) -> tuple[str, str]:
    """Build the wheel from this tree and install it alone in a new venv under `scratch`.

    Returns the venv's interpreter and the wheel's file name. pip's and venv's output goes to
    stderr, so the report on stdout stays the report.
    """
    wheels = scratch / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        stdout=sys.stderr,
        timeout=SETUP_DEADLINE_S,
    )
    [wheel] = wheels.glob("onepin_mcp-*.whl")
    venv = scratch / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, stdout=sys.stderr, timeout=60
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        stdout=sys.stderr,
        timeout=SETUP_DEADLINE_S,
    )
    return str(python), wheel.name


STORED_SCHEMAS_CHECK = """\
try:
    from onepin_mcp.tool_schemas import stored_schemas
except ImportError:
    print("none (derived at every start)")
else:
    print("fresh" if stored_schemas() is not None else "STALE: derived at every start")
"""


def stored_schemas_state(python: str) -> str:
    """Whether `python`'s onepin-mcp lists its tools from stored schemas: a stale copy (the tree
    changed after `scripts/update_docs.py` last stored them) makes every start derive them."""
    done = subprocess.run(
        [python, "-c", STORED_SCHEMAS_CHECK], capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip() or f"unknown ({done.stderr.strip()[-200:]})"


def installed(python: str) -> list[str]:
    """The distributions in `python`'s environment, as name==version."""
    listing = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return listing.stdout.split()


# --- the run --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed starts per server (10)")
    parser.add_argument("--import-runs", type=int, default=3, help="-X importtime runs each (3)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the environment to start both servers in (default: this one); "
        "e.g. a fresh venv with only the wheel installed, as a user has it",
    )
    parser.add_argument(
        "--compare-python",
        metavar="PY",
        help="also start the onepin-mcp of another environment in the same loop (e.g. a venv "
        "holding a wheel of an older tree): before and after side by side, against one bare",
    )
    parser.add_argument(
        "--fresh-venv",
        action="store_true",
        help="build the wheel from this tree, install it alone in a new temporary venv and "
        "measure there (needs the package index for the dependencies)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.import_runs < 1:
        parser.error("--runs and --import-runs must be at least 1")
    if args.fresh_venv and args.python != sys.executable:
        parser.error("--fresh-venv makes its own venv: give it or --python, not both")
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join(["python bench/cold_start.py", *given])
    with tempfile.TemporaryDirectory(prefix="onepin-cold-") as scratch:
        if args.fresh_venv:
            py, wheel = fresh_venv(Path(scratch))
            # What the venv holds, to show it is the wheel and its dependencies and nothing else.
            environment = f"a fresh venv holding {wheel}: {' '.join(installed(py))}"
        else:
            py = args.python
            environment = py
        return measure(args, command, py, environment, Path(scratch))


def measure(
    args: argparse.Namespace,
    command: str,
    py: str,
    environment: str,
    scratch_dir: Path,
) -> int:
    with tempfile.TemporaryDirectory(prefix="starts-", dir=scratch_dir) as scratch:
        bare_path = Path(scratch) / "bare_server.py"
        bare_path.write_text(BARE_SERVER, encoding="utf-8")
        home = Path(scratch) / "home"
        home.mkdir()
        env = clean_env(str(home))
        servers = {"onepin-mcp": onepin_argv(py), "bare mcp": [py, str(bare_path)]}
        if args.compare_python:
            servers["onepin-mcp (compared)"] = onepin_argv(args.compare_python)

        # Untimed first start of each: compiles the bare server's .pyc and warms the file cache.
        tools = {name: stdio_start(cmd, env).tools for name, cmd in servers.items()}
        times: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.runs):
            for name, cmd in servers.items():
                times[name].append(stdio_start(cmd, env).seconds)

        imp = [py, "-X", "importtime"]
        traces: dict[str, list[Trace]] = {
            "import onepin_mcp.server": [],
            "import onepin_mcp.__main__": [],
            "onepin-mcp stdio start": [],
            "bare mcp stdio start": [],
        }
        for _ in range(args.import_runs):
            traces["import onepin_mcp.server"].append(
                import_trace([*imp, "-c", "import onepin_mcp.server"], env, serve=False)
            )
            traces["import onepin_mcp.__main__"].append(
                import_trace([*imp, "-c", "import onepin_mcp.__main__"], env, serve=False)
            )
            traces["onepin-mcp stdio start"].append(
                import_trace([*imp, "-m", "onepin_mcp"], env, serve=True)
            )
            traces["bare mcp stdio start"].append(
                import_trace([*imp, str(bare_path)], env, serve=True)
            )

    print(f"command: {command}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"environment: {environment}")
    print(f"stored tool schemas: {stored_schemas_state(py)}")
    if args.compare_python:
        print(f"compared: onepin-mcp of {args.compare_python}")
        print(f"compared's stored tool schemas: {stored_schemas_state(args.compare_python)}")
    print()
    print("| server | tools | runs | median ms | min ms | max ms | median / bare |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    bare = statistics.median(times["bare mcp"])
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"| {name} | {tools[name]} | {len(values)} | {med * 1000:.0f} | "
            f"{min(values) * 1000:.0f} | {max(values) * 1000:.0f} | {med / bare:.2f} |"
        )

    print(f"\nImport time by package group, ms (self times summed; median of {args.import_runs})")
    medians = {label: median_groups(ts) for label, ts in traces.items()}
    labels = list(traces)
    print("| group | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    order = [name for name, _ in GROUPS] + ["other (stdlib, small deps)"]
    for name in order:
        cells = " | ".join(f"{medians[lb].get(name, 0.0):.0f}" for lb in labels)
        print(f"| {name} | {cells} |")
    totals = [statistics.median(t.total_us / 1000 for t in traces[lb]) for lb in labels]
    print("| **total** | " + " | ".join(f"{t:.0f}" for t in totals) + " |")

    # Who pulls what on a real stdio start (the last trace; the chain does not vary by run).
    start = traces["onepin-mcp stdio start"][-1]
    bare_start = traces["bare mcp stdio start"][-1]
    print("\nOn a stdio start without --sandbox: ms = self times of the package's modules summed;")
    print("'via' = the importers outside the package, nearest last (the last 3)")
    print("| package | onepin-mcp ms | bare mcp ms | first imported via |")
    print("|---|---:|---:|---|")
    for package in WATCHED:
        ours = package_ms(start, package)
        theirs = package_ms(bare_start, package)
        outside = [m for m in start.chain(package)[:-1] if not in_package(m, package)]
        via = " > ".join(outside[-3:]) if package in start.self_us else "-"
        print(
            f"| {package} | {'not imported' if ours is None else f'{ours:.0f}'} | "
            f"{'not imported' if theirs is None else f'{theirs:.0f}'} | {via or '(root)'} |"
        )
    ours_only = sorted(
        (m for m in start.self_us if m.startswith("onepin_mcp")),
        key=lambda m: -start.cumulative_us[m],
    )
    print("\nonepin_mcp modules on the stdio start, by cumulative ms (top 12; third-party packages")
    print("first imported beneath each, self ms summed, >= 2 ms: not loaded before by the SDK)")
    print("| module | self ms | cumulative ms | first imports beneath |")
    print("|---|---:|---:|---|")
    for module in ours_only[:12]:
        beneath: dict[str, float] = {}
        for m in start.self_us:
            top = m.split(".")[0]
            if module in start.chain(m)[:-1] and top not in ("onepin_mcp", *STDLIB):
                beneath[top] = beneath.get(top, 0.0) + start.self_us[m] / 1000
        # Only what costs something (>= 2 ms), with its self time summed.
        ranked = sorted(beneath.items(), key=lambda item: -item[1])
        shown = [f"{top} {ms:.0f}" for top, ms in ranked if ms >= 2]
        print(
            f"| {module} | {start.self_us[module] / 1000:.1f} | "
            f"{start.cumulative_us[module] / 1000:.0f} | {', '.join(shown) or '-'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
