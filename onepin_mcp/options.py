"""The command line and its environment twins, parsed into one frozen value per command.

`parse_command(argv, env)` is pure: it reads nothing but its arguments, so every rule below is
tested without starting a process. It returns `ServeOptions`, `DoctorOptions` or
`SandboxOptions`, or raises `OptionsError` whose text is what the user reads (exit code 2).
`--help` and `--version` still print and exit, as argparse does: they are asked for explicitly.

A flag always wins over its environment twin; an empty environment variable counts as unset.

| flag | environment | default |
|---|---|---|
| `--transport stdio\\|sse\\|streamable-http` | `ONEPIN_MCP_TRANSPORT` | stdio |
| `--host` | `ONEPIN_MCP_HOST` | 127.0.0.1 |
| `--port` (0 = any free port) | `ONEPIN_MCP_PORT` | 8000 |
| `--stateless` / `--no-stateless` (streamable-http) | `ONEPIN_MCP_STATELESS` | off |
| `--workers N` (processes; stateless streamable-http) | `ONEPIN_MCP_WORKERS` | 1 |
| `--auth none\\|token\\|passthrough` | `ONEPIN_MCP_AUTH` | token when a token is set, else none |
| (the token itself; never a flag) | `ONEPIN_MCP_HTTP_TOKEN` | none |
| `--allowed-host NAME` (repeatable) | `ONEPIN_MCP_ALLOWED_HOSTS` (comma-separated) | none |
| (seconds to send a request's headers; no flag) | `ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S` | 10 |
| (seconds between chunks of a body; no flag) | `ONEPIN_MCP_HTTP_BODY_TIMEOUT_S` | 30 |
| `--max-sessions N` (open HTTP sessions in all) | `ONEPIN_MCP_MAX_SESSIONS` | 1000 |
| `--max-sessions-per-key N` (passthrough) | `ONEPIN_MCP_MAX_SESSIONS_PER_KEY` | 16 |
| `--session-idle-timeout SECONDS` | `ONEPIN_MCP_SESSION_IDLE_TIMEOUT_S` | 1800 |
| `--session-route NAME` (stateful streamable-http) | `ONEPIN_MCP_SESSION_ROUTE` | none |
| (replicas' shared key(s) for 2026 questions; no flag) | `ONEPIN_MCP_REQUEST_STATE_KEY` | none |
| `--key-check-ttl SECONDS` (passthrough) | `ONEPIN_MCP_KEY_CHECK_TTL_S` | 60 |
| `--toolsets a,b` | `ONEPIN_MCP_TOOLSETS` | the default toolsets |
| `--tools x,y` | `ONEPIN_MCP_TOOLS` | none |
| `--exclude-tools x,y` | `ONEPIN_MCP_EXCLUDE_TOOLS` | none |
| `--read-only` / `--no-read-only` | `ONEPIN_MCP_READ_ONLY` | off |
| `--log-level debug\\|info\\|warning\\|error` | `ONEPIN_MCP_LOG_LEVEL` | info |
| `--confirm never\\|destructive\\|writes` | `ONEPIN_MCP_CONFIRM` | destructive |
| `--max-run-credits N` (a start's maximum estimate) | `ONEPIN_MCP_MAX_RUN_CREDITS` | no cap |
| `--audit-log FILE` (JSON lines, appended) | `ONEPIN_MCP_AUDIT_LOG` | none (stderr only) |
| `--sandbox`, `--sandbox-speed X` | none | off, 1.0 |
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from onepin_mcp import __version__
from onepin_mcp.selection import SelectionError, ToolSelection, resolve_selection
from onepin_mcp.state import ConfirmPolicy, WritePolicy

Transport = Literal["stdio", "sse", "streamable-http"]
AuthMode = Literal["none", "token", "passthrough"]

TRANSPORTS: tuple[Transport, ...] = ("stdio", "sse", "streamable-http")
AUTH_MODES: tuple[AuthMode, ...] = ("none", "token", "passthrough")
LOG_LEVELS = ("debug", "info", "warning", "error")
CONFIRM_POLICIES: tuple[ConfirmPolicy, ...] = ("never", "destructive", "writes")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_SANDBOX_PORT = 8787
# A shared secret guarding a server that holds an API key: short ones can be guessed.
MIN_HTTP_TOKEN_CHARS = 16
# How long an HTTP client may take to send a request's headers (all of them, from its first
# byte: sending one byte at a time must not stretch it), and how long it may pause between
# chunks of a body. Without them a connection that never finishes a request is held forever.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
# HTTP sessions: how many may be open in all and per caller's key (passthrough), and how long a
# Streamable HTTP session may go without a request before it is closed (the SDK's default).
# Each open session holds a task and its buffers; one key should not be able to take them all.
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_MAX_SESSIONS_PER_KEY = 16
DEFAULT_SESSION_IDLE_TIMEOUT_S = 1800.0
# A replica's route name, the prefix of every session id it mints (`name.` + the random id), for
# a balancer that sends each session's requests to its replica: short, and safe in a header and
# in an nginx map pattern.
SESSION_ROUTE_FORM = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# On the 2026-07-28 protocol a question to the user (a confirmation) comes back as the call's
# result with sealed state, and the client's answer may reach another replica: replicas share
# the sealing key. AES-256 under a key derived from it: at least 32 characters of randomness.
MIN_REQUEST_STATE_KEY_CHARS = 32
# Passthrough: how long OnePin's acceptance of a caller's key is trusted before it is asked again.
DEFAULT_KEY_CHECK_TTL_S = 60.0

ENV_TRANSPORT = "ONEPIN_MCP_TRANSPORT"
ENV_HOST = "ONEPIN_MCP_HOST"
ENV_PORT = "ONEPIN_MCP_PORT"
ENV_STATELESS = "ONEPIN_MCP_STATELESS"
ENV_WORKERS = "ONEPIN_MCP_WORKERS"
ENV_AUTH = "ONEPIN_MCP_AUTH"
ENV_HTTP_TOKEN = "ONEPIN_MCP_HTTP_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_ALLOWED_HOSTS = "ONEPIN_MCP_ALLOWED_HOSTS"
ENV_HEADER_TIMEOUT = "ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S"
ENV_BODY_TIMEOUT = "ONEPIN_MCP_HTTP_BODY_TIMEOUT_S"
ENV_MAX_SESSIONS = "ONEPIN_MCP_MAX_SESSIONS"
ENV_MAX_SESSIONS_PER_KEY = "ONEPIN_MCP_MAX_SESSIONS_PER_KEY"
ENV_SESSION_IDLE_TIMEOUT = "ONEPIN_MCP_SESSION_IDLE_TIMEOUT_S"
ENV_SESSION_ROUTE = "ONEPIN_MCP_SESSION_ROUTE"
ENV_REQUEST_STATE_KEY = "ONEPIN_MCP_REQUEST_STATE_KEY"
ENV_KEY_CHECK_TTL = "ONEPIN_MCP_KEY_CHECK_TTL_S"
ENV_TOOLSETS = "ONEPIN_MCP_TOOLSETS"
ENV_TOOLS = "ONEPIN_MCP_TOOLS"
ENV_EXCLUDE_TOOLS = "ONEPIN_MCP_EXCLUDE_TOOLS"
ENV_READ_ONLY = "ONEPIN_MCP_READ_ONLY"
ENV_LOG_LEVEL = "ONEPIN_MCP_LOG_LEVEL"
ENV_CONFIRM = "ONEPIN_MCP_CONFIRM"
ENV_MAX_RUN_CREDITS = "ONEPIN_MCP_MAX_RUN_CREDITS"
ENV_AUDIT_LOG = "ONEPIN_MCP_AUDIT_LOG"

API_KEY_FORM = re.compile(r"op_live_[A-Za-z0-9]{32}")
# What --allowed-host accepts: a host name or IP literal, optionally with a port. No scheme or
# path: the value is compared with the Host header, which has neither.
_ALLOWED_HOST_FORM = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Flags that only mean something when serving over HTTP; given with stdio they are a mistake.
_HTTP_FLAGS = {
    "host": "--host",
    "port": "--port",
    "stateless": "--stateless",
    "workers": "--workers",
    "auth": "--auth",
    "allowed_hosts": "--allowed-host",
    "max_sessions": "--max-sessions",
    "max_sessions_per_key": "--max-sessions-per-key",
    "session_idle_timeout_s": "--session-idle-timeout",
    "session_route": "--session-route",
    "key_check_ttl_s": "--key-check-ttl",
}


class OptionsError(ValueError):
    """The command line or environment can't be used as given; the text says what to change."""

    def __init__(self, message: str, *, usage: str | None = None, prog: str = "onepin-mcp") -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog


