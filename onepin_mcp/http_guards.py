"""HTTP hygiene around the SDK's app: the checks and limits that hold whoever the caller is.

* Host/Origin (DNS-rebinding) protection kept on for every bind. The SDK switches it on only for
  the literal loopback names and turns it off for any other host, so the settings are always
  built here: loopback names are always accepted, plus the bound address and `--allowed-host`
  names; `--allowed-host '*'` is the explicit way to switch the check off (behind a proxy that
  checks Host itself). The SDK matches `name:*` patterns by prefix, so `127.0.0.1:8000@evil`
  would pass it; `HostOriginGate` checks first, exactly: a Host is a name and an optional port
  of digits, an Origin is http(s):// and such a Host, nothing before or after;
* a post to an SSE session whose stream has just closed is answered 404, as for any unknown
  session, instead of 202 and a traceback in the log (`QuietRefusals`);
* a request whose client left before sending its whole body ends quietly, not as a server
  error with a traceback (`AbandonedRequests`);
* read deadlines: uvicorn closes idle keep-alive connections but waits forever for a request
  that never finishes (headers or body sent a byte at a time, or never). `ReadDeadlines`, its
  HTTP protocol with one timer added, closes those connections (408 when a request was begun).

`HEALTH_PATH` is defined here, the lowest of the HTTP modules, since the gates here and in
`http_auth` let it through unchecked. `onepin_mcp.http` puts the layers together.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import ClassVar

import anyio
import anyio.lowlevel
import h11
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from onepin_mcp.options import DEFAULT_BODY_TIMEOUT_S, DEFAULT_HEADER_TIMEOUT_S, ServeOptions
from onepin_mcp.serving import host_literal

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
# Where the SDK's SSE app takes a session's messages (its default, which build_app keeps).
SSE_MESSAGES_PATH = "/messages/"

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


# --- Host/Origin protection ---------------------------------------------------------------------


def accepted_hosts(options: ServeOptions) -> list[str] | None:
    """The Host names (each optionally with a port) `options` accept; None: the check is off."""
    if options.allowed_hosts == ("*",):
        return None
    names = [*LOOPBACK_HOSTS]
    bound = host_literal(options.host)
    if bound not in names and bound not in ("0.0.0.0", "[::]"):  # noqa: S104 - naming, not binding
        names.append(bound)
    return [*names, *options.allowed_hosts]


def transport_security(options: ServeOptions) -> TransportSecuritySettings:
    """The Host/Origin allow-list for `options`; never None, so the SDK never picks for us.

    The SDK's check stays on behind `HostOriginGate` (which is exact, and refuses first).
    """
    accepted = accepted_hosts(options)
    if accepted is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts: list[str] = []
    origins: list[str] = []
    for name in accepted:
        with_port = _has_port(name)
        # A Host header carries the port unless it is the scheme's default; a bare name also
        # matches any port, the way the SDK's own loopback defaults do.
        hosts.extend([name] if with_port else [name, f"{name}:*"])
        for scheme in ("http", "https"):
            origins.extend(
                [f"{scheme}://{name}"]
                if with_port
                else [f"{scheme}://{name}", f"{scheme}://{name}:*"]
            )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def _has_port(name: str) -> bool:
    return name.rpartition("]")[2].count(":") == 1 if name.startswith("[") else ":" in name


# A Host header value (RFC 9110 §7.2): a name or an IP literal, then at most a port of digits.
# Nothing else: no userinfo, path, trailing dot or second colon.
_HOST_FORM = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
# An Origin header value (RFC 6454 §7): a scheme, "://", and a host as above; no path.
_ORIGIN_FORM = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/?#]*)")
# How much of a refused header the log line shows (it is the client's text).
MAX_LOGGED_HEADER_CHARS = 100


class AllowedHosts:
    """Exact Host matching: `name` accepts that name on any port, `name:port` that port only."""

    def __init__(self, accepted: Iterable[str]) -> None:
        self._entries: set[tuple[str, str | None]] = set()
        for value in accepted:
            match = _HOST_FORM.fullmatch(value)
            if match is not None:
                self._entries.add((match["name"].lower(), match["port"]))

    def accepts_host(self, value: str) -> bool:
        match = _HOST_FORM.fullmatch(value)
        if match is None:
            return False
        name, port = match["name"].lower(), match["port"]
        if port is not None and int(port) > 65535:
            return False
        return (name, None) in self._entries or (port is not None and (name, port) in self._entries)

    def accepts_origin(self, value: str) -> bool:
        match = _ORIGIN_FORM.fullmatch(value)
        if match is None or match["scheme"].lower() not in ("http", "https"):
            return False
        return self.accepts_host(match["host"])


class HostOriginGate:
    """ASGI layer: refuse a Host (421) or Origin (403) that is not exactly an accepted one.

    A request must carry one Host header; an Origin is optional (same-origin requests and
    non-browser clients send none), but two are refused. Paths in `public` (the health check,
    which probes reach by a pod's address) are not checked. `hosts=None` switches it off.
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: AllowedHosts | None,
        *,
        public: frozenset[str] = frozenset({HEALTH_PATH}),
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hosts is None or scope["type"] != "http" or scope.get("path") in self.public:
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        host = [bytes(v).decode("latin-1") for name, v in headers if name == b"host"]
        origin = [bytes(v).decode("latin-1") for name, v in headers if name == b"origin"]
        if len(host) != 1 or not self.hosts.accepts_host(host[0]):
            refusal = Response("Invalid Host header", status_code=421)
            what = f"Host {_shown(host)}"
        elif len(origin) > 1 or (origin and not self.hosts.accepts_origin(origin[0])):
            refusal = Response("Invalid Origin header", status_code=403)
            what = f"Origin {_shown(origin)}"
        else:
            await self.app(scope, receive, send)
            return
        logger.info("Refused %s %s: %s not allowed", scope.get("method"), scope.get("path"), what)
        await refusal(scope, receive, send)


def _shown(values: list[str]) -> str:
    # repr keeps the client's text on one line; the cut keeps one request from filling the log.
    return repr(values[0] if len(values) == 1 else values)[:MAX_LOGGED_HEADER_CHARS]


# --- refusals and abandoned requests ------------------------------------------------------------


class QuietRefusals:
    """ASGI layer for the SSE app: a refusal is a refusal, not a crash.

    The SDK's SSE endpoint sends its 421/403 and then raises `ValueError("Request validation
    failed")`, which uvicorn logs as "Exception in ASGI application" with a traceback: one per
    rebinding attempt, which anyone who can reach the port could use to flood the log. Once the
    refusal has been sent, that error is dropped (the SDK has already logged the bad header).

    A message posted just after its session's stream closed finds the session still listed (the
    SDK unlists it only once the session has wound down) but its stream closed: the SDK has
    already answered 202 when the hand-over fails, and the failure is a traceback in the log.
    So the answer to a post is held until the message has been handed over; if the stream
    turned out to be closed, the post is answered 404, as for any session that is gone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == SSE_MESSAGES_PATH:
            await self._post(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except ValueError as exc:
            if not (started and str(exc) == "Request validation failed"):
                raise

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The SDK's answers here are short (202, 400, 404, 413): holding one costs nothing.
        held: list[Message] = []

        async def holding(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, receive, holding)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            if not held:
                raise
            if held[0].get("status") == 202:
                logger.info("Refused POST %s: the session has ended", SSE_MESSAGES_PATH)
                held = []
                await Response("Could not find session", status_code=404)(scope, receive, send)
        for message in held:
            await send(message)


class AbandonedRequests:
    """ASGI layer: a request whose client left before its body arrived ends here, quietly.

    When a client disconnects half-way through a body (or the read deadline cuts it off), the
    SDK's handlers read a disconnect where they expect the rest of the body, treat it as a
    server error and log a traceback: one per connection anyone can open and drop. Nobody is
    left to answer, so the handler is cancelled instead, at the point where it asked for more.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        with anyio.CancelScope() as abandoned:

            async def receiving() -> Message:
                nonlocal body_done
                message = await receive()
                if message["type"] == "http.request" and not message.get("more_body", False):
                    body_done = True
                elif message["type"] == "http.disconnect" and not body_done:
                    abandoned.cancel()
                    await anyio.lowlevel.checkpoint()  # the cancellation takes effect here
                return message

            await self.app(scope, receiving, send)
        if abandoned.cancel_called:
            logger.info(
                "%s %s: the client left before sending the whole request",
                scope.get("method"),
                scope.get("path"),
            )


# --- read deadlines -----------------------------------------------------------------------------

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)


