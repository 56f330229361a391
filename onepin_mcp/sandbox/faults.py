"""Faults on demand: make the sandbox misbehave the way a real API and its network do.

A test (or `POST /_sandbox/faults`) installs rules; each API request takes at most one use of the
first installed rule that matches it, so rules queue up into a script ("two 429s, then a 502").

JSON form of a rule (unknown keys are rejected)::

    {"method": "POST" | ... | null,        # null or absent: any method
     "path": "/api/v1/workflows/*/runs",   # fnmatch glob on the path (`*` also matches `/`)
     "times": 1,                           # uses before the rule retires; null: until cleared
     # and an action:
     "latency_ms": 150,                    # wait before handling; combines with any other action
     "status": 503, "retry_after": "2",    # answer an OnePin error envelope, request not processed
     "drop": "before" | "after",           # close the connection with no response; "after" first
                                           # lets the API process the request (state changes)
     "body": "malformed_json" | "html" | "empty",  # answer a broken body instead, request not
                                           # processed; status defaults to 200 (502 for html),
                                           # `retry_after` allowed
     "slow_body_ms": 800,                  # the real response, its body dribbled out over that time
     "late_s": 30}                         # processed only once sandbox time has moved on by 30 s,
                                           # and never answered: the connection is held until the
                                           # client gives up (a start that times out, then happens)

Latencies are real time, not sandbox time: they exist to exercise a client's timeouts. A late
request's delay is sandbox time, so that a test decides when it is processed (by advancing a
manual clock); like a run's progress it happens lazily, on the first API request once it is due.
"""

from __future__ import annotations

import asyncio
import functools
import http
import itertools
import logging
import math
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Final, Literal, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .requestlog import RequestLog, RequestLogMiddleware, is_control_path, isoformat, utc_now

logger = logging.getLogger(__name__)

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

MAX_DELAY_MS: Final = 600_000
"""Upper bound for latency_ms and slow_body_ms: ten minutes is longer than any client timeout."""

MAX_LATE_S: Final = 86_400.0
"""Upper bound for late_s, in sandbox seconds: a day."""

SLOW_BODY_PIECES: Final = 5
"""How many pieces a slow body is cut into (fewer when the body is shorter than that)."""

# How long a drop waits for the server to take notice of the closed connection (normally the
# next turn of the event loop), and for the rest of a request body to arrive before that.
_DISCONNECT_GRACE_S: Final = 5.0


class ConnectionDropped(Exception):
    """The connection is to end without a response.

    Over a real server the fault closes the socket itself and nothing is raised; in-process (no
    socket to close) this is raised out of the app instead, and `SandboxTransport` turns it into
    the `httpx.RemoteProtocolError` a client would see from a real server.
    """


