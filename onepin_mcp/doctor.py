"""`onepin-mcp doctor`: is this server set up to work, and if not, what to change.

`diagnose()` runs the checks and returns a `DoctorReport` (structured, so tests assert on
fields rather than on text); `render()` turns it into the human-readable report. The checks:
where the key comes from (shown masked: never more than its last 4 characters), the base URL and
workspace, whether OnePin answers (GET /nodes, no key needed, with latency), whether the key is
accepted (GET /auth/whoami), whether its scopes cover the enabled tools, and which tools the
current selection enables. Each failed check is a `Problem` with the fix in words.

Each check names the full URL it requested, so a wrong base URL shows in the report itself. A
failure is told apart by its cause, because each has a different fix: OnePin down (a 5xx from it
or its gateway, or no answer in time: try later), no connection at all (network or base URL),
something that answered but is not the OnePin API (base URL), a key missing (configure one), a
key refused (401: replace it), a key not allowed (403: scopes or workspace).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from onepin_mcp import __version__
from onepin_mcp.api.client import API_PREFIX, OnePinClient, RetryPolicy
from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinError,
    OnePinTimeoutError,
    OnePinTransportError,
    redact,
)
from onepin_mcp.api.settings import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_WORKSPACE_ID,
    ConfigError,
    Settings,
)
from onepin_mcp.failures import KEY_HELP
from onepin_mcp.selection import ToolSelection, resolve_selection
from onepin_mcp.tools import ToolSpec

KeySource = Literal["env", "credentials_file", "sandbox", "none"]
CheckName = Literal["configuration", "reachability", "key", "workspace", "scopes"]
# Why OnePin could not be used: each has its own fix (see the module's docstring).
ReachFailure = Literal["unavailable", "unreachable", "not_onepin"]
# What OnePin made of the key: missing (none configured), refused (401: invalid, revoked or
# mistyped), forbidden (403: known, but not allowed to ask), unchecked (OnePin could not be asked).
KeyState = Literal["accepted", "missing", "refused", "forbidden", "unchecked"]

REACH_PATH = "/nodes"
WHOAMI_PATH = "/auth/whoami"

_KEY_SOURCE_WORDS: Mapping[KeySource, str] = {
    "env": f"from {ENV_API_KEY}",
    "credentials_file": "from the credentials file",
    "sandbox": "the in-process sandbox's example key",
    "none": "not configured",
}


@dataclass(frozen=True)
class Problem:
    check: CheckName
    message: str
    fix: str


@dataclass(frozen=True)
class DoctorReport:
    version: str
    key_source: KeySource
    key_hint: str | None  # masked, e.g. op_live_…abcd; never the key
    base_url: str | None
    base_url_source: str | None
    workspace_id: str | None  # configured ONEPIN_WORKSPACE_ID
    credentials_path: str | None
    reachable: bool | None  # None: not checked
    reach_latency_ms: float | None
    key_valid: bool | None  # None: not checked (no key, or OnePin unreachable)
    whoami_latency_ms: float | None
    user_id: str | None
    key_workspace_id: str | None
    scopes: tuple[str, ...] | None
    # Scope → the enabled tools that need it, for each scope the key lacks.
    missing_scopes: Mapping[str, tuple[str, ...]]
    tools: tuple[str, ...]
    hidden_by_read_only: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())
    # The full URLs the checks requested (masked like the base URL), None when not requested.
    reach_url: str | None = None
    whoami_url: str | None = None
    reach_failure: ReachFailure | None = None
    key_state: KeyState = "unchecked"
    # The base URL as configured was corrected (an API path dropped): said, not failed.
    notices: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems


def mask_key(key: str) -> str:
    """`op_live_…abcd`: the public prefix and at most the last 4 characters.

    Short values show no suffix at all: 4 characters of an 8-character secret is half of it.
    """
    prefix = next((p for p in ("op_live_", "op_test_") if key.startswith(p)), "")
    rest = key[len(prefix) :]
    return f"{prefix}…{rest[-4:]}" if len(rest) >= 16 else f"{prefix}…"


async def diagnose(
    load: Callable[[], Settings],
    selection: ToolSelection,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    key_source: KeySource | None = None,
) -> DoctorReport:
    """Run every check. `load` builds the settings (its `ConfigError` is reported, not raised);
    `transport` reaches the client (the sandbox); `key_source` overrides the settings' own."""
    enabled, refused = resolve_selection(selection)
    tools = tuple(spec.name for spec in enabled)
    hidden = tuple(refused)
    problems: list[Problem] = []

    try:
        settings = load()
    except ConfigError as exc:
        problems.append(
            Problem("configuration", str(exc), "Fix the setting named above and run again.")
        )
        return DoctorReport(
            version=__version__,
            key_source="none",
            key_hint=None,
            base_url=None,
            base_url_source=None,
            workspace_id=None,
            credentials_path=None,
            reachable=None,
            reach_latency_ms=None,
            key_valid=None,
            whoami_latency_ms=None,
            user_id=None,
            key_workspace_id=None,
            scopes=None,
            missing_scopes={},
            tools=tools,
            hidden_by_read_only=hidden,
            problems=tuple(problems),
        )

    secret = settings.api_key.get_secret_value() if settings.api_key else None
    source: KeySource = key_source or settings.key_source or "none"
    # What the report quotes from settings and answers is masked for the loaded key itself too
    # (render masks anything key-shaped, but a key of another form is known only here).
    mask = (lambda text: redact(text, (secret,))) if secret else redact
    if secret is None:
        source = "none"
        where = f" (looked in {ENV_API_KEY} and {settings.credentials_path})"
        problems.append(
            Problem(
                "configuration",
                "No OnePin API key is configured" + (where if settings.credentials_path else ""),
                KEY_HELP,
            )
        )

    reachable: bool | None = None
    reach_ms: float | None = None
    key_valid: bool | None = None
    whoami_ms: float | None = None
    user_id = key_workspace = None
    scopes: tuple[str, ...] | None = None
    missing: dict[str, tuple[str, ...]] = {}

    reach_url = settings.base_url + API_PREFIX + REACH_PATH
    whoami_url = settings.base_url + API_PREFIX + WHOAMI_PATH
    reach_failure: ReachFailure | None = None
    key_state: KeyState = "missing" if secret is None else "unchecked"
    whoami_requested = False

    # One attempt per check: the report should show the state now, quickly, not retries.
    async with OnePinClient(settings, transport=transport, retry=RetryPolicy.disabled()) as client:
        started = time.perf_counter()
        try:
            await client.list_nodes()
        except OnePinError as exc:
            reachable = False
            reach_failure = _reach_failure(exc)
            problems.append(_reach_problem(exc, reach_failure, reach_url, settings))
        else:
            reachable = True
        reach_ms = (time.perf_counter() - started) * 1000

        if secret is not None and reachable:
            whoami_requested = True
            started = time.perf_counter()
            try:
                whoami = await client.whoami()
            except OnePinAPIError as exc:
                whoami_ms = (time.perf_counter() - started) * 1000
                key_valid = False if exc.status in (401, 403) else None
                key_state = _KEY_STATE_BY_STATUS.get(exc.status, "unchecked")
                problems.append(_key_problem(exc, source, whoami_url))
            except OnePinError as exc:
                problems.append(
                    Problem(
                        "key",
                        f"Could not check the key at GET {whoami_url}: {_short(exc)}",
                        "Run the doctor again; if it persists, check the network.",
                    )
                )
            else:
                whoami_ms = (time.perf_counter() - started) * 1000
                key_valid = True
                key_state = "accepted"
                user_id, key_workspace = whoami.user_id, whoami.workspace_id
                scopes = tuple(sorted(whoami.scopes))
                missing = _missing_scopes(enabled, set(scopes))

    if missing:
        needs = ", ".join(f"{scope} (for {', '.join(names)})" for scope, names in missing.items())
        problems.append(
            Problem(
                "scopes",
                f"The key lacks scopes the enabled tools need: {needs}",
                "Create a key with those scopes at https://app.onepin.ai/workspace/~/settings/api, "
                "or leave the tools out (--exclude-tools, --toolsets, or --read-only for the "
                "write tools).",
            )
        )
    if settings.workspace_id and key_workspace and settings.workspace_id != key_workspace.lower():
        problems.append(
            Problem(
                "workspace",
                f"{ENV_WORKSPACE_ID} is {settings.workspace_id}, but the key belongs to "
                f"workspace {key_workspace}; OnePin refuses (403) every call that names another "
                "workspace",
                f"Unset {ENV_WORKSPACE_ID} (calls then act on the key's own workspace), or set it "
                f"to {key_workspace}; to work in {settings.workspace_id}, use a key created there.",
            )
        )

    return DoctorReport(
        version=__version__,
        key_source=source,
        key_hint=mask_key(secret) if secret else None,
        base_url=mask(settings.base_url),
        base_url_source=_base_url_words(settings) if source != "sandbox" else "sandbox",
        workspace_id=settings.workspace_id,
        credentials_path=str(settings.credentials_path) if settings.credentials_path else None,
        reachable=reachable,
        reach_latency_ms=reach_ms,
        key_valid=key_valid,
        whoami_latency_ms=whoami_ms,
        user_id=user_id,
        key_workspace_id=key_workspace,
        scopes=scopes,
        missing_scopes=missing,
        tools=tools,
        hidden_by_read_only=hidden,
        problems=tuple(Problem(p.check, mask(p.message), mask(p.fix)) for p in problems),
        reach_url=mask(reach_url),
        whoami_url=mask(whoami_url) if whoami_requested else None,
        reach_failure=reach_failure,
        key_state=key_state,
        notices=(mask(settings.base_url_notice),) if settings.base_url_notice else (),
    )


