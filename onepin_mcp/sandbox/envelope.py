"""The shapes every sandbox answer takes on the wire: the `data`/`meta`/`pagination` envelope,
the error envelope, FastAPI's `detail` list, and the XML a presigned file URL answers with.

Every API answer carries `X-OnePin-Required-Version`, as the real API's do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.datastructures import URL
from starlette.responses import JSONResponse, Response

from .errors import ApiError, SchemaError
from .faults import new_request_id
from .requestlog import isoformat
from .store import JSON

# The oldest official SDK the sandbox claims to accept; 0.16.1 satisfies it.
REQUIRED_SDK_VERSION = "0.16.0"


def _meta(now: datetime) -> JSON:
    return {"request_id": new_request_id(now), "timestamp": isoformat(now)}


def _api_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-OnePin-Required-Version": REQUIRED_SDK_VERSION, **(extra or {})}


def respond(payload: JSON, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=_api_headers(headers))


def single(
    now: datetime, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return respond({"data": data, "meta": _meta(now)}, status, headers)


def cursor_paged(
    now: datetime, url: URL, items: list[Any], *, limit: int, next_cursor: str | None
) -> Response:
    """A cursor-paginated list answer: `next` carries the opaque cursor of the following page,
    and there is no `prev` (a cursor only goes forward)."""
    next_url = str(url.include_query_params(cursor=next_cursor)) if next_cursor else None
    pagination: JSON = {"next": next_url, "prev": None, "limit": limit}
    payload = {"data": items, "meta": _meta(now), "pagination": pagination}
    return respond(payload)


def paged(
    now: datetime,
    url: URL,
    items: list[Any],
    *,
    offset: int,
    limit: int,
    total: int | None,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A list answer with `pagination`; `total` makes it a counted list. `next`/`prev` are
    absolute URLs with the other query parameters kept, as in the API's examples."""
    has_more = (offset + limit < total) if total is not None else len(items) == limit
    next_url = (
        str(url.include_query_params(offset=offset + limit, limit=limit)) if has_more else None
    )
    prev_url = (
        str(url.include_query_params(offset=max(0, offset - limit), limit=limit))
        if offset > 0
        else None
    )
    pagination: JSON = {"next": next_url, "prev": prev_url, "limit": limit}
    if total is not None:
        pagination["total"] = total
    payload = {
        "data": items if data is None else data,
        "meta": _meta(now),
        "pagination": pagination,
    }
    return respond(payload, 200, headers)


def error_response(now: datetime, error: ApiError) -> Response:
    body: JSON = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return respond({"error": body, "meta": _meta(now)}, error.status, error.headers)


def schema_error_response(error: SchemaError) -> Response:
    return respond({"detail": error.detail}, 422)


def storage_error(status: int, code: str, message: str) -> Response:
    # An expired or unknown presigned URL answers like S3: XML, not the API envelope.
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")
