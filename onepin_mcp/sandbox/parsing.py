"""Reading requests as FastAPI would: typed query parameters and JSON bodies, each failure
collected as a `detail` issue so that all are reported at once, plus the few value checks the
API makes after the schema (names, run-status tokens, run overrides, search matching).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request

from .errors import SchemaError, invalid, schema_issue
from .store import JSON, RUN_STATUSES

# --- query parsing -----------------------------------------------------------------------------


class QueryReader:
    """Reads typed query parameters, collecting FastAPI-style issues to report them all at once."""

    def __init__(self, request: Request) -> None:
        self.params = request.query_params
        self.issues: list[JSON] = []

    def _issue(self, name: str, msg: str, kind: str, value: Any, ctx: JSON | None = None) -> None:
        self.issues.append(schema_issue(["query", name], msg, kind, value, ctx))

    def integer(
        self, name: str, default: int, *, ge: int | None = None, le: int | None = None
    ) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self._issue(
                name,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
                raw,
            )
            return default
        if ge is not None and value < ge:
            self._issue(
                name,
                f"Input should be greater than or equal to {ge}",
                "greater_than_equal",
                raw,
                {"ge": ge},
            )
        elif le is not None and value > le:
            self._issue(
                name,
                f"Input should be less than or equal to {le}",
                "less_than_equal",
                raw,
                {"le": le},
            )
        return value

    def required(self, name: str) -> str | None:
        """A parameter without a default: missing (or empty) is FastAPI's `missing` issue."""
        raw = self.params.get(name)
        if not raw:
            self._issue(name, "Field required", "missing", None)
            return None
        return raw

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        raw = self.params.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on", "t", "y"):
            return True
        if lowered in ("false", "0", "no", "off", "f", "n"):
            return False
        self._issue(
            name, "Input should be a valid boolean, unable to interpret input", "bool_parsing", raw
        )
        return default

    def text(self, name: str, *, max_length: int | None = None) -> str | None:
        raw = self.params.get(name)
        if raw is not None and max_length is not None and len(raw) > max_length:
            self._issue(
                name,
                f"String should have at most {max_length} characters",
                "string_too_long",
                raw,
                {"max_length": max_length},
            )
        return raw

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        raw = self.params.get(name)
        if raw is not None and raw not in allowed:
            self._enum_issue(name, raw, allowed)
            return None
        return raw

    def choices(self, name: str, allowed: Sequence[str]) -> list[str]:
        values = self.params.getlist(name)
        for index, value in enumerate(values):
            if value not in allowed:
                self._enum_issue(name, value, allowed, index=index)
        return [value for value in values if value in allowed]

    def _enum_issue(
        self, name: str, value: str, allowed: Sequence[str], index: int | None = None
    ) -> None:
        expected = ", ".join(f"'{a}'" for a in allowed[:-1]) + f" or '{allowed[-1]}'"
        loc: list[str | int] = ["query", name] if index is None else ["query", name, index]
        self.issues.append(
            schema_issue(loc, f"Input should be {expected}", "enum", value, {"expected": expected})
        )

    def moment(self, name: str) -> datetime | None:
        """A datetime parameter. Unparseable is a schema issue; a missing offset is semantic."""
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            self._issue(
                name,
                "Input should be a valid datetime or date, invalid character in year",
                "datetime_from_date_parsing",
                raw,
                {"error": "invalid character in year"},
            )
            return None
        if value.tzinfo is None:
            raise invalid(
                name,
                f"'{name}' must include a UTC offset, e.g. 2026-03-01T00:00:00Z.",
                "Datetime filters must be timezone-aware.",
            )
        return value.astimezone(timezone.utc)

    def page(self) -> tuple[int, int]:
        return self.integer("offset", 0, ge=0), self.integer("limit", 20, ge=1, le=100)

    def done(self) -> None:
        if self.issues:
            raise SchemaError(self.issues)


# --- bodies ------------------------------------------------------------------------------------


def json_body(raw: bytes, *, required: bool) -> JSON | None:
    if not raw.strip():
        if required:
            raise SchemaError([schema_issue(["body"], "Field required", "missing", None)])
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        raise SchemaError(
            [
                schema_issue(
                    ["body", position], "JSON decode error", "json_invalid", {}, {"error": str(exc)}
                )
            ]
        ) from exc
    if not isinstance(value, dict):
        raise SchemaError(
            [
                schema_issue(
                    ["body"],
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                    value,
                )
            ]
        )
    return value


class BodyReader:
    """Typed fields of a JSON object body, with FastAPI-style issues."""

    def __init__(self, body: JSON | None) -> None:
        self.body = body or {}
        self.issues: list[JSON] = []

    def has(self, name: str) -> bool:
        return name in self.body

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        min_length: int = 0,
        max_length: int | None = None,
    ) -> str | None:
        if name not in self.body:
            if required:
                self.issues.append(
                    schema_issue(["body", name], "Field required", "missing", self.body)
                )
            return None
        value = self.body[name]
        if value is None and not required:
            return None
        if not isinstance(value, str):
            self.issues.append(
                schema_issue(["body", name], "Input should be a valid string", "string_type", value)
            )
            return None
        if len(value) < min_length:
            self.issues.append(
                schema_issue(
                    ["body", name],
                    f"String should have at least {min_length} character"
                    + ("s" if min_length > 1 else ""),
                    "string_too_short",
                    value,
                    {"min_length": min_length},
                )
            )
        elif max_length is not None and len(value) > max_length:
            self.issues.append(
                schema_issue(
                    ["body", name],
                    f"String should have at most {max_length} characters",
                    "string_too_long",
                    value,
                    {"max_length": max_length},
                )
            )
        return value

    def mapping(self, name: str, *, required: bool = False) -> JSON | None:
        if name not in self.body or (self.body[name] is None and not required):
            if required:
                self.issues.append(
                    schema_issue(["body", name], "Field required", "missing", self.body)
                )
            return None
        value = self.body[name]
        if not isinstance(value, dict):
            self.issues.append(
                schema_issue(
                    ["body", name],
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                    value,
                )
            )
            return None
        return value

    def done(self) -> None:
        if self.issues:
            raise SchemaError(self.issues)


# --- values the API checks after the schema ---------------------------------------------------


def matches(needle: str, *haystack: str | None) -> bool:
    """How `search` parameters match: a case-insensitive substring of any field."""
    lowered = needle.lower()
    return any(lowered in value.lower() for value in haystack if value)


def checked_name(name: str) -> str:
    trimmed = name.strip()
    if not trimmed:
        raise invalid("name", "Name must not be blank.")
    if len(trimmed) > 200:
        raise invalid("name", "Name must be at most 200 characters.")
    return trimmed


def status_tokens(raw: str) -> set[str]:
    tokens = raw.split(",")
    if any(not token.strip() for token in tokens):
        raise invalid("status", "Empty status token is not allowed.", "Invalid status filter.")
    unknown = [token for token in tokens if token not in RUN_STATUSES]
    if unknown:
        raise invalid(
            "status",
            f"Unknown status {unknown[0]!r}; use {', '.join(RUN_STATUSES)}.",
            "Invalid status filter.",
        )
    return set(tokens)


def run_overrides(raw: bytes) -> tuple[str | None, str | None]:
    body = BodyReader(json_body(raw, required=False))
    script_text = body.string("script_text")
    source_language = body.string("source_language", min_length=2, max_length=35)
    body.done()
    return script_text, source_language