@dataclass(frozen=True)
class ServeOptions:
    """`onepin-mcp [options]`: serve MCP."""

    transport: Transport = "stdio"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    stateless: bool = False
    # Processes serving the one bound socket; more than 1 only for stateless Streamable HTTP.
    workers: int = 1
    auth: AuthMode = "none"
    # Kept out of repr so that logging or printing the options can't reveal it.
    http_token: str | None = field(default=None, repr=False)
    # Extra Host header values accepted on HTTP; ("*",) switches the Host/Origin check off.
    allowed_hosts: tuple[str, ...] = ()
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_per_key: int = DEFAULT_MAX_SESSIONS_PER_KEY
    session_idle_timeout_s: float = DEFAULT_SESSION_IDLE_TIMEOUT_S
    # This replica's name in the session ids it mints (stateful Streamable HTTP), or None.
    session_route: str | None = None
    # Keys sealing 2026-era questions' state, shared by replicas (first seals, all unseal); ()
    # for a key of this process's own. Kept out of repr, as the token is.
    request_state_keys: tuple[str, ...] = field(default=(), repr=False)
    key_check_ttl_s: float = DEFAULT_KEY_CHECK_TTL_S
    selection: ToolSelection = field(default_factory=ToolSelection)
    log_level: str = "info"
    sandbox: bool = False
    sandbox_speed: float = 1.0
    # Budget cap, confirmation and audit: the same for every transport and for --sandbox.
    policy: WritePolicy = field(default_factory=WritePolicy)

    @property
    def is_http(self) -> bool:
        return self.transport != "stdio"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


