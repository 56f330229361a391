"""Every error body OnePin (or a proxy in front of it) can send becomes the same error fields."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from onepin_mcp.api.errors import (
    MAX_MESSAGE_CHARS,
    FieldError,
    OnePinAPIError,
    OnePinAuthConfigError,
    OnePinConnectionError,
    OnePinInputError,
    OnePinResponseError,
    OnePinTimeoutError,
    parse_error,
    parse_retry_after,
)

KEY = "op_live_Secret0123456789abcdefABCDEF0123"
PATH = "/api/v1/workflows/0f6c2b8e-4a1d-4c9f-b3e7-8d5a2c1f6e94/runs"


def parse(status: int, body: object, headers: dict[str, str] | None = None) -> OnePinAPIError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_error(status, httpx.Headers(headers or {}), raw, "GET", PATH, secrets=(KEY,))


def test_the_onepin_envelope_gives_code_message_details_and_request_id() -> None:
    error = parse(
        422,
        {
            "error": {
                "code": "VALIDATION_ERROR",
                "message": "Invalid status filter.",
                "details": [
                    {"field": "status", "message": "Empty status token is not allowed."},
                    {"field": "script_text", "message": "Too short.", "line_numbers": [2, 5]},
                ],
            },
            "meta": {
                "request_id": "01JP4Q9AH7Z0A1B2C3D4E5F6G7",
                "timestamp": "2026-03-12T09:01:31Z",
            },
        },
    )
    assert (error.status, error.code, error.message) == (
        422,
        "VALIDATION_ERROR",
        "Invalid status filter.",
    )
    assert error.details == [
        FieldError("status", "Empty status token is not allowed."),
        FieldError("script_text", "Too short.", (2, 5)),
    ]
    assert error.request_id == "01JP4Q9AH7Z0A1B2C3D4E5F6G7"
    assert (error.method, error.path) == ("GET", PATH)
    assert "status: Empty status token is not allowed." in str(error)
    assert "01JP4Q9AH7Z0A1B2C3D4E5F6G7" in str(error)


def test_the_fastapi_validation_shape_lists_each_location_as_a_field() -> None:
    error = parse(
        422,
        {
            "detail": [
                {
                    "loc": ["query", "limit"],
                    "msg": "Input should be less than or equal to 100",
                    "type": "less_than_equal",
                    "input": "500",
                    "ctx": {"le": 100},
                },
                {"loc": ["body", "definition", "graph", 0], "msg": "Field required", "type": "x"},
            ]
        },
    )
    assert error.code == "VALIDATION_ERROR"
    assert error.message == "The request failed validation."
    assert [d.field for d in error.details] == ["query.limit", "body.definition.graph.0"]
    assert error.details[0].message == "Input should be less than or equal to 100"
    assert error.request_id is None


def test_the_fastapi_text_detail_becomes_the_message() -> None:
    error = parse(404, {"detail": "Not Found"})
    assert (error.code, error.message, error.details) == ("NOT_FOUND", "Not Found", [])


def test_a_flat_code_and_message_object_is_understood() -> None:
    error = parse(409, {"code": "RUN_ACTIVE", "message": "A run is active.", "detail": "x"})
    assert (error.code, error.message) == ("RUN_ACTIVE", "A run is active.")


def test_a_flat_object_with_only_a_detail_uses_it_as_the_message() -> None:
    error = parse(400, {"code": "BAD_HEADER", "detail": "X-Workspace-Id is malformed"})
    assert (error.code, error.message) == ("BAD_HEADER", "X-Workspace-Id is malformed")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "BAD_REQUEST"),
        (401, "UNAUTHORIZED"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (409, "CONFLICT"),
        (422, "VALIDATION_ERROR"),
        (426, "UPGRADE_REQUIRED"),
        (429, "RATE_LIMITED"),
        (500, "SERVER_ERROR"),
        (502, "SERVER_ERROR"),
        (503, "SERVER_ERROR"),
        (418, "CLIENT_ERROR"),
    ],
)
def test_without_a_code_in_the_body_the_code_follows_the_status(status: int, code: str) -> None:
    error = parse(status, b"")
    assert error.code == code
    assert error.message  # a short generic text, never empty


def test_an_html_error_page_gives_its_title_not_the_page() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head><body>"
        + b"<p>nginx</p>" * 5000
        + b"</body></html>"
    )
    error = parse(502, page)
    assert error.code == "SERVER_ERROR"
    assert "502 Bad Gateway" in error.message
    assert "HTML" in error.message
    assert "nginx" not in str(error)
    assert len(str(error)) < 400


def test_truncated_json_is_reported_as_malformed_without_the_body() -> None:
    error = parse(500, b'{"error": {"code": "INTERNAL", "message": "boom')
    assert error.code == "SERVER_ERROR"
    assert "malformed JSON" in error.message
    assert "boom" not in error.message


def test_an_empty_body_gets_a_generic_message_for_its_status() -> None:
    error = parse(503, b"")
    assert error.message == "OnePin is temporarily unavailable."


def test_a_plain_text_body_is_shortened() -> None:
    error = parse(500, b"Internal Server Error " * 200)
    assert error.message.startswith("OnePin had an internal error: Internal Server Error")
    assert len(error.message) < 250


def test_a_json_body_that_is_not_an_object_falls_back_to_the_status() -> None:
    error = parse(500, ["unexpected"])
    assert error.code == "SERVER_ERROR"
    assert error.message == (
        "OnePin had an internal error (the response was JSON of an unexpected shape)."
    )


def test_a_very_long_message_is_capped() -> None:
    error = parse(400, {"error": {"code": "BAD_REQUEST", "message": "x" * 10_000}})
    assert len(error.message) == MAX_MESSAGE_CHARS


def test_retry_after_in_seconds_is_read_from_the_header() -> None:
    error = parse(
        429, {"error": {"code": "RATE_LIMITED", "message": "Slow down."}}, {"Retry-After": "2"}
    )
    assert error.retry_after == 2.0
    assert "Retry after 2 s." in str(error)


def test_retry_after_as_an_http_date_is_converted_to_seconds() -> None:
    now = datetime(2026, 3, 12, 9, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Thu, 12 Mar 2026 09:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 12 Mar 2026 08:59:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_an_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_a_negative_retry_after_means_now() -> None:
    assert parse_retry_after("-5") == 0.0


def test_an_upgrade_required_error_carries_the_required_version() -> None:
    error = parse(
        426,
        {
            "error": {
                "code": "UPGRADE_REQUIRED",
                "message": "Too old.",
                "required_version": "0.16.0",
            }
        },
        {"X-OnePin-Required-Version": "0.16.0"},
    )
    assert error.required_version == "0.16.0"
    from_header = parse(426, b"", {"X-OnePin-Required-Version": "0.17.0"})
    assert from_header.required_version == "0.17.0"


def test_a_key_echoed_by_the_server_is_redacted_from_every_field() -> None:
    error = parse(
        401,
        {
            "error": {
                "code": "UNAUTHORIZED",
                "message": f"Key {KEY} is revoked; so is op_live_OtherKey1234567890",
                "details": [{"field": "authorization", "message": f"Bearer {KEY}"}],
            },
            "meta": {"request_id": KEY},
        },
    )
    for text in (str(error), repr(error), error.message, *(d.message for d in error.details)):
        assert KEY not in text
        assert "op_live_OtherKey" not in text
    assert "[redacted]" in error.message


def test_no_headers_are_copied_into_an_error() -> None:
    error = parse(
        500,
        b"",
        {"Set-Cookie": "session=abc123", "X-Internal-Host": "db-7.internal", "Retry-After": "1"},
    )
    assert "abc123" not in str(error)
    assert "db-7.internal" not in str(error)
    assert "abc123" not in repr(error)


def test_the_request_id_falls_back_to_a_response_header() -> None:
    error = parse(502, b"", {"X-Request-Id": "edge-42"})
    assert error.request_id == "edge-42"


def test_every_client_error_type_keeps_the_key_out_of_its_text() -> None:
    errors: list[Exception] = [
        parse(401, {"error": {"code": "UNAUTHORIZED", "message": f"bad {KEY}"}}),
        OnePinAuthConfigError(),
        OnePinInputError("workflow_id", "must be a UUID"),
        OnePinConnectionError("dropped", method="POST", path=PATH, sent=True),
        OnePinTimeoutError("slow", method="GET", path=PATH, sent=True),
        OnePinResponseError("not JSON", status=200, method="GET", path=PATH),
    ]
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)


def test_the_missing_key_error_says_how_to_configure_one() -> None:
    text = str(OnePinAuthConfigError())
    assert "ONEPIN_API_KEY" in text
    assert "onepin login" in text