class ReadDeadlines(H11Protocol):
    """uvicorn's h11 protocol, plus deadlines for reading a request.

    uvicorn 0.55 bounds only the idle wait between requests (`timeout_keep_alive`); a
    connection that never sends a byte, or sends headers or a body a byte at a time, is held
    for ever, a socket and a task each: enough to exhaust the server from one machine. One timer
    is added per connection, set after each read:

    * while a request's headers are awaited: `header_timeout_s` from the first byte (or from
      the connection's opening), not extended by more bytes;
    * while its body is: `body_timeout_s` from the last chunk;
    * between requests: none of ours (uvicorn's keep-alive timer already closes idle ones).

    When it fires the connection is closed, after a 408 if a request was begun and not yet
    answered. The application then reads a disconnect, as if the client had gone. Per-server
    values come from `with_deadlines`, since uvicorn builds the protocol from a class.
    """

    header_timeout_s: ClassVar[float] = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: ClassVar[float] = DEFAULT_BODY_TIMEOUT_S

    _read_timer: asyncio.TimerHandle | None = None
    _reading: str | None = None  # "headers" or "body": what the timer is for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_reading()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _watch_reading(self) -> None:
        state = self.conn.their_state
        if self.transport.is_closing():
            self._stop_timer()
        elif state is h11.SEND_BODY:
            self._start_timer("body", self.body_timeout_s)  # restarted by every chunk
        elif state is h11.IDLE and self.timeout_keep_alive_task is None:
            if self._reading != "headers":
                self._start_timer("headers", self.header_timeout_s)  # not restarted
        else:
            self._stop_timer()

    def _start_timer(self, reading: str, seconds: float) -> None:
        self._stop_timer()
        self._reading = reading
        self._read_timer = self.loop.call_later(seconds, self._timed_out)

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._reading = None

    def _timed_out(self) -> None:
        reading = self._reading
        seconds = self.header_timeout_s if reading == "headers" else self.body_timeout_s
        self._read_timer = None
        self._reading = None
        if self.transport.is_closing():
            return
        begun = reading == "body" or bool(self.conn.trailing_data[0])
        cycle = self.cycle if reading == "body" else None
        answered = cycle is not None and cycle.response_started
        if cycle is not None:
            # What connection_lost will do, done now: the application stops waiting for the
            # body (it reads a disconnect), and what it sends from here on is dropped, so
            # that nothing follows the 408 on the wire.
            cycle.disconnected = True
            cycle.message_event.set()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        logger.info(
            "Closed the connection from %s: request %s not received in %g s",
            client,
            reading,
            seconds,
        )
        if begun and not answered:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


def with_deadlines(header_timeout_s: float, body_timeout_s: float) -> type[ReadDeadlines]:
    """A `ReadDeadlines` protocol class with these deadlines, for `uvicorn.Config(http=...)`."""
    return type(
        "ReadDeadlines",
        (ReadDeadlines,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )
