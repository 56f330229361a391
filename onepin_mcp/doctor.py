"""`onepin-mcp doctor`: is this server set up to work, and if not, what to change.

`diagnose()` runs the checks and returns a `DoctorReport` (structured, so tests assert on
fields rather than on text); `render()` turns it into the human-readable report. The checks:
where the key comes from (shown masked: never more than its last 4 characters), the base URL and
workspace, whether OnePin answers (GET /nodes, no key needed, with latency), whether the key is
accepted (GET /auth/whoami), whether its scopes cover the enabled tools, and which tools the
current selection enables. Each failed check is a `Problem` with the fix in words.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from onepin_mcp import __version__
from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.errors import OnePinAPIError, OnePinError, OnePinTransportError, redact
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

    # One attempt per check: the report should show the state now, quickly, not retries.
    async with OnePinClient(settings, transport=transport, retry=RetryPolicy.disabled()) as client:
        started = time.perf_counter()
        try:
            await client.list_nodes()
        except OnePinTransportError as exc:
            reachable = False
            problems.append(
                Problem(
                    "reachability",
                    f"OnePin at {settings.base_url} did not answer: {_short(exc)}",
                    f"Check the network, and the base URL ({_base_url_words(settings)}; "
                    f"set it with {ENV_BASE_URL}).",
                )
            )
        except OnePinError as exc:
            # Something answered, but not like the OnePin API: most often a wrong base URL.
            reachable = False
            problems.append(
                Problem(
                    "reachability",
                    f"{settings.base_url} answered GET /api/v1/nodes, but not as the OnePin API "
                    f"does: {_short(exc)}",
                    f"Check the base URL ({_base_url_words(settings)}; set it with "
                    f"{ENV_BASE_URL}): it should be the API's address, such as "
                    "https://api.onepin.ai.",
                )
            )
        else:
            reachable = True
        reach_ms = (time.perf_counter() - started) * 1000

        if secret is not None and reachable:
            started = time.perf_counter()
            try:
                whoami = await client.whoami()
            except OnePinAPIError as exc:
                whoami_ms = (time.perf_counter() - started) * 1000
                key_valid = False if exc.status in (401, 403) else None
                problems.append(_key_problem(exc, source))
            except OnePinError as exc:
                problems.append(
                    Problem(
                        "key",
                        f"Could not check the key: {_short(exc)}",
                        "Run the doctor again; if it persists, check the network.",
                    )
                )
            else:
                whoami_ms = (time.perf_counter() - started) * 1000
                key_valid = True
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
                f"workspace {key_workspace}; OnePin refuses calls for another workspace",
                f"Unset {ENV_WORKSPACE_ID}, or use a key created in that workspace.",
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
    )


def _missing_scopes(enabled: list[ToolSpec], granted: set[str]) -> dict[str, tuple[str, ...]]:
    needed: dict[str, list[str]] = {}
    for spec in enabled:
        for scope in spec.scopes:
            if scope not in granted:
                needed.setdefault(scope, []).append(spec.name)
    return {scope: tuple(names) for scope, names in sorted(needed.items())}


def _key_problem(exc: OnePinAPIError, source: KeySource) -> Problem:
    where = _KEY_SOURCE_WORDS[source]
    if exc.status == 401:
        return Problem(
            "key",
            f"OnePin refused the key ({where}): 401 {exc.code}",
            f"The key is invalid, revoked or mistyped. {KEY_HELP}",
        )
    if exc.status == 403:
        return Problem(
            "key",
            f"OnePin refused GET /auth/whoami for the key ({where}): 403 {exc.code}",
            "The key may be restricted; create a new key in the OnePin dashboard.",
        )
    return Problem(
        "key",
        f"Could not check the key: OnePin answered {exc.status} {exc.code}",
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
    else:
        lines.append(f"[{mark('configuration')}] configuration could not be read")
    if report.reachable is None:
        lines.append(f"[{mark('reachability', False)}] reachability: not checked")
    elif report.reachable:
        answered = _ms(report.reach_latency_ms)
        lines.append(f"[ ok ] reachability: OnePin answered GET /nodes{answered}")
    else:
        lines.append("[FAIL] reachability: OnePin did not answer")
    if report.key_valid:
        lines.append(
            f"[{mark('key')}] key accepted{_ms(report.whoami_latency_ms)}: user "
            f"{report.user_id}, workspace {report.key_workspace_id}"
        )
        lines.append(f"[{mark('scopes')}] scopes: {', '.join(report.scopes or ()) or 'none'}")
        if "workspace" in failed:
            lines.append("[FAIL] workspace: does not match the key's")
    elif "key" in failed:
        lines.append("[FAIL] key: not accepted")
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
