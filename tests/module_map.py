"""Every module of the package with its layer and its one job: the one table that both the
import rules (`tests/test_architecture.py`) and the module map in `docs/architecture.md` are
made from. It lives with the tests, not in the package, so that the wheel ships no test data.

Adding, moving or removing a module: change its row here, then run
`python scripts/update_docs.py` to rewrite the map in the doc. `tests/test_module_map.py` fails
while a module of the package has no row, a row names no module, or the doc is stale.

Two stacks, each numbered from 0 at the bottom: a module may import modules of its own layer or
lower ones of its stack, never higher ones. The server stack is everything a running
`onepin-mcp` serves with; the sandbox stack is the local OnePin, which only `__main__` imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE = "onepin_mcp"
MAP_MARKER = "module-map"

SERVER_STACK: dict[int, dict[str, str]] = {
    # layer: {module file under onepin_mcp/: its one job}, top layer first
    10: {
        "__main__.py": (
            "argv + env → serve (stdio, SSE, Streamable HTTP), doctor or sandbox; exit codes"
        ),
    },
    9: {
        "http.py": (
            "the HTTP app assembled (build_app) and served with uvicorn (serve_http), /healthz"
        ),
        "stdio.py": (
            "stdio serving: the SDK's transport, plus an error answer (with its id) to every "
            "malformed request"
        ),
    },
    8: {
        "http_auth.py": (
            "client auth: a static token or callers' own OnePin keys (checked with OnePin first), "
            "and the per-caller clients of passthrough mode"
        ),
    },
    7: {
        "http_guards.py": (
            "HTTP hygiene: exact Host/Origin matching, quiet refusals, abandoned requests, read "
            "deadlines"
        ),
    },
    6: {
        "options.py": "ServeOptions: a pure parse of argv and ONEPIN_MCP_* environment variables",
        "doctor.py": "configuration, key, reachability and scope checks, and their report",
        "surface.py": (
            "the surface as clients see it: README tool, resource and prompt tables, snapshot, size"
            " in bytes"
        ),
        "sessions.py": (
            "HTTP sessions bound to the credential that opened them, caps per key and in total, ids"
            " kept out of the log"
        ),
    },
    5: {
        "server.py": (
            "create_server(settings) → OnePinServer: lifespan, instructions, registration, and the "
            "one place a OnePin failure becomes a ToolError"
        ),
    },
    4: {
        "selection.py": (
            "toolsets, single tools, exclusions, read-only → the tools to register or refuse"
        ),
        "subscriptions.py": (
            "live run resources: a subscribed run snapshot sends resources/updated on every change"
        ),
    },
    3: {
        "tools/__init__.py": (
            "ToolSpec and the toolset mechanics: each tool described once, in a fixed order"
        ),
        "tools/registry.py": "the toolsets in their fixed order, and which are on by default",
        "tools/account.py": "toolset account: who the key is, what it may do, the credit balance",
        "tools/workflows.py": "toolset workflows: find workflows and read one",
        "tools/runs.py": "toolset runs: follow, inspect and price runs (read-only)",
        "tools/run_control.py": "toolset run_control: start, cancel, pause and resume runs",
        "tools/workflow_admin.py": (
            "toolset workflow_admin: create, change, copy, check and delete workflows; uploads"
        ),
        "tools/catalog.py": "toolset catalog: node types, voices and templates",
        "tools/dictionary.py": (
            "toolset dictionary: read, suggest, add, change and delete pronunciation entries"
        ),
        "tools/usage.py": "toolset usage: the workspace's credits and runs over 30/60/90 days",
        "resources.py": (
            "resource templates (workflow, run snapshot, step log, clip audio) and completions"
        ),
        "prompts.py": "prompts: ready-made plans naming the tools to call, in order, with the ids",
        "viewer/__init__.py": (
            "the run viewer, an MCP App: its page and its wiring into the surface"
        ),
        "viewer/app.py": "the viewer's ui:// resource, and which tools point to it",
        "viewer/page.py": (
            "the viewer's HTML, CSS and JS built into one self-contained document with a hash-based"
            " CSP"
        ),
    },
    2: {
        "failures.py": (
            "the agent-facing wording of every client error, shared by tools and resources"
        ),
        "clips.py": (
            "one clip's audio: a fresh presigned link, fetched at once under a size cap, and the "
            "clip's card"
        ),
        "state.py": (
            "AppState: settings, the client provider (one shared client, or one per caller key), "
            "clock, write policy"
        ),
        "watch.py": (
            "following a run: adaptive polling of the cheap status endpoint, for waits and watchers"
        ),
        "run_history.py": (
            "a workflow's runs in a time range and their credits: a bounded newest-first scan of "
            "the list endpoint, which has no time filter"
        ),
        "script_edit.py": (
            "a saved workflow's script changed in its definition, the rest of the graph kept"
        ),
        "writes/__init__.py": (
            "the write path in one place: policy, confirmation, audit, the at-most-once start"
        ),
        "writes/guard.py": (
            "confirmed_write: the block a write tool body runs in (recorded, then confirmed)"
        ),
        "writes/start.py": (
            "starting a run: the budget check before it, and the start sent at most once"
        ),
        "writes/confirmation.py": (
            "asking the user before a write: one resolver factory, the form, the answer checked"
        ),
        "writes/audit.py": (
            "the audit trail of writes: one record per write tool call, whatever its outcome"
        ),
        "writes/policy.py": (
            "which tool a call is for, and whether the write policy asks before it"
        ),
        "views/__init__.py": (
            "what tools return: small views trimmed for deciding, with the ids for the next step; "
            "shared pieces"
        ),
        "views/account.py": "views of the account toolset",
        "views/workflows.py": (
            "views of the workflows toolset: compact list rows; one workflow as summary, graph or "
            "markdown"
        ),
        "views/runs.py": (
            "views of the runs toolset: state with what to do next, records, steps, results, data, "
            "summaries, links, previews"
        ),
        "views/run_control.py": (
            "views of the run_control toolset: a run after start, cancel, pause or resume"
        ),
        "views/next_steps.py": (
            "what to do next about a run, in one voice: advice for every state, and the words "
            "for every refusal to change one (409s, runs in the wrong state)"
        ),
        "views/workflow_admin.py": (
            "views of the workflow_admin toolset: a saved workflow, a validation report, a "
            "deletion, uploads"
        ),
        "views/catalog.py": (
            "views of the catalog toolset: node types, voices and templates, trimmed for choosing"
        ),
        "views/dictionary.py": (
            "views of the dictionary toolset: entries, languages, a suggestion, what an add did"
        ),
        "views/usage.py": (
            "views of the usage toolset: a window's totals and its rows by language or period"
        ),
    },
    1: {
        "api/client.py": (
            "OnePinClient: one httpx.AsyncClient, auth headers, retries, typed async methods"
        ),
    },
    0: {
        "api/__init__.py": "the OnePin side, which never imports mcp",
        "api/settings.py": (
            "frozen Settings; load_settings(env, home) is pure; the key is a SecretStr"
        ),
        "api/errors.py": "OnePinAPIError and friends; every error body shape parsed in one place",
        "api/models.py": "the API models we read, tolerant of fields they don't know",
        # The one module that names private parts of the `mcp` SDK; it imports only `mcp`.
        "sdk.py": "every private part of the mcp SDK the package uses, each behind one function",
        "params.py": "the parameters tools share (ids, offsets, limits), each defined once",
        "serving.py": (
            "an ASGI app on a real socket with uvicorn, bound before it is announced; "
            "SIGINT/SIGTERM stop it; N forked workers on that one socket, supervised"
        ),
        "text.py": (
            "clean_text: the one cleaner for untrusted text on every surface; clean_json and "
            "trim_json"
        ),
        "tool_schemas.py": (
            "the tools' schemas as listed, stored with the package (tool_schemas.json) and used "
            "while its sources are the ones they were derived from"
        ),
        "__init__.py": "the package: its version",
    },
}

SANDBOX_STACK: dict[int, dict[str, str]] = {
    # the same for the sandbox, whose layers are its own
    7: {
        "sandbox/__init__.py": "a faithful local OnePin: Sandbox, the seed's ids, serve",
        "sandbox/serve.py": (
            "the API on a socket (onepin-mcp sandbox), or only its files beside --sandbox"
        ),
    },
    6: {
        "sandbox/app.py": (
            "Sandbox, the facade: the Starlette app, clock, lock, store, engine, transport"
        ),
    },
    5: {
        "sandbox/handlers/__init__.py": "the API handlers, one module per group of endpoints",
        "sandbox/handlers/account.py": "whoami, the credit balance and the plan limits",
        "sandbox/handlers/catalog.py": (
            "node types, voices and templates, with the API's filters and sorts"
        ),
        "sandbox/handlers/workflows.py": (
            "workflow endpoints: CRUD, duplicate, names, validation, markdown, uploads"
        ),
        "sandbox/handlers/runs.py": (
            "run endpoints: previews, list, start, summary, status, control, steps, data, links"
        ),
        "sandbox/handlers/dictionary.py": (
            "the pronunciation dictionary: list, search, languages, suggest, create, update, delete"
        ),
        "sandbox/handlers/usage.py": (
            "usage summary, by language and activity, computed from the sandbox's own runs"
        ),
    },
    4: {
        "sandbox/handlers/files.py": (
            "presigned file links: minted for uploads, clips and archives, and served"
        ),
    },
    3: {
        "sandbox/call.py": "ApiCall: one authorized request as a handler sees it, and its answers",
    },
    2: {
        "sandbox/seed.py": "the world a fresh sandbox starts in, with stable ids tests can name",
        "sandbox/transport.py": "an httpx transport that runs requests through the app in-process",
        "sandbox/control.py": (
            "the control API under /_sandbox: no auth, never faulted, never logged"
        ),
        "sandbox/render.py": "records as the wire shows them: the JSON of the API's data fields",
        "sandbox/parsing.py": (
            "reading requests as FastAPI would, every failure collected as a detail issue"
        ),
        "sandbox/auth.py": "who may call: API keys, their scopes and role, the workspace header",
        "sandbox/definition_checks.py": (
            "structural checks of a workflow definition (create, update, validate)"
        ),
        "sandbox/envelope.py": (
            "the wire shapes: data/meta/pagination, errors, FastAPI's detail, presigned-URL XML"
        ),
    },
    1: {
        "sandbox/engine.py": (
            "the run engine: what a run will do, what it costs, how it moves on the clock"
        ),
        # Beside `faults`: the log records a dropped connection, which `faults` defines.
        "sandbox/requestlog.py": (
            "the request log: what reached the API, in order, and how each request ended"
        ),
        "sandbox/speech.py": (
            "how a take sounds: espeak-ng speech or a tone, as long as the API says"
        ),
        "sandbox/faults.py": "faults on demand: misbehave as a real API and its network do",
    },
    0: {
        "sandbox/store.py": (
            "the in-memory state: who may call, the account, workflows, runs, catalogs"
        ),
        "sandbox/clock.py": "sandbox time: every timestamp and run transition reads one clock",
        "sandbox/audio.py": "real media files: PCM as WAV, a tone, files bundled as ZIP",
        "sandbox/errors.py": "ApiError and SchemaError, the two error shapes a handler raises",
    },
}


@dataclass(frozen=True)
class Module:
    path: str  # the file, relative to the package directory: `api/client.py`
    layer: int
    job: str
    stack: str  # "server" or "sandbox"

    @property
    def name(self) -> str:
        """The dotted name it is imported by (a package is its `__init__`)."""
        parts = [PACKAGE, *self.path.removesuffix(".py").split("/")]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: tuple[Module, ...] = tuple(
    Module(path, layer, job, stack)
    for stack, table in (("server", SERVER_STACK), ("sandbox", SANDBOX_STACK))
    for layer, jobs in table.items()
    for path, job in jobs.items()
)


def layers(stack: str) -> dict[str, int]:
    """Dotted module name → layer, for one stack."""
    return {module.name: module.layer for module in MODULES if module.stack == stack}


def modules_on_disk(package_dir: Path) -> set[str]:
    """Every `.py` file under `package_dir`, relative to it (`api/client.py`)."""
    return {path.relative_to(package_dir).as_posix() for path in package_dir.rglob("*.py")}


def render_map() -> str:
    """The module map as Markdown: per stack, its modules from the top layer down."""
    titles = {
        "server": "The server, what `onepin-mcp` serves with:",
        "sandbox": "The sandbox, a local OnePin (only `__main__` imports it):",
    }
    out: list[str] = []
    for stack, title in titles.items():
        rows = sorted((m for m in MODULES if m.stack == stack), key=lambda m: (-m.layer, m.path))
        out += [title, "", "| layer | module | job |", "|---:|---|---|"]
        out += [f"| {m.layer} | `{m.path}` | {m.job} |" for m in rows]
        out.append("")
    return "\n".join(out).rstrip("\n")