def _missing_scopes(enabled: list[ToolSpec], granted: set[str]) -> dict[str, tuple[str, ...]]:
    needed: dict[str, list[str]] = {}
    for spec in enabled:
        for scope in spec.scopes:
            if scope not in granted:
                needed.setdefault(scope, []).append(spec.name)
    return {scope: tuple(names) for scope, names in sorted(needed.items())}


_KEY_STATE_BY_STATUS: Mapping[int, KeyState] = {401: "refused", 403: "forbidden"}

# Statuses that mean OnePin (or the gateway in front of it) is there but not serving: an outage
# to wait out, not a setting to change. A wrong base URL rarely answers 5xx for /api/v1/nodes.
_OUTAGE_STATUSES = range(500, 600)


def _reach_failure(exc: OnePinError) -> ReachFailure:
    if isinstance(exc, OnePinTimeoutError) and exc.sent:
        return "unavailable"  # connected, then no answer in time
    if isinstance(exc, OnePinTransportError):
        return "unreachable"
    if isinstance(exc, OnePinAPIError) and exc.status in _OUTAGE_STATUSES:
        return "unavailable"
    return "not_onepin"


def _reach_problem(
    exc: OnePinError, failure: ReachFailure, url: str, settings: Settings
) -> Problem:
    base_url = (
        f"the base URL ({_base_url_words(settings)}; set it with {ENV_BASE_URL}): it should be "
        "the API's address, such as https://api.onepin.ai"
    )
    if failure == "unavailable":
        answer = (
            f"answered {exc.status} {exc.code}"
            if isinstance(exc, OnePinAPIError)
            else "did not answer in time"
        )
        return Problem(
            "reachability",
            f"OnePin is unavailable: GET {url} {answer}",
            "This is on OnePin's side, not in this configuration: try again in a few minutes, "
            "and check OnePin's status announcements if it lasts.",
        )
    if failure == "unreachable":
        return Problem(
            "reachability",
            f"Could not reach OnePin at GET {url}: {_short(exc)}",
            "Check the network (proxy, firewall, VPN), and " + base_url + ". If both are right, "
            "OnePin may be unavailable: try again in a few minutes.",
        )
    # Something answered, but not like the OnePin API: most often a wrong base URL.
    return Problem(
        "reachability",
        f"GET {url} was answered, but not as the OnePin API answers: {_short(exc)}",
        "Check " + base_url + ".",
    )


