"""Client errors, and the one parser that turns any OnePin error response into `OnePinAPIError`.

OnePin answers errors in three body shapes (its own envelope, FastAPI's `detail`, and a flat
`{code, message}` object) and proxies in front of it answer with HTML or nothing at all. Whatever
arrives, the caller gets the same fields. Two rules hold for every error here: no header and no
whole body is ever copied into it, and anything that looks like an API key is redacted from text
that came from the server.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from onepin_mcp.text import clean_text

MAX_MESSAGE_CHARS = 500
MAX_DETAIL_MESSAGE_CHARS = 300
MAX_DETAILS = 20
# Enough to recognise an HTML page's title or a short plain-text error, never a whole page.
MAX_BODY_SCAN_BYTES = 64 * 1024

REDACTED = "[redacted]"
# The one rule for "anything key-shaped", used for every text that may reach a person, a log or
# a model: the OnePin key prefixes with anything after them, whatever the case (a key pasted
# into a setting that lower- or upper-cases its value is still a key). Broader than the form a
# valid key has (`options.API_KEY_FORM`), on purpose: a key cut short or mistyped is still
# most of a secret.
KEY_SHAPED = re.compile(r"op_(?:live|test)_[A-Za-z0-9]{4,}", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")

# What OnePin's own clients call each status when the body carries no code.
_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "PAYMENT_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    426: "UPGRADE_REQUIRED",
    429: "RATE_LIMITED",
}

_MESSAGE_BY_STATUS = {
    400: "The request was rejected as malformed.",
    401: "The API key is missing, invalid or revoked.",
    402: "The account has reached a paid limit.",
    403: "The API key is not allowed to do this.",
    404: "Not found.",
    409: "The request conflicts with the current state.",
    422: "The request failed validation.",
    426: "This client version is no longer supported by OnePin.",
    429: "Too many requests.",
    500: "OnePin had an internal error.",
    502: "OnePin is unreachable behind its gateway (bad gateway).",
    503: "OnePin is temporarily unavailable.",
    504: "OnePin did not answer in time (gateway timeout).",
}


class OnePinError(Exception):
    """Base of every error the client raises."""

    #: How many attempts were made before giving up (set by the client).
    attempts: int = 1


class OnePinInputError(OnePinError, ValueError):
    """An argument refused before any request was sent (e.g. a workflow id that isn't a UUID)."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        self.problem = problem
        super().__init__(f"{argument}: {problem}")


class OnePinAuthConfigError(OnePinError):
    """No API key is configured; raised before any request that needs one."""

    def __init__(self) -> None:
        super().__init__(
            "No OnePin API key is configured. Set the ONEPIN_API_KEY environment variable to "
            "an op_live_… key, or run `onepin login` (it writes ~/.onepin/credentials)."
        )


@dataclass(frozen=True)
class FieldError:
    """One field-level validation problem reported by the API."""

    field: str
    message: str
    line_numbers: tuple[int, ...] = ()


class OnePinAPIError(OnePinError):
    """OnePin answered with a non-2xx status."""

    #: The `X-Workspace-Id` the request carried (set by the client), None when it sent none: a
    #: 403 to a request that names a workspace may be OnePin refusing that workspace for the key.
    workspace_id: str | None = None

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        method: str,
        path: str,
        details: Iterable[FieldError] = (),
        request_id: str | None = None,
        retry_after: float | None = None,
        required_version: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        self.details: list[FieldError] = list(details)
        self.request_id = request_id
        self.retry_after = retry_after
        self.required_version = required_version
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"OnePin API error {self.status} {self.code} on {self.method} {self.path}: "
        text += self.message
        if self.details:
            text += " (" + "; ".join(f"{d.field}: {d.message}" for d in self.details) + ")"
        if self.retry_after is not None:
            text += f" Retry after {self.retry_after:g} s."
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"OnePinAPIError(status={self.status}, code={self.code!r}, method={self.method!r}, "
            f"path={self.path!r}, request_id={self.request_id!r})"
        )


class OnePinTransportError(OnePinError):
    """No usable HTTP response arrived. `sent` says whether the request may have reached OnePin."""

    def __init__(self, message: str, *, method: str, path: str, sent: bool) -> None:
        self.method = method
        self.path = path
        self.sent = sent
        super().__init__(message)


class OnePinConnectionError(OnePinTransportError):
    """The connection failed or dropped."""


class OnePinTimeoutError(OnePinTransportError):
    """An attempt took longer than the configured timeout."""


class OnePinResponseError(OnePinError):
    """A 2xx response whose body isn't the documented envelope or doesn't fit the expected model."""

    def __init__(
        self, problem: str, *, status: int, method: str, path: str, request_id: str | None = None
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.problem = problem
        text = f"Unexpected OnePin response to {method} {path} (HTTP {status}): {problem}"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)