@dataclass(frozen=True)
class DoctorOptions:
    """`onepin-mcp doctor`: check configuration, key, reachability and scopes."""

    selection: ToolSelection = field(default_factory=ToolSelection)
    log_level: str = "warning"
    sandbox: bool = False
    sandbox_speed: float = 1.0


@dataclass(frozen=True)
class SandboxOptions:
    """`onepin-mcp sandbox`: the sandbox API alone, over HTTP."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_SANDBOX_PORT
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    speed: float = 1.0
    manual_clock: bool = False
    log_level: str = "info"


Command = ServeOptions | DoctorOptions | SandboxOptions


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        # Any other name may resolve to a public address: treat it as beyond loopback.
        return False


# --- argparse, made pure ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting on a usage error."""

    def error(self, message: str) -> NoReturn:
        raise OptionsError(message, usage=self.format_usage(), prog=self.prog)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 picks a free one): {text!r}")
    return value


def _credits(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of credits: {text!r}") from None
    if value < 1:
        # 0 would refuse every run; leaving the setting out is how to have no cap.
        raise argparse.ArgumentTypeError(
            f"must be at least 1 (leave it unset for no cap): {text!r}"
        )
    return value


def _count(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _api_key(text: str) -> str:
    # The official CLI refuses keys of any other form before a request; so does the sandbox.
    # The message never repeats the value: it may be a real key typed in the wrong place.
    if not API_KEY_FORM.fullmatch(text):
        raise argparse.ArgumentTypeError("an API key is op_live_ followed by 32 letters or digits")
    return text


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help=f"stderr log level (env {ENV_LOG_LEVEL}; default info, doctor: warning)",
    )


def _add_selection_and_sandbox(parser: argparse.ArgumentParser) -> None:
    # Every default is SUPPRESS: an absent flag leaves no attribute, so that the environment
    # twin can be told apart from an explicit flag, and so that a subcommand's copy of an
    # option never overwrites the value given before the subcommand name.
    group = parser.add_argument_group("tool selection")
    group.add_argument(
        "--toolsets",
        action="append",
        default=argparse.SUPPRESS,
        metavar="A,B",
        help=f"toolsets to enable, or 'all' (env {ENV_TOOLSETS}; default: account, workflows, "
        "runs, run_control)",
    )
    group.add_argument(
        "--tools",
        action="append",
        default=argparse.SUPPRESS,
        metavar="X,Y",
        help=f"single tools to enable on top of the toolsets (env {ENV_TOOLS})",
    )
    group.add_argument(
        "--exclude-tools",
        action="append",
        default=argparse.SUPPRESS,
        metavar="X,Y",
        help=f"tools to leave out (env {ENV_EXCLUDE_TOOLS})",
    )
    group.add_argument(
        "--read-only",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help=f"hide and refuse every tool that changes OnePin state (env {ENV_READ_ONLY})",
    )
    sandbox = parser.add_argument_group("sandbox")
    sandbox.add_argument(
        "--sandbox",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use an in-process OnePin sandbox instead of the real API (no key needed)",
    )
    sandbox.add_argument(
        "--sandbox-speed",
        type=_positive_float,
        default=argparse.SUPPRESS,
        metavar="X",
        help="how fast sandbox time runs against real time (default 1.0)",
    )


def _add_http(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("transport")
    group.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=argparse.SUPPRESS,
        help=f"how clients connect (env {ENV_TRANSPORT}; default stdio)",
    )
    group.add_argument(
        "--host",
        default=argparse.SUPPRESS,
        help=f"address to bind for HTTP (env {ENV_HOST}; default {DEFAULT_HOST}); anything "
        "beyond loopback requires --auth token or passthrough",
    )
    group.add_argument(
        "--port",
        type=_port,
        default=argparse.SUPPRESS,
        help=f"port for HTTP (env {ENV_PORT}; default {DEFAULT_PORT}; 0 = any free port)",
    )
    group.add_argument(
        "--stateless",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help=f"streamable-http without sessions, for replicas behind a load balancer "
        f"(env {ENV_STATELESS})",
    )
    group.add_argument(
        "--workers",
        type=_count,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"serve with N processes sharing the port, e.g. one per core (env {ENV_WORKERS}; "
        "default 1); needs --stateless, as a session lives in one process",
    )
    group.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default=argparse.SUPPRESS,
        help=f"HTTP client auth (env {ENV_AUTH}): token = clients send 'Authorization: Bearer "
        f"$ONEPIN_MCP_HTTP_TOKEN'; passthrough = each client's bearer is its own OnePin key. "
        f"Default: token when {ENV_HTTP_TOKEN} is set, else none",
    )
    group.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=argparse.SUPPRESS,
        metavar="NAME[:PORT]",
        help=f"a Host header to accept besides loopback names, e.g. mcp.example.com "
        f"(repeatable; env {ENV_ALLOWED_HOSTS}, comma-separated; '*' turns the Host/Origin "
        "check off, for use behind a proxy that checks it)",
    )
    sessions = parser.add_argument_group("HTTP sessions")
    sessions.add_argument(
        "--max-sessions",
        type=_count,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"open sessions allowed in all; more are refused with 503 (env {ENV_MAX_SESSIONS}; "
        f"default {DEFAULT_MAX_SESSIONS})",
    )
    sessions.add_argument(
        "--max-sessions-per-key",
        type=_count,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"passthrough: open sessions allowed per caller's key; more are refused with 429 "
        f"(env {ENV_MAX_SESSIONS_PER_KEY}; default {DEFAULT_MAX_SESSIONS_PER_KEY})",
    )
    sessions.add_argument(
        "--session-idle-timeout",
        dest="session_idle_timeout_s",
        type=_positive_float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"streamable-http: close a session after this long without a request (env "
        f"{ENV_SESSION_IDLE_TIMEOUT}; default {DEFAULT_SESSION_IDLE_TIMEOUT_S:g})",
    )
    sessions.add_argument(
        "--session-route",
        dest="session_route",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help=f"stateful streamable-http behind a balancer that routes by session: this "
        f"replica's name, put before every session id it mints ('NAME.<random id>'), so the "
        f"balancer can send each session's requests back to it (env {ENV_SESSION_ROUTE}; "
        "lowercase letters, digits and '-', up to 32; see deploy/nginx-sessions.conf)",
    )
    sessions.add_argument(
        "--key-check-ttl",
        dest="key_check_ttl_s",
        type=_positive_float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"passthrough: how long OnePin's acceptance of a caller's key is kept before it "
        f"is checked again (env {ENV_KEY_CHECK_TTL}; default {DEFAULT_KEY_CHECK_TTL_S:g})",
    )