def _key_problem(exc: OnePinAPIError, source: KeySource, url: str) -> Problem:
    where = _KEY_SOURCE_WORDS[source]
    if exc.status == 401:
        return Problem(
            "key",
            f"OnePin refused the key ({where}) at GET {url}: 401 {exc.code}",
            f"The key is invalid, revoked or mistyped. {KEY_HELP}",
        )
    if exc.status == 403:
        return Problem(
            "key",
            f"OnePin knows the key ({where}) but refused GET {url}: 403 {exc.code}",
            "The key may be restricted; create a new key in the OnePin dashboard.",
        )
    return Problem(
        "key",
        f"Could not check the key: GET {url} answered {exc.status} {exc.code}",
        "Run the doctor again; if it persists, OnePin may be having trouble.",
    )


def _base_url_words(settings: Settings) -> str:
    return {
        "env": f"from {ENV_BASE_URL}",
        "credentials_file": "from the credentials file",
        "default": "the default",
    }[settings.base_url_source]


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(value: float | None) -> str:
    return "" if value is None else f" in {value:.0f} ms"


_REACH_FAILURE_WORDS: Mapping[ReachFailure, str] = {
    "unavailable": "OnePin is unavailable, try again later",
    "unreachable": "no connection",
    "not_onepin": "answered, but not as the OnePin API",
}
_KEY_STATE_WORDS: Mapping[KeyState, str] = {
    "missing": "missing, none configured",
    "refused": "refused by OnePin (invalid, revoked or mistyped)",
    "forbidden": "known to OnePin, but not allowed to ask who it is",
}