class OnePinFileError(OnePinError):
    """Fetching a presigned file (a clip's playback link) failed at the storage host.

    Not an `OnePinAPIError`: storage answers in its own terms (S3-style `AccessDenied` for an
    expired link), and a 403 there says nothing about the API key's scopes. `status` is None
    when no answer arrived; `code` is storage's own error code when it sent one. Never holds the
    URL: its signature is a credential for as long as the link lives."""

    def __init__(self, problem: str, *, status: int | None = None, code: str | None = None) -> None:
        self.problem = problem
        self.status = status
        self.code = code
        super().__init__(problem)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Text made safe to show: cleaned of invisible characters (`text.clean_text`, uncapped),
    then anything shaped like an OnePin key, and each given secret, replaced with a marker.

    Cleaning comes first and belongs here, not to each caller: a zero-width space or a tag
    character slipped into a key would get past the masking, and any later cleaning would join
    the key back together in plain sight."""
    text = clean_text(text, sys.maxsize)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return KEY_SHAPED.sub(REDACTED, text)


def parse_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    *,
    now: datetime | None = None,
    secrets: Iterable[str] = (),
) -> OnePinAPIError:
    """Build the error for a non-2xx response from whatever body shape it has.

    `headers` must be case-insensitive (httpx's are). `now` anchors an HTTP-date `Retry-After`;
    `secrets` are redacted from any server text that ends up in the error.
    """
    secrets = tuple(secrets)
    payload = _json_object(body)
    code: str | None = None
    message: str | None = None
    details: list[FieldError] = []
    request_id: str | None = None
    required_version: str | None = None

    if payload is not None:
        error = payload.get("error")
        if isinstance(error, Mapping):  # OnePin envelope
            code = _text(error.get("code"))
            message = _text(error.get("message"))
            details = _envelope_details(error.get("details"))
            required_version = _text(error.get("required_version")) or _text(
                error.get("minimum_version")
            )
        elif "code" in payload or "message" in payload:  # flat {code, message, detail}
            code = _text(payload.get("code"))
            message = _text(payload.get("message"))
            detail = payload.get("detail")
            if message is None:
                message = _text(detail)
            details = _fastapi_details(detail)
        elif "detail" in payload:  # FastAPI
            detail = payload["detail"]
            message = _text(detail)
            details = _fastapi_details(detail)
            if message is None and details:
                message = "The request failed validation."
        meta = payload.get("meta")
        if isinstance(meta, Mapping):
            request_id = _text(meta.get("request_id"))
    else:
        message = _non_json_summary(status, body)

    request_id = request_id or _text(headers.get("x-request-id"))
    required_version = required_version or _text(headers.get("x-onepin-required-version"))
    clean_details = [
        FieldError(
            field=_cap(redact(d.field, secrets), 120),
            message=_cap(redact(d.message, secrets), MAX_DETAIL_MESSAGE_CHARS),
            line_numbers=d.line_numbers,
        )
        for d in details[:MAX_DETAILS]
    ]
    return OnePinAPIError(
        status=status,
        code=_cap(redact(code, secrets), 64) if code else fallback_code(status),
        message=_cap(redact(message, secrets), MAX_MESSAGE_CHARS)
        if message
        else fallback_message(status),
        method=method,
        path=path,
        details=clean_details,
        request_id=_cap(redact(request_id, secrets), 100) if request_id else None,
        retry_after=parse_retry_after(headers.get("retry-after"), now=now),
        required_version=_cap(redact(required_version, secrets), 40) if required_version else None,
    )


def fallback_code(status: int) -> str:
    if status in _CODE_BY_STATUS:
        return _CODE_BY_STATUS[status]
    if status >= 500:
        return "SERVER_ERROR"
    return "CLIENT_ERROR" if 400 <= status < 500 else "UNEXPECTED_STATUS"


def fallback_message(status: int) -> str:
    if status in _MESSAGE_BY_STATUS:
        return _MESSAGE_BY_STATUS[status]
    if status >= 500:
        return f"OnePin failed with HTTP {status}."
    return f"OnePin refused the request with HTTP {status}."


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a `Retry-After` value (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # NaN and infinities parse as floats but mean nothing here.
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


def _json_object(body: bytes) -> Mapping[str, Any] | None:
    if not body.strip():
        return None
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return decoded if isinstance(decoded, Mapping) else None


def _envelope_details(raw: object) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    details = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        lines = item.get("line_numbers")
        details.append(
            FieldError(
                field=_text(item.get("field")) or "",
                message=_text(item.get("message")) or "",
                line_numbers=tuple(n for n in lines if isinstance(n, int))
                if isinstance(lines, list)
                else (),
            )
        )
    return details


def _fastapi_details(raw: object) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    details = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        loc = item.get("loc")
        field = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
        details.append(FieldError(field=field, message=_text(item.get("msg")) or ""))
    return details


def _non_json_summary(status: int, body: bytes) -> str | None:
    """A short, readable hint from an HTML or plain-text body; never the body itself."""
    text = body[:MAX_BODY_SCAN_BYTES].decode("utf-8", errors="replace").strip()
    if not text:
        return None
    title = _HTML_TITLE.search(text)
    if title:
        summary = _WHITESPACE.sub(" ", _HTML_TAG.sub("", title.group(1))).strip()
        kind = "an HTML page"
    elif text.startswith(("{", "[")):
        summary, kind = "", "JSON of an unexpected shape" if _is_json(text) else "malformed JSON"
    elif "<" in text[:200]:
        summary, kind = "", "an HTML page"
    else:
        summary = _WHITESPACE.sub(" ", text)
        kind = "plain text"
    base = fallback_message(status).rstrip(".")
    if summary:
        return f"{base}: {_cap(summary, 120)} (the response was {kind})."
    return f"{base} (the response was {kind})."


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _text(value: object) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
