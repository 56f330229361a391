"""The audit trail of writes: one record per write tool call, whatever its outcome.

Every write tool body runs inside `audited(ctx, workflow_id=..., run_id=...)` (through the
write guard, `onepin_mcp.writes.guard`), the one mechanism that records writes, so that no
write path can forget it. The tool's name comes from the request, never from the body. A
record goes to

- stderr, through the logger `onepin_mcp.audit`: one `key=value` line at INFO, readable beside
  the server's other lines;
- with `--audit-log FILE` (`ONEPIN_MCP_AUDIT_LOG`), one JSON object per line appended to FILE
  (created 0600): `time` (ISO 8601, UTC), `tool`, `outcome`, `workflow_id`, `run_id`,
  `request_id`, `confirmed` (true: the user said yes; null: nobody was asked), `duration_ms`.

`outcome` is `ok`, `recovered` (a start whose answer was lost, its run found), `refused` (the
server sent nothing: budget cap, balance, a state check), `declined` (the user said no),
or `error:<code>`: OnePin's error code (`error:CONFLICT`), `error:timeout` /
`error:connection` (no answer; a start is then looked for, see `writes.start`), `error:cancelled`
(the client gave up on the call), `error:invalid_input`, `error:tool` or `error:internal`.
`request_id` is OnePin's, when the outcome came with one (an error answer); the client does not
hand successful answers' ids to tools.

What a record never holds: the API key (ids are agent-supplied text, so anything shaped like a
key is redacted from them as well), script text, names or any other argument beyond the ids.
The record is written even when the call is cancelled (shielded), and a failure to write the
file is logged, never turned into a failed tool call: the write itself has already happened.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinInputError,
    OnePinTimeoutError,
    OnePinTransportError,
    redact,
)
from onepin_mcp.state import AppState
from onepin_mcp.text import clean_text
from onepin_mcp.writes.policy import called_tool

# The logger's name predates this package and is what operators filter on: kept.
logger = logging.getLogger("onepin_mcp.audit")

MAX_ID_CHARS: Final = 100
# Values made of these characters are written bare in the stderr line; others are JSON-quoted,
# so that a crafted id can't forge another key=value pair or a second line.
_BARE = re.compile(r"[A-Za-z0-9._:@/-]+")


class WriteRefused(ToolError):
    """A write the server refused on its own, before sending anything to OnePin."""

    outcome: str = "refused"


@dataclass
class AuditEntry:
    """One write as it is recorded. Tools fill in what they learn on the way (the run a start
    created, a recovered outcome, whether the user confirmed)."""

    tool: str
    workflow_id: str | None = None
    run_id: str | None = None
    # Pronunciation dictionary entries a write created, changed or deleted.
    entry_ids: list[str] = field(default_factory=list)
    outcome: str | None = None
    request_id: str | None = None
    confirmed: bool | None = None

    def failed(self, error: BaseException) -> None:
        """Set the outcome (and request id) from what ended the call."""
        self.outcome, request_id = _classify(error)
        self.request_id = self.request_id or request_id


@asynccontextmanager
async def audited(
    ctx: Context[AppState, Any],
    *,
    workflow_id: str | None = None,
    run_id: str | None = None,
) -> AsyncIterator[AuditEntry]:
    """Record the write that runs in this block, once, with its outcome. The tool is the one
    this request calls."""
    state = ctx.request_context.lifespan_context
    entry = AuditEntry(tool=called_tool(ctx), workflow_id=workflow_id, run_id=run_id)
    started = anyio.current_time()
    try:
        yield entry
    except BaseException as error:
        entry.failed(error)
        raise
    finally:
        if entry.outcome is None:
            entry.outcome = "ok"
        duration_ms = round((anyio.current_time() - started) * 1000)
        secret = state.settings.api_key.get_secret_value() if state.settings.api_key else ""
        # Shielded: a cancelled call still leaves its record (it may have reached OnePin).
        with anyio.CancelScope(shield=True):
            await write_record(entry, duration_ms, audit_log=state.policy.audit_log, secret=secret)


def record_fields(entry: AuditEntry, duration_ms: int, *, secret: str = "") -> dict[str, Any]:
    """The record as it is written: time, tool, ids, outcome, request id; never the key."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "tool": entry.tool,
        "outcome": entry.outcome or "ok",
        "workflow_id": _safe(entry.workflow_id, secret),
        "run_id": _safe(entry.run_id, secret),
        "entry_ids": [_safe(i, secret) for i in entry.entry_ids] or None,
        "request_id": _safe(entry.request_id, secret),
        "confirmed": entry.confirmed,
        "duration_ms": duration_ms,
    }


async def write_record(
    entry: AuditEntry, duration_ms: int, *, audit_log: str | None, secret: str = ""
) -> None:
    fields = record_fields(entry, duration_ms, secret=secret)
    logger.info("write %s", " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items() if k != "time"))
    if audit_log is None:
        return
    line = json.dumps(fields, ensure_ascii=True, separators=(",", ":")) + "\n"
    try:
        # In a worker thread: a slow disk must not stall every other call on the event loop.
        await anyio.to_thread.run_sync(append_line, audit_log, line)
    except OSError as error:
        logger.warning(
            "could not append to the audit log %s (%s); the stderr line above is the record",
            audit_log,
            error.strerror or type(error).__name__,
        )


def append_line(path: str, line: str) -> None:
    """Append one line with a single write on an O_APPEND descriptor, so that concurrent calls
    (and processes) never interleave within a line. New files are private to the user."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def check_writable(path: str) -> None:
    """Raise `OSError` unless `path` can be appended to: checked at startup, so that a typo in
    `--audit-log` stops the server instead of silently losing the trail."""
    append_line(path, "")


def _classify(error: BaseException) -> tuple[str, str | None]:
    """The outcome an exception means, and OnePin's request id when it carries one. A tool's
    ToolError usually wraps the client error that caused it, so the cause chain is searched."""
    if isinstance(error, anyio.get_cancelled_exc_class()):
        return "error:cancelled", None
    if isinstance(error, WriteRefused):
        return error.outcome, None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OnePinAPIError):
            return f"error:{current.code}", current.request_id
        if isinstance(current, OnePinTimeoutError):
            return "error:timeout", None
        if isinstance(current, OnePinTransportError):
            return "error:connection", None
        if isinstance(current, OnePinInputError):
            return "error:invalid_input", None
        current = current.__cause__
    return ("error:tool" if isinstance(error, ToolError) else "error:internal"), None


def _safe(value: str | None, secret: str) -> str | None:
    if value is None:
        return None
    # Cleaned before redacted: a key with a zero-width space or a line break slipped into it
    # would get past redaction, then be joined back together by the cleaning. Line breaks and
    # tabs are removed, not turned into spaces: an id has none, and a record is one line.
    text = clean_text(value, sys.maxsize).replace("\n", "").replace("\t", "")
    return redact(text, (secret,))[:MAX_ID_CHARS]


def _logfmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=True)