def render(report: DoctorReport, secrets: Iterable[str] = ()) -> str:
    """The report for people: one line per check, then the problems with their fixes.

    Every line is masked for anything key-shaped and for each of `secrets`: the report quotes
    settings back (a workspace id that is no UUID, a base URL), and a key pasted into the wrong
    variable is such a setting.
    """
    failed = {problem.check for problem in report.problems}

    def mark(check: CheckName, checked: bool = True) -> str:
        if check in failed:
            return "FAIL"
        return " ok " if checked else "  - "

    lines = [f"onepin-mcp {report.version} doctor", ""]
    key = _KEY_SOURCE_WORDS[report.key_source]
    if report.key_hint:
        key += f" ({report.key_hint})"
    if report.base_url is not None:
        lines.append(f"[{mark('configuration')}] key: {key}")
        lines.append(f"       base URL: {report.base_url} ({report.base_url_source})")
        workspace = report.workspace_id or "not set (the key's own workspace)"
        lines.append(f"       workspace: {workspace}")
        if report.credentials_path and report.key_source != "sandbox":
            lines.append(f"       credentials file: {report.credentials_path}")
        lines.extend(f"       note: {notice}" for notice in report.notices)
    else:
        lines.append(f"[{mark('configuration')}] configuration could not be read")
    if report.reachable is None:
        lines.append(f"[{mark('reachability', False)}] reachability: not checked")
    elif report.reachable:
        answered = _ms(report.reach_latency_ms)
        lines.append(f"[ ok ] reachability: OnePin answered GET {report.reach_url}{answered}")
    else:
        what = _REACH_FAILURE_WORDS[report.reach_failure or "unreachable"]
        lines.append(f"[FAIL] reachability: {what} (GET {report.reach_url})")
    if report.key_valid:
        lines.append(
            f"[{mark('key')}] key accepted{_ms(report.whoami_latency_ms)}: user "
            f"{report.user_id}, workspace {report.key_workspace_id}"
        )
        lines.append(f"[{mark('scopes')}] scopes: {', '.join(report.scopes or ()) or 'none'}")
        if "workspace" in failed:
            lines.append("[FAIL] workspace: not the key's (see below)")
    elif report.key_state in ("missing", "refused", "forbidden"):
        where = f" (GET {report.whoami_url})" if report.whoami_url else ""
        lines.append(f"[FAIL] key: {_KEY_STATE_WORDS[report.key_state]}{where}")
    elif "key" in failed:
        lines.append(f"[FAIL] key: could not be checked (GET {report.whoami_url})")
    else:
        lines.append("[  - ] key: not checked")
    lines.append("")
    lines.append(f"Tools enabled ({len(report.tools)}): {', '.join(report.tools) or 'none'}")
    if report.hidden_by_read_only:
        lines.append(f"Hidden by read-only mode: {', '.join(report.hidden_by_read_only)}")
    lines.append("")
    if report.healthy:
        lines.append("Healthy: the server is ready to use.")
    else:
        count = len(report.problems)
        lines.append(f"{count} problem{'s' if count > 1 else ''}:")
        for problem in report.problems:
            lines.append(f"- {problem.check}: {problem.message}")
            lines.append(f"  fix: {problem.fix}")
    return redact("\n".join(lines), tuple(secrets)) + "\n"
