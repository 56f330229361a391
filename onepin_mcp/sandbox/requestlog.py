"""The sandbox's request log: what reached the API, in what order, and how each request ended.

Tests read it to prove what a client actually did on the wire ("exactly one POST …/runs", "three
polls, then a download"), so a record is written only once its outcome is known and is never
changed afterwards. Records are therefore in *completion* order: for a client that sends one
request at a time (every official client, and the MCP server per tool call) that is also arrival
order; of two overlapping requests, the one answered first is logged first. The `time` of a record
is when the request arrived, on the sandbox clock.

Control requests (`/_sandbox/...`) are not API traffic and are not logged, so a test's own
inspection of the sandbox never shows up in what it inspects.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, overload

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX: Final = "/_sandbox"
"""Path prefix of the sandbox's own control API; these requests bypass faults and the log."""

STATUS_NO_RESPONSE: Final = 0
"""Status of a request that ended without any response reaching the client: the connection was
dropped by a fault, or the client went away before the response started."""


# Key ids are derived from the key (as OnePin's `api_key_id` is stable per key), so that the log
# and `auth/whoami` can say which key made a request without holding the key itself.
_KEY_ID_NAMESPACE: Final = uuid.UUID("0c5e2f7a-91d4-4b3e-a8f6-2d7c1e9b4a30")


def key_id_of(key: str) -> str:
    """The `api_key_id` the sandbox reports for `key`."""
    return str(uuid.uuid5(_KEY_ID_NAMESPACE, key))


def _bearer_key_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            return key_id_of(token.strip()) if scheme.lower() == "bearer" and token else None
    return None


def is_control_path(path: str) -> bool:
    """Whether `path` belongs to the sandbox's control API rather than to the OnePin API."""
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def isoformat(moment: datetime) -> str:
    """UTC ISO-8601 with a `Z` suffix, the way the OnePin API writes timestamps."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def utc_now() -> datetime:
    """Real time in UTC: the default clock when no sandbox clock is given."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API request as the sandbox saw it."""

    method: str
    path: str
    query: str
    """The raw query string, without the `?` (empty when there was none)."""
    status: int
    """The status the client received; `STATUS_NO_RESPONSE` (0) when it received no response."""
    time: datetime
    """When the request arrived, on the sandbox clock."""
    key_id: str | None = None
    """The id of the bearer key the request carried (`key_id_of`), whether or not it was
    accepted; None without one. Tests use it to see whose key a server spent."""

    @property
    def dropped(self) -> bool:
        return self.status == STATUS_NO_RESPONSE

    def to_json(self) -> dict[str, Any]:
        """The form served by `GET /_sandbox/requests`."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "time": isoformat(self.time),
            "key_id": self.key_id,
        }


class RequestLog(Sequence[RequestRecord]):
    """An append-only, thread-safe list of `RequestRecord`s.

    Thread-safe rather than merely task-safe because a test may read the log from its own thread
    while uvicorn serves the sandbox from another. Indexing, `len` and iteration work on the live
    log; `snapshot()` and `since()` return copies that later requests cannot change.
    """

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self.now = now
        """The clock records are stamped with (the sandbox clock's `now`)."""
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> int:
        """Add a record; returns its index, the `n` for which `since(n)` starts with it."""
        with self._lock:
            self._records.append(record)
            return len(self._records) - 1

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def since(self, n: int) -> list[RequestRecord]:
        """Records from index `n` on: a caller that remembers `len(log)` sees only what is new.

        After `clear()` indices start again at 0.
        """
        if n < 0:
            raise ValueError("since must be a non-negative index")
        with self._lock:
            return self._records[n:]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...

    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        with self._lock:
            return self._records[index]

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} records)"


class RequestLogMiddleware:
    """Pure ASGI middleware that logs every API request with the status its client received.

    It must sit outside anything that can fail a request (faults included), so that it records
    what the client saw: a response started by an inner layer is logged with its status; a request
    that ended without one (a dropped connection, or a client that gave up) is logged with
    `STATUS_NO_RESPONSE`; an unhandled exception before any response is logged as 500, which is
    what the server answers in that case. Control paths and non-HTTP scopes pass straight through.
    """

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_control_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        arrived = self.log.now()
        status: int | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        outcome = STATUS_NO_RESPONSE
        try:
            await self.app(scope, receive, send_and_watch)
        except Exception as exc:
            # Imported here because faults builds on this module, not the other way round.
            from .faults import ConnectionDropped

            # A drop is a deliberate "no response"; any other exception is a sandbox bug that the
            # server answers with a 500.
            if status is None and not isinstance(exc, ConnectionDropped):
                outcome = 500
            raise
        finally:
            # Runs on cancellation too (an in-process client that timed out): no response then.
            self.log.append(
                RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope.get("query_string", b"").decode("latin-1"),
                    status=status if status is not None else outcome,
                    time=arrived,
                    key_id=_bearer_key_id(scope),
                )
            )
