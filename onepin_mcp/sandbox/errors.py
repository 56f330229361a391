"""What a sandbox handler raises when a request fails: `ApiError` and `SchemaError`.

The two shapes the real API (FastAPI) answers with:
- schema failures of query or body (`limit=500`, `offset=-1`, bad JSON, a wrong type) are a
  `SchemaError`, answered 422 `{"detail": [{loc, msg, type, input, ctx}]}`;
- semantic failures (a bad run-status token, a naive datetime, an inverted range, an invalid
  graph, an empty script) are an `ApiError` 422 in the OnePin envelope with `error.details[]`;
- everything else is an `ApiError` in the OnePin envelope `{"error": {code, message}, "meta"}`.

How either becomes a response is `envelope`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .store import JSON


class ApiError(Exception):
    """An answer in the OnePin error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[JSON] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


class SchemaError(Exception):
    """A request-schema failure, answered in FastAPI's `{"detail": [...]}` shape."""

    def __init__(self, detail: list[JSON]) -> None:
        super().__init__("request validation failed")
        self.detail = detail


def invalid(field_name: str, message: str, summary: str | None = None) -> ApiError:
    """A semantic 422: one `details[]` entry naming the field."""
    return ApiError(
        422,
        "VALIDATION_ERROR",
        summary or message,
        details=[{"field": field_name, "message": message}],
    )


def schema_issue(
    loc: Sequence[str | int], msg: str, kind: str, value: Any, ctx: JSON | None = None
) -> JSON:
    """One entry of FastAPI's `detail` list."""
    issue: JSON = {"loc": list(loc), "msg": msg, "type": kind, "input": value}
    if ctx is not None:
        issue["ctx"] = ctx
    return issue