def _add_write_policy(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("writes")
    group.add_argument(
        "--confirm",
        type=str.lower,
        choices=CONFIRM_POLICIES,
        default=argparse.SUPPRESS,
        help=f"which write tools ask the user first, where the client supports elicitation "
        f"(env {ENV_CONFIRM}; default destructive: cancel_run and delete_workflow; writes: "
        "every write tool)",
    )
    group.add_argument(
        "--max-run-credits",
        type=_credits,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"start_run refuses a run whose maximum estimated cost is above N credits "
        f"(env {ENV_MAX_RUN_CREDITS}; default no cap)",
    )
    group.add_argument(
        "--audit-log",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"append one JSON line per write tool call to FILE, beside the stderr line "
        f"(env {ENV_AUDIT_LOG})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="onepin-mcp",
        description="MCP server for OnePin voice-generation workflows. Without a command it "
        "serves MCP (stdio by default).",
    )
    parser.add_argument("--version", action="version", version=f"onepin-mcp {__version__}")
    _add_log_level(parser)
    _add_http(parser)
    _add_write_policy(parser)
    _add_selection_and_sandbox(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration, the key, reachability and scopes; list enabled tools",
        description="Check what the server would run with: where the key comes from, whether "
        "OnePin answers, whether the key is valid and has the scopes the enabled tools need. "
        "Exit status 0 when healthy, 1 otherwise.",
    )
    _add_log_level(doctor)
    _add_selection_and_sandbox(doctor)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local OnePin API (no account, no network) for trying things out and tests",
        description=(
            "Serve the sandbox, a faithful local OnePin API, over HTTP. The official onepin "
            "SDK and CLI work against it with ONEPIN_BASE_URL and ONEPIN_API_KEY set as "
            "announced on stderr."
        ),
    )
    _add_log_level(sandbox)
    # Own dests: the serving options above share the flag names but not the defaults.
    sandbox.add_argument(
        "--host",
        dest="sandbox_host",
        default=DEFAULT_HOST,
        help="address to bind (default 127.0.0.1)",
    )
    sandbox.add_argument(
        "--port",
        dest="sandbox_port",
        type=_port,
        default=DEFAULT_SANDBOX_PORT,
        help=f"port (default {DEFAULT_SANDBOX_PORT}; 0 = any)",
    )
    sandbox.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        type=_api_key,
        default=[],
        metavar="KEY",
        help="accept only this key (repeatable); without it any op_live_ key is accepted",
    )
    sandbox.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="how fast sandbox time runs against real time (default 1.0)",
    )
    sandbox.add_argument(
        "--manual-clock",
        action="store_true",
        help="freeze sandbox time; advance it with POST /_sandbox/clock",
    )
    return parser