class FaultRuleError(ValueError):
    """A fault rule (or a batch of them) is malformed.

    `errors` lists the problems in the FastAPI validation shape (`loc`, `msg`, `type`), so the
    control API can answer `422 {"detail": errors}`.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        summary = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'rule'}: {e['msg']}" for e in errors
        )
        super().__init__(f"invalid fault rule: {summary}")


_Count = Annotated[int, Field(strict=True, ge=1)]
_DelayMs = Annotated[int, Field(strict=True, ge=0, le=MAX_DELAY_MS)]


class FaultRule(BaseModel):
    """One rule: which requests it applies to, how often, and what goes wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str | None = None
    path: str
    times: _Count | None = 1
    latency_ms: _DelayMs | None = None
    status: Annotated[int, Field(strict=True, ge=200, le=599)] | None = None
    retry_after: str | None = None
    drop: Literal["before", "after"] | None = None
    body: Literal["malformed_json", "html", "empty"] | None = None
    slow_body_ms: Annotated[int, Field(strict=True, ge=1, le=MAX_DELAY_MS)] | None = None
    late_s: Annotated[float, Field(strict=True, ge=0, le=MAX_LATE_S)] | None = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is None:
            return None
        method = value.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(HTTP_METHODS))} or null")
        return method

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must be a glob starting with '/', e.g. /api/v1/workflows/*")
        return value

    @field_validator("retry_after", mode="before")
    @classmethod
    def _header_value(cls, value: object) -> object:
        # Seconds are the common form, so a JSON number is accepted as well as a string.
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError("retry_after must not be negative")
            return str(value)
        if isinstance(value, str) and not (
            value and value.isascii() and value.isprintable() and len(value) <= 64
        ):
            # Also keeps CR/LF out of a response header.
            raise ValueError("retry_after must be a short printable ASCII header value")
        return value

    @model_validator(mode="after")
    def _one_coherent_action(self) -> FaultRule:
        if self.late_s is not None:
            others = (self.status, self.body, self.slow_body_ms, self.drop, self.retry_after)
            if any(other is not None for other in others):
                raise ValueError(
                    "late_s holds the request unanswered; it cannot be combined with status, "
                    "body, slow_body_ms, drop or retry_after"
                )
        elif self.drop is not None:
            if self.status is not None or self.body is not None or self.slow_body_ms is not None:
                raise ValueError("drop cannot be combined with status, body or slow_body_ms")
            if self.retry_after is not None:
                raise ValueError("retry_after needs a response, and a drop sends none")
        elif self.slow_body_ms is not None:
            if self.status is not None or self.body is not None or self.retry_after is not None:
                raise ValueError(
                    "slow_body_ms slows the real response; it cannot be combined with "
                    "status, body or retry_after"
                )
        elif self.body is None:
            if self.status is None:
                if self.latency_ms is None:
                    raise ValueError(
                        "a fault needs an action: latency_ms, status, drop, body, slow_body_ms "
                        "or late_s"
                    )
                if self.retry_after is not None:
                    raise ValueError("retry_after needs a status or a body")
            elif self.status < 400:
                raise ValueError("a status fault answers an error: use a status from 400 to 599")
        return self

    @property
    def response_status(self) -> int | None:
        """The status of the response this rule makes up, if it makes one up."""
        if self.body is not None:
            return self.status or (502 if self.body == "html" else 200)
        return self.status

    def matches(self, method: str, path: str) -> bool:
        # Case-sensitive like URL paths; fnmatchcase also ignores the platform's path rules.
        return (self.method is None or self.method == method.upper()) and fnmatchcase(
            path, self.path
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as given: selectors always, actions only when set."""
        return {
            "method": self.method,
            "path": self.path,
            "times": self.times,
            **self.model_dump(
                exclude={"method", "path", "times"},
                exclude_none=True,
            ),
        }


def parse_fault_rules(payload: object) -> list[FaultRule]:
    """Rules from the body of `POST /_sandbox/faults`: one rule, or `{"faults": [rule, ...]}`.

    Raises `FaultRuleError` listing every problem, so nothing is installed from a bad batch.
    """
    if not isinstance(payload, Mapping):
        raise _shape_error([], 'expected a fault rule object or {"faults": [rules]}', "model_type")
    if "faults" not in payload:
        return _validate_all([payload], prefix=None)
    for key in payload:
        if key != "faults":
            raise _shape_error([str(key)], "unexpected key next to 'faults'", "extra_forbidden")
    items = payload["faults"]
    if not isinstance(items, list) or not items:
        raise _shape_error(["faults"], "must be a non-empty list of rules", "list_type")
    return _validate_all(items, prefix=["faults"])


def _shape_error(loc: list[str | int], msg: str, kind: str) -> FaultRuleError:
    return FaultRuleError([{"loc": loc, "msg": msg, "type": kind}])


def _validate_all(items: list[Any], prefix: list[str] | None) -> list[FaultRule]:
    rules: list[FaultRule] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            rules.append(item if isinstance(item, FaultRule) else FaultRule.model_validate(item))
        except ValidationError as exc:
            where: list[str | int] = [*prefix, index] if prefix is not None else []
            errors.extend(
                {
                    "loc": [*where, *error["loc"]],
                    # pydantic prefixes the messages of our own checks; they read better without.
                    "msg": error["msg"].removeprefix("Value error, "),
                    "type": error["type"],
                }
                for error in exc.errors(
                    include_url=False, include_context=False, include_input=False
                )
            )
    if errors:
        raise FaultRuleError(errors)
    return rules


@dataclass(frozen=True)
class Fault:
    """An installed rule: its id and how many uses it has left (None: until cleared)."""

    id: str
    rule: FaultRule
    remaining: int | None

    def to_json(self) -> dict[str, Any]:
        """The form served by `GET /_sandbox/faults`."""
        return {"id": self.id, **self.rule.to_json(), "remaining": self.remaining}


@dataclass
class _Installed:
    id: str
    rule: FaultRule
    remaining: int | None

    def frozen(self) -> Fault:
        return Fault(self.id, self.rule, self.remaining)


class FaultRules:
    """The installed rules, in installation order.

    Uses are taken under a lock, and a rule retires with its last use, so a rule with `times=2`
    applies to exactly two requests however many arrive at once (and from whichever thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installed: list[_Installed] = []
        self._ids = itertools.count(1)

    def add(self, rule: FaultRule | Mapping[str, Any]) -> Fault:
        """Install one rule (a `FaultRule` or its JSON form); raises `FaultRuleError`."""
        return self.add_many([rule])[0]

    def add_many(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> list[Fault]:
        """Install several rules, all or none."""
        validated = _validate_all(list(rules), prefix=None)
        with self._lock:
            installed = [
                _Installed(f"flt_{next(self._ids)}", rule, rule.times) for rule in validated
            ]
            self._installed.extend(installed)
            return [entry.frozen() for entry in installed]

    def add_json(self, payload: object) -> list[Fault]:
        """Install what `POST /_sandbox/faults` received (see `parse_fault_rules`)."""
        return self.add_many(parse_fault_rules(payload))

    def active(self) -> list[Fault]:
        """The rules that still have uses left, in the order they apply."""
        with self._lock:
            return [entry.frozen() for entry in self._installed]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._installed)
            self._installed = [e for e in self._installed if e.id != fault_id]
            return len(self._installed) != before

    def clear(self) -> None:
        with self._lock:
            self._installed.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Use up one application of the first rule matching this request, if any.

        Returns the rule as it was before this use (so `remaining` counts this one).
        """
        with self._lock:
            for index, entry in enumerate(self._installed):
                if entry.rule.matches(method, path):
                    taken = entry.frozen()
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining == 0:
                            del self._installed[index]
                    return taken
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._installed)

    def __repr__(self) -> str:
        return f"FaultRules({len(self)} active)"


# --- Responses a fault makes up --------------------------------------------------------------

_ERROR_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
    426: "UPGRADE_REQUIRED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}

_ERROR_MESSAGES: Final = {
    429: "Too many requests.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service temporarily unavailable. Please retry later.",
    504: "Gateway timeout.",
}

# A response cut off mid-string: what a client gets when a proxy or the network truncates JSON.
MALFORMED_JSON_BODY: Final = (
    b'{"data": {"id": "7d1e4b2a-9c3f-4e8d-a6b5-0f2c1d3e4a59", "status": "runn'
)

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_request_id(now: datetime) -> str:
    """A ULID (26 Crockford base-32 characters, time-ordered), the form of `meta.request_id`."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _known_status(status: int) -> http.HTTPStatus | None:
    try:
        return http.HTTPStatus(status)
    except ValueError:
        return None


def _phrase(status: int) -> str:
    known = _known_status(status)
    return known.phrase if known is not None else "Error"


def error_envelope(status: int, *, request_id: str, timestamp: datetime) -> dict[str, Any]:
    """The OnePin error body a real server would send with `status`."""
    known = _known_status(status)
    code = _ERROR_CODES.get(status) or (known.name if known is not None else "HTTP_ERROR")
    return {
        "error": {"code": code, "message": _ERROR_MESSAGES.get(status, f"{_phrase(status)}.")},
        "meta": {"request_id": request_id, "timestamp": isoformat(timestamp)},
    }


def html_error_page(status: int) -> bytes:
    """The page a reverse proxy in front of the API serves when the API is unreachable."""
    title = f"{status} {_phrase(status)}"
    return (
        "<html>\r\n"
        f"<head><title>{title}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    ).encode("ascii")


# --- Dropping a connection -------------------------------------------------------------------


class _Transport(Protocol):
    def close(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def _socket_transport_of(owner: object) -> _Transport | None:
    """`owner.transport` if it is the transport of a socket connection.

    Duck-typed rather than isinstance(asyncio.Transport) so that event loops whose transports do
    not subclass asyncio's (uvloop) are recognised too; requiring a socket keeps this from ever
    closing anything else (a subprocess's pipes, say) that happens to be called `transport`.
    """
    transport: Any = getattr(owner, "transport", None)
    if not all(callable(getattr(transport, name, None)) for name in ("close", "get_extra_info")):
        return None
    try:
        has_socket = transport.get_extra_info("socket") is not None
    except Exception:  # a lookalike that is no transport after all
        return None
    return transport if has_socket else None


_MAX_SEARCH: Final = 32


def find_transport(send: Send) -> _Transport | None:
    """The socket transport of the connection that `send` answers on, if the server exposes it.

    ASGI offers no way to close a connection without responding: a server answers 500 to an app
    that raises before responding. uvicorn's `send` is a method of the connection's
    request/response cycle, which holds the transport; middleware (Starlette's error middleware,
    the request log) hide it in closures. So: follow closures, partials and `__wrapped__` from
    `send` to a bound method called `send`, then fall back to the coroutine of the task serving
    the request (uvicorn's `run_asgi`, a method of the same cycle). None when neither is found,
    as in-process, where there is no socket at all.
    """
    pending: list[object] = [send]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_SEARCH:
        item = pending.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        if getattr(item, "__name__", None) == "send":
            transport = _socket_transport_of(getattr(item, "__self__", None))
            if transport is not None:
                return transport
        if isinstance(item, functools.partial):
            pending.append(item.func)
        wrapped = getattr(item, "__wrapped__", None)
        if wrapped is not None:
            pending.append(wrapped)
        for cell in getattr(item, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value):
                pending.append(value)
    return _transport_of_current_task()


def _transport_of_current_task() -> _Transport | None:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not running on asyncio
        return None
    coro = task.get_coro() if task is not None else None
    if getattr(coro, "__name__", None) != "run_asgi":
        return None
    frame = getattr(coro, "cr_frame", None)
    return _socket_transport_of(frame.f_locals.get("self")) if frame is not None else None


class _BodyTracker:
    """Wraps `receive` to know whether the request body has been read to its end."""

    def __init__(self, receive: Receive, *, complete: bool = False) -> None:
        self._receive = receive
        self.complete = complete

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.complete = True
        return message


async def _drop_connection(fault: Fault, receive: _BodyTracker, send: Send) -> None:
    transport = find_transport(send)
    if transport is None:
        raise ConnectionDropped(f"connection dropped by sandbox fault {fault.id}")
    # Read the rest of the request body first: closing a socket with unread input makes the
    # kernel send a reset rather than a clean close, which clients report as a different error.
    with anyio.move_on_after(_DISCONNECT_GRACE_S):
        while not receive.complete:
            await receive()
    transport.close()
    # Wait until the server has noticed: an app that returns without responding is otherwise
    # answered with a 500, and although no byte of it can reach a closed socket, it is logged
    # as an application error.
    with anyio.move_on_after(_DISCONNECT_GRACE_S):
        while (await receive())["type"] != "http.disconnect":
            pass


async def _discard(message: Message) -> None:
    """A `send` into which the response of a request that is about to be dropped goes."""


# --- Processing a request late ----------------------------------------------------------------


@dataclass(frozen=True)
class LateRequest:
    """A request held back by a `late_s` fault: processed once sandbox time reaches `due`."""

    due: datetime
    scope: Scope
    body: bytes


class LateRequests:
    """Requests accepted but not processed yet, oldest first.

    Apart from the fault rules on purpose: clearing the rules (`DELETE /_sandbox/faults`) does
    not take back a request the API has already accepted, as a real server's queue would not;
    only a reset of the whole sandbox forgets them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[LateRequest] = []

    def add(self, request: LateRequest) -> None:
        with self._lock:
            self._waiting.append(request)

    def take_due(self, now: datetime) -> list[LateRequest]:
        """Remove and return the requests due by `now`: each is taken exactly once, however
        many requests arrive at the same moment."""
        with self._lock:
            due = [r for r in self._waiting if r.due <= now]
            self._waiting = [r for r in self._waiting if r.due > now]
            return due

    def clear(self) -> None:
        with self._lock:
            self._waiting.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)


async def _read_body(receive: _BodyTracker) -> bytes:
    parts: list[bytes] = []
    while not receive.complete:
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _process(app: ASGIApp, late: LateRequest) -> None:
    """Run a held-back request through the API, its answer going nowhere: the client that sent
    it gave up long ago."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": late.body, "more_body": False}

    await app(dict(late.scope), receive, _discard)


# --- The middleware --------------------------------------------------------------------------


class FaultMiddleware:
    """Pure ASGI middleware that applies `rules` to API requests (control paths are exempt).

    Given a `log`, it also records every API request with the status its client received (0 for
    a dropped connection), so it should be the outermost layer around the API app: then drops
    reach the server untouched and the log sees faults as the client did. Wrapping a
    `Starlette` app from the outside is best; as a `Middleware` inside one it still works.

    `now` stamps the error envelopes and times late requests (defaults to the log's clock);
    `request_id` makes their `meta.request_id` (defaults to a fresh ULID); `late` holds the
    requests a `late_s` fault held back (pass the sandbox's, so that a reset forgets them).
    """

    def __init__(
        self,
        app: ASGIApp,
        rules: FaultRules,
        log: RequestLog | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        request_id: Callable[[], str] | None = None,
        late: LateRequests | None = None,
    ) -> None:
        self.app = app
        self.rules = rules
        self.log = log
        self.late = late if late is not None else LateRequests()
        self._now = now or (log.now if log is not None else utc_now)
        self._request_id = request_id or (lambda: new_request_id(self._now()))
        self._entry: ASGIApp = (
            RequestLogMiddleware(self._apply, log) if log is not None else self._apply
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _apply(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_control_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        # Held-back requests that are due go first, so that this request sees their effect.
        for late in self.late.take_due(self._now()):
            await _process(self.app, late)
        fault = self.rules.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return

        rule = fault.rule
        logger.info("sandbox fault %s applies to %s %s", fault.id, scope["method"], scope["path"])
        if rule.latency_ms:
            await anyio.sleep(rule.latency_ms / 1000)

        if rule.drop == "before":
            await _drop_connection(fault, _BodyTracker(receive), send)
        elif rule.drop == "after":
            tracked = _BodyTracker(receive)
            await self.app(scope, tracked, _discard)
            await _drop_connection(fault, tracked, send)
        elif rule.late_s is not None:
            await self._hold(fault, rule.late_s, scope, receive, send)
        elif rule.slow_body_ms is not None:
            await self._respond_slowly(scope, receive, send, rule.slow_body_ms)
        elif rule.body is not None or rule.status is not None:
            await self._made_up_response(rule)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _hold(
        self, fault: Fault, late_s: float, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Accept the request for processing `late_s` sandbox seconds from now and answer
        nothing: wait until the client gives up (in-process, its deadline cancels this wait),
        and drop the connection of a client that waits longer than any timeout would."""
        tracked = _BodyTracker(receive)
        body = await _read_body(tracked)
        due = self._now() + timedelta(seconds=late_s)
        self.late.add(LateRequest(due, dict(scope), body))
        with anyio.move_on_after(MAX_DELAY_MS / 1000):
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await _drop_connection(fault, tracked, send)

    def _made_up_response(self, rule: FaultRule) -> Response:
        status = rule.response_status
        assert status is not None  # a rule without one never gets here
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
        if rule.body == "html":
            return Response(html_error_page(status), status, headers, media_type="text/html")
        if rule.body == "malformed_json":
            return Response(MALFORMED_JSON_BODY, status, headers, media_type="application/json")
        if rule.body == "empty":
            return Response(b"", status, headers, media_type="application/json")
        envelope = error_envelope(status, request_id=self._request_id(), timestamp=self._now())
        return JSONResponse(envelope, status, headers)

    async def _respond_slowly(
        self, scope: Scope, receive: Receive, send: Send, duration_ms: int
    ) -> None:
        start: Message | None = None
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None:
            return  # the app did not respond; the server deals with that as it would without us
        # Headers go out at once (so Content-Length is the real one); the body then arrives in
        # pieces with pauses between them, which is what trips a client's read timeout.
        await send(start)
        pieces = _split(b"".join(parts), SLOW_BODY_PIECES)
        pause = duration_ms / 1000 / len(pieces)
        for index, piece in enumerate(pieces):
            await anyio.sleep(pause)
            more = index < len(pieces) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": more})


def _split(body: bytes, pieces: int) -> list[bytes]:
    if not body:
        return [b""]
    size = math.ceil(len(body) / min(pieces, len(body)))
    return [body[i : i + size] for i in range(0, len(body), size)]


__all__ = [
    "HTTP_METHODS",
    "MALFORMED_JSON_BODY",
    "ConnectionDropped",
    "Fault",
    "FaultMiddleware",
    "FaultRule",
    "FaultRuleError",
    "FaultRules",
    "LateRequest",
    "LateRequests",
    "error_envelope",
    "find_transport",
    "html_error_page",
    "new_request_id",
    "parse_fault_rules",
]