# --- from the namespace and the environment to options ------------------------------------------


def parse_command(argv: Sequence[str], env: Mapping[str, str]) -> Command:
    """The command `argv` asks for, with environment twins filled in and every rule checked."""
    namespace = build_parser().parse_args(list(argv))
    given = vars(namespace)
    log_level = _log_level(given, env)
    if given.get("command") == "sandbox":
        return SandboxOptions(
            host=given["sandbox_host"],
            port=given["sandbox_port"],
            api_keys=tuple(given["api_keys"]),
            speed=given["speed"],
            manual_clock=given["manual_clock"],
            log_level=log_level or "info",
        )
    selection = _selection(given, env)
    sandbox = bool(given.get("sandbox", False))
    speed = float(given.get("sandbox_speed", 1.0))
    if given.get("command") == "doctor":
        # Doctor is a one-shot check; the serving options may be present (a copied command
        # line) and are ignored. Its own output is the report, so the log stays quiet.
        return DoctorOptions(
            selection=selection,
            log_level=log_level or "warning",
            sandbox=sandbox,
            sandbox_speed=speed,
        )
    return _serve_options(given, env, selection, log_level or "info", sandbox, speed)


def _serve_options(
    given: Mapping[str, Any],
    env: Mapping[str, str],
    selection: ToolSelection,
    log_level: str,
    sandbox: bool,
    speed: float,
) -> ServeOptions:
    transport = _choice(given, env, "transport", ENV_TRANSPORT, TRANSPORTS, default="stdio")
    policy = _write_policy(given, env)
    if transport == "stdio":
        flags = [flag for dest, flag in _HTTP_FLAGS.items() if dest in given]
        if flags:
            raise OptionsError(
                f"{', '.join(flags)} only apply to HTTP; add --transport streamable-http "
                "(or sse) to serve over HTTP"
            )
        # The environment twins of HTTP options are ignored on stdio: a shell profile may
        # set them for another use of the same command.
        return ServeOptions(
            selection=selection,
            log_level=log_level,
            sandbox=sandbox,
            sandbox_speed=speed,
            policy=policy,
        )

    host = str(given.get("host") or _env(env, ENV_HOST) or DEFAULT_HOST).strip()
    if not host:
        raise OptionsError("--host must not be empty")
    port = given["port"] if "port" in given else _env_port(env)
    if transport == "streamable-http":
        stateless = _flag(given, env, "stateless", ENV_STATELESS)
    elif given.get("stateless"):
        raise OptionsError("--stateless applies to --transport streamable-http only")
    else:
        stateless = False  # SSE has no stateless mode; the environment twin is not for it
    workers = _count_option(given, env, "workers", ENV_WORKERS, 1)
    session_route = _session_route(given, env, transport=transport, stateless=stateless)
    if workers > 1:
        _check_workers(workers, transport=transport, stateless=stateless, sandbox=sandbox)

    token = _env(env, ENV_HTTP_TOKEN)
    auth = _choice(given, env, "auth", ENV_AUTH, AUTH_MODES, default="token" if token else "none")
    if auth == "token":
        if not token:
            raise OptionsError(
                f"--auth token needs the token in {ENV_HTTP_TOKEN} (at least "
                f"{MIN_HTTP_TOKEN_CHARS} characters, e.g. from `openssl rand -hex 32`); clients "
                "then send 'Authorization: Bearer <token>'"
            )
        if len(token) < MIN_HTTP_TOKEN_CHARS:
            raise OptionsError(
                f"{ENV_HTTP_TOKEN} is too short to guard the server: use at least "
                f"{MIN_HTTP_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            )
    if auth == "none" and not is_loopback(host):
        raise OptionsError(
            f"refusing to serve on {host} without authentication: anyone who can reach the "
            f"port could use the OnePin key. Use --auth token (with {ENV_HTTP_TOKEN}) or "
            f"--auth passthrough, or bind {DEFAULT_HOST}"
        )

    return ServeOptions(
        transport=transport,
        host=host,
        port=port,
        stateless=stateless,
        workers=workers,
        auth=auth,
        http_token=token if auth == "token" else None,
        allowed_hosts=_allowed_hosts(given, env),
        header_timeout_s=_env_seconds(env, ENV_HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT_S),
        body_timeout_s=_env_seconds(env, ENV_BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S),
        max_sessions=_count_option(
            given, env, "max_sessions", ENV_MAX_SESSIONS, DEFAULT_MAX_SESSIONS
        ),
        max_sessions_per_key=_count_option(
            given,
            env,
            "max_sessions_per_key",
            ENV_MAX_SESSIONS_PER_KEY,
            DEFAULT_MAX_SESSIONS_PER_KEY,
        ),
        session_idle_timeout_s=given.get("session_idle_timeout_s")
        or _env_seconds(env, ENV_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_IDLE_TIMEOUT_S),
        session_route=session_route,
        request_state_keys=_request_state_keys(env),
        key_check_ttl_s=given.get("key_check_ttl_s")
        or _env_seconds(env, ENV_KEY_CHECK_TTL, DEFAULT_KEY_CHECK_TTL_S),
        selection=selection,
        log_level=log_level,
        sandbox=sandbox,
        sandbox_speed=speed,
        policy=policy,
    )


def _check_workers(workers: int, *, transport: Transport, stateless: bool, sandbox: bool) -> None:
    """Several worker processes only where any process can answer any request."""
    if transport != "streamable-http" or not stateless:
        raise OptionsError(
            f"--workers {workers} needs --transport streamable-http --stateless: a session "
            "(SSE or stateful Streamable HTTP) lives in the one process that opened it, and "
            "the next request may reach another. For sessions on several processes, run "
            "replicas behind a proxy that routes by Mcp-Session-Id (see docs/deployment.md)"
        )
    if sandbox:
        raise OptionsError(
            f"--workers {workers} can't be used with --sandbox: each worker would hold its own "
            "sandbox, and a run started through one would be unknown to the others. Run "
            "`onepin-mcp sandbox` as its own process and point ONEPIN_BASE_URL at it instead"
        )


def _session_route(
    given: Mapping[str, Any], env: Mapping[str, str], *, transport: Transport, stateless: bool
) -> str | None:
    """The replica's route name: only where there are session ids to carry it."""
    raw = given["session_route"] if "session_route" in given else _env(env, ENV_SESSION_ROUTE)
    if raw is None:
        return None
    route = str(raw).strip()
    if not SESSION_ROUTE_FORM.fullmatch(route):
        raise OptionsError(
            f"--session-route ({ENV_SESSION_ROUTE}) must be 1 to 32 lowercase letters, digits "
            f"or '-', starting with a letter or digit, e.g. 'a' or 'mcp-1'; got {route!r}"
        )
    if transport != "streamable-http" or stateless:
        raise OptionsError(
            "--session-route names the replica in the session ids it mints: it needs "
            "--transport streamable-http with sessions (not --stateless)"
        )
    return route


def _request_state_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """The shared sealing keys, comma-separated (a rotation ring: the first seals)."""
    raw = _env(env, ENV_REQUEST_STATE_KEY)
    if raw is None:
        return ()
    keys = tuple(key.strip() for key in raw.split(","))
    if any(len(key) < MIN_REQUEST_STATE_KEY_CHARS for key in keys):
        # The text never quotes a key: it is a secret.
        raise OptionsError(
            f"{ENV_REQUEST_STATE_KEY}: each key must be at least {MIN_REQUEST_STATE_KEY_CHARS} "
            "characters of randomness (e.g. from `openssl rand -hex 32`), comma-separated "
            "when rotating"
        )
    if len(set(keys)) != len(keys):
        raise OptionsError(f"{ENV_REQUEST_STATE_KEY}: a key is listed twice")
    return keys


def _write_policy(given: Mapping[str, Any], env: Mapping[str, str]) -> WritePolicy:
    confirm = _choice(given, env, "confirm", ENV_CONFIRM, CONFIRM_POLICIES, default="destructive")
    if "max_run_credits" in given:
        cap: int | None = given["max_run_credits"]
    else:
        raw = _env(env, ENV_MAX_RUN_CREDITS)
        try:
            cap = None if raw is None else _credits(raw)
        except argparse.ArgumentTypeError as exc:
            raise OptionsError(f"{ENV_MAX_RUN_CREDITS}: {exc}") from None
    audit_log = given["audit_log"] if "audit_log" in given else _env(env, ENV_AUDIT_LOG)
    if audit_log is not None and not str(audit_log).strip():
        raise OptionsError("--audit-log needs a file name")
    return WritePolicy(
        max_run_credits=cap,
        confirm=confirm,
        audit_log=None if audit_log is None else str(audit_log).strip(),
    )


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _log_level(given: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    if "log_level" in given:
        return str(given["log_level"])
    raw = _env(env, ENV_LOG_LEVEL)
    if raw is None:
        return None
    if raw.lower() not in LOG_LEVELS:
        raise OptionsError(f"{ENV_LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw.lower()


def _choice(
    given: Mapping[str, Any],
    env: Mapping[str, str],
    dest: str,
    env_name: str,
    choices: Sequence[Any],
    *,
    default: Any,
) -> Any:
    if dest in given:
        return given[dest]
    raw = _env(env, env_name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise OptionsError(f"{env_name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def _flag(given: Mapping[str, Any], env: Mapping[str, str], dest: str, env_name: str) -> bool:
    if dest in given:
        return bool(given[dest])
    raw = _env(env, env_name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise OptionsError(f"{env_name} must be true or false (1/0, yes/no, on/off), got {raw!r}")


def _env_port(env: Mapping[str, str]) -> int:
    raw = _env(env, ENV_PORT)
    if raw is None:
        return DEFAULT_PORT
    try:
        return _port(raw)
    except argparse.ArgumentTypeError as exc:
        raise OptionsError(f"{ENV_PORT}: {exc}") from None


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _env(env, name)
    if raw is None:
        return default
    try:
        return _positive_float(raw)
    except argparse.ArgumentTypeError as exc:
        raise OptionsError(f"{name}: {exc} (a number of seconds)") from None


def _count_option(
    given: Mapping[str, Any], env: Mapping[str, str], dest: str, name: str, default: int
) -> int:
    if dest in given:
        return int(given[dest])
    raw = _env(env, name)
    if raw is None:
        return default
    try:
        return _count(raw)
    except argparse.ArgumentTypeError as exc:
        raise OptionsError(f"{name}: {exc}") from None


def _names(values: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated names from repeated flags or one variable, trimmed, in order, once each."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if name and name not in names:
                names.append(name)
    return tuple(names)


def _name_list(
    given: Mapping[str, Any], env: Mapping[str, str], dest: str, env_name: str
) -> tuple[str, ...] | None:
    if dest in given:
        return _names(given[dest])
    raw = _env(env, env_name)
    return None if raw is None else _names([raw])


def _selection(given: Mapping[str, Any], env: Mapping[str, str]) -> ToolSelection:
    selection = ToolSelection(
        toolsets=_name_list(given, env, "toolsets", ENV_TOOLSETS),
        tools=_name_list(given, env, "tools", ENV_TOOLS) or (),
        exclude_tools=_name_list(given, env, "exclude_tools", ENV_EXCLUDE_TOOLS) or (),
        read_only=_flag(given, env, "read_only", ENV_READ_ONLY),
    )
    try:
        # Checked here, not when the server is built, so that a typo is a usage error (exit 2)
        # before anything starts, with the list of valid names.
        resolve_selection(selection)
    except SelectionError as exc:
        raise OptionsError(str(exc)) from None
    return selection


def _allowed_hosts(given: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    hosts = _name_list(given, env, "allowed_hosts", ENV_ALLOWED_HOSTS) or ()
    if "*" in hosts:
        if len(hosts) > 1:
            raise OptionsError("--allowed-host '*' turns the Host check off; give it alone")
        return hosts
    for host in hosts:
        if not _ALLOWED_HOST_FORM.fullmatch(host):
            raise OptionsError(
                f"--allowed-host takes a host name with an optional port, like "
                f"mcp.example.com or mcp.example.com:8443 (no scheme or path), got {host!r}"
            )
    return tuple(host.lower() for host in hosts)
