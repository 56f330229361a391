"""Serving MCP over HTTP: the SDK's SSE or Streamable HTTP app, guarded, on a socket we bind.

What this adds around the SDK's Starlette app:

* `/healthz`, answered without auth (load balancers and container probes have no token);
* client auth as an outer ASGI layer: a static bearer token compared in constant time, or
  passthrough, where each request's `Authorization: Bearer op_live_…` is the caller's own
  OnePin key, checked with OnePin on its first use (`KeyCheck`; `PassthroughClients` then
  serves each request with a client for that key);
* sessions bound to the credential that opened them, capped per key and in total, and their
  ids kept out of the log (`onepin_mcp.sessions`, wired in by `build_app` and `serve_http`);
* Host/Origin (DNS-rebinding) protection kept on for every bind. The SDK switches it on only for
  the literal loopback names and turns it off for any other host, so the settings are always
  built here: loopback names are always accepted, plus the bound address and `--allowed-host`
  names; `--allowed-host '*'` is the explicit way to switch the check off (behind a proxy that
  checks Host itself). The SDK matches `name:*` patterns by prefix, so `127.0.0.1:8000@evil`
  would pass it; `HostOriginGate` checks first, exactly: a Host is a name and an optional port
  of digits, an Origin is http(s):// and such a Host, nothing before or after;
* read deadlines: uvicorn closes idle keep-alive connections but waits forever for a request
  that never finishes (headers or body sent a byte at a time, or never). `ReadDeadlines`, its
  HTTP protocol with one timer added, closes those connections (408 when a request was begun);
* a post to an SSE session whose stream has just closed is answered 404, as for any unknown
  session, instead of 202 and a traceback in the log (`QuietRefusals`);
* a socket bound before uvicorn starts, so that `--port 0` works and the announced URL is real.

The refusal to bind beyond loopback without auth happens earlier, in `options`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import logging
import re
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import h11
import httpx
import uvicorn
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from onepin_mcp import __version__
from onepin_mcp.client import OnePinClient, RetryPolicy
from onepin_mcp.config import Settings
from onepin_mcp.errors import OnePinAPIError, OnePinAuthConfigError, OnePinError
from onepin_mcp.options import (
    API_KEY_FORM,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_KEY_CHECK_TTL_S,
    ServeOptions,
)
from onepin_mcp.server import OnePinServer
from onepin_mcp.serving import exit_quietly_on_signals, host_literal, url_of
from onepin_mcp.sessions import (
    Callers,
    SessionAdmission,
    SessionLimits,
    StreamableSessions,
    keep_session_ids_out_of_logs,
)

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
SSE_PATH = "/sse"
# Where the SDK's SSE app takes a session's messages (its default, which build_app keeps).
SSE_MESSAGES_PATH = "/messages/"
STREAMABLE_HTTP_PATH = "/mcp"
REALM = "onepin-mcp"
# Long-lived SSE and GET streams would otherwise hold a stop for uvicorn's whole default wait.
GRACEFUL_SHUTDOWN_S = 3

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

# Distinct callers' clients kept at once in passthrough mode. Clients share one connection pool
# (see PassthroughClients), so one costs a few objects, not sockets; the bound only stops an
# endless stream of distinct keys from growing memory.
MAX_PASSTHROUGH_CLIENTS = 1024
# Passthrough key checks: verdicts remembered at once (a digest and a time each), how long a
# refused key stays refused at most, how a check retries (once: a caller is waiting on it), and
# the Retry-After of a 503 when OnePin could not be asked.
MAX_CHECKED_KEYS = 4096
REFUSED_KEY_TTL_S = 10.0
KEY_CHECK_RETRY = RetryPolicy(max_attempts=2, total_budget_s=10.0)
KEY_CHECK_RETRY_AFTER_S = 5


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


# --- client auth --------------------------------------------------------------------------------


def _bearer(scope: Scope) -> str | None:
    """The credential of the one `Authorization: Bearer …` header, or None.

    Two Authorization headers are refused as none: a proxy in front may check the other one.
    """
    values = [bytes(v) for name, v in scope.get("headers", ()) if name == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, credential = values[0].decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return None


def _passthrough_key(headers: Any) -> str | None:
    """The caller's OnePin key from request headers (a Starlette or plain mapping)."""
    value = headers.get("authorization") if headers is not None else None
    if not value:
        return None
    scheme, _, credential = str(value).partition(" ")
    key = credential.strip()
    if scheme.lower() != "bearer" or not API_KEY_FORM.fullmatch(key):
        return None
    return key


class BearerGate:
    """ASGI layer that answers 401 to HTTP requests without an acceptable bearer credential,
    and names the caller of every request it lets through.

    `accept` decides on the credential's form: constant-time comparison with the static token,
    or the form of an OnePin key in passthrough mode. `verify`, in passthrough mode, then asks
    whether OnePin accepts the key (`KeyCheck`): a refused key is answered 401 before any
    session exists; when OnePin can't be asked, 503. An accepted request carries its caller in
    `scope["user"]` (a digest of the credential, see `sessions.Callers`), which the SDK
    records as the owner of the sessions the caller opens and compares on every later request.
    Paths in `public` (the health check) pass without a credential.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        accept: Callable[[str], bool],
        expects: str,
        verify: Callable[[str], Awaitable[KeyVerdict]] | None = None,
        callers: Callers | None = None,
        public: frozenset[str] = frozenset({HEALTH_PATH}),
    ) -> None:
        self.app = app
        self.accept = accept
        self.expects = expects
        self.verify = verify
        self.callers = callers or Callers()
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.public:
            await self.app(scope, receive, send)
            return
        credential = _bearer(scope)
        status, headers = 401, {}
        if credential is None:
            # RFC 6750 §3.1: no error code when the request carried no credential at all.
            headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
            body = {"error": "unauthorized", "error_description": f"Send {self.expects}."}
        elif not self.accept(credential):
            headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="invalid_token"'
            body = {
                "error": "invalid_token",
                "error_description": f"The credential was not accepted; send {self.expects}.",
            }
        else:
            verdict = KeyVerdict.ACCEPTED if self.verify is None else await self.verify(credential)
            if verdict is KeyVerdict.ACCEPTED:
                await self.app({**scope, "user": self.callers.user(credential)}, receive, send)
                return
            if verdict is KeyVerdict.REFUSED:
                headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="invalid_token"'
                body = {
                    "error": "invalid_token",
                    "error_description": "OnePin refused this API key (it is unknown, revoked or "
                    f"not allowed to act); send {self.expects}.",
                }
            else:
                status, headers["Retry-After"] = 503, str(KEY_CHECK_RETRY_AFTER_S)
                body = {
                    "error": "temporarily_unavailable",
                    "error_description": "Could not check this API key with OnePin (it did not "
                    f"answer); retry in {KEY_CHECK_RETRY_AFTER_S} s.",
                }
        logger.info("Refused %s %s: %s", scope.get("method"), scope.get("path"), body["error"])
        response = JSONResponse(body, status_code=status, headers=headers)
        await response(scope, receive, send)


def token_checker(token: str) -> Callable[[str], bool]:
    expected = token.encode("utf-8")

    def accept(credential: str) -> bool:
        # Bytes, because compare_digest on str refuses non-ASCII; constant time either way.
        return hmac.compare_digest(credential.encode("utf-8"), expected)

    return accept


def is_onepin_key(credential: str) -> bool:
    return API_KEY_FORM.fullmatch(credential) is not None


# --- passthrough: one OnePin client per caller's key ----------------------------------------------


class _SharedPool(httpx.AsyncBaseTransport):
    """Sends through one carrier client, whose pool and proxy settings all callers share.

    Each caller's OnePinClient has its own headers (its key) but sends through this transport,
    so that evicting or closing one caller's client never closes sockets another caller's
    request is using. The carrier is used with `send()`, which neither adds its own headers
    nor sends its cookie jar, so nothing crosses from one caller to another. `aclose` is a
    no-op: the pool is closed once, by `PassthroughClients.aclose`.
    """

    def __init__(self, carrier: httpx.AsyncClient) -> None:
        self._carrier = carrier

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._carrier.send(request, stream=True)

    async def aclose(self) -> None:
        return None


class PassthroughClients:
    """A `ClientProvider` that serves each HTTP request with the caller's own OnePin key.

    The key is read from the request's `Authorization: Bearer op_live_…` header (`BearerGate`
    has already refused requests without one). Clients are cached per key, least recently used
    first out, keyed by a digest so that the cache's keys are not the secrets themselves.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        max_clients: int = MAX_PASSTHROUGH_CLIENTS,
    ) -> None:
        self._settings = settings
        self._retry = retry
        self._max = max_clients
        # The carrier applies no timeouts of its own: each request carries its client's.
        self._carrier = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._pool = _SharedPool(self._carrier)
        self._clients: OrderedDict[bytes, OnePinClient] = OrderedDict()

    def client_for(self, ctx: Context[Any, Any]) -> OnePinClient:
        key = _passthrough_key(ctx.headers)
        if key is None:
            # Only reachable if the gate was bypassed (e.g. a non-HTTP transport): fail closed.
            raise OnePinAuthConfigError()
        digest = hashlib.sha256(key.encode("ascii")).digest()
        client = self._clients.get(digest)
        if client is not None:
            self._clients.move_to_end(digest)
            return client
        settings = self._settings.model_copy(update={"api_key": SecretStr(key), "key_source": None})
        client = OnePinClient(settings, transport=self._pool, retry=self._retry)
        self._clients[digest] = client
        if len(self._clients) > self._max:
            # Dropping it is enough: it owns no sockets (the shared pool does), and a request
            # still running on it keeps working.
            self._clients.popitem(last=False)
        return client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()
        await self._carrier.aclose()


def passthrough_clients(
    *, transport: httpx.AsyncBaseTransport | None = None, retry: RetryPolicy | None = None
) -> Callable[[Settings], PassthroughClients]:
    """The `clients=` factory for `create_server` in passthrough mode."""

    def build(settings: Settings) -> PassthroughClients:
        return PassthroughClients(settings, transport=transport, retry=retry)

    return build


# --- passthrough: is the caller's key one OnePin accepts? -----------------------------------------


class KeyVerdict(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # OnePin answered 401 or 403
    UNAVAILABLE = "unavailable"  # OnePin could not be asked, or answered something else


@dataclass
class _Asking:
    """One whoami in flight for a key; other requests with the same key wait for its verdict."""

    done: anyio.Event = field(default_factory=anyio.Event)
    verdict: KeyVerdict = KeyVerdict.UNAVAILABLE


class KeyCheck:
    """Passthrough: whether OnePin accepts a caller's key, asked with `GET /auth/whoami` on the
    key's first use and remembered for a while.

    Without it any string of the key's form opens sessions that the server keeps for their
    idle timeout. Verdicts are kept per key digest (never the key), least recently used out
    first: an accepted key for `ttl_s`, a refused one for `refused_ttl_s` (shorter, so that a
    key created a moment ago is not shut out for long). Requests that arrive with the same
    unchecked key while it is being checked wait for that one check.

    When OnePin can't be asked (unreachable, timing out, 5xx, 429), nothing is remembered: a
    key never seen is answered 503, since an outage must not let made-up keys in, nor turn
    every key into a refused one; a key accepted before keeps being accepted (its calls will
    say what is wrong with OnePin better than a 503 from us would).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ttl_s: float = DEFAULT_KEY_CHECK_TTL_S,
        refused_ttl_s: float | None = None,
        max_keys: int = MAX_CHECKED_KEYS,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy = KEY_CHECK_RETRY,
    ) -> None:
        self._settings = settings
        self._retry = retry
        self._ttl_s = ttl_s
        self._refused_ttl_s = (
            min(ttl_s, REFUSED_KEY_TTL_S) if refused_ttl_s is None else refused_ttl_s
        )
        self._max = max_keys
        self._clock = clock
        self._carrier = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._pool = _SharedPool(self._carrier)
        self._known: OrderedDict[bytes, tuple[KeyVerdict, float]] = OrderedDict()
        self._asking: dict[bytes, _Asking] = {}
        # How many times OnePin was asked: what the cache saves is visible to tests.
        self.asked = 0

    async def __call__(self, key: str) -> KeyVerdict:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        known = self._known.get(digest)
        if known is not None and known[1] > self._clock():
            self._known.move_to_end(digest)
            return known[0]
        asking = self._asking.get(digest)
        if asking is not None:
            await asking.done.wait()
            return asking.verdict
        asking = self._asking[digest] = _Asking()
        try:
            verdict = await self._ask(key)
            if verdict is KeyVerdict.UNAVAILABLE:
                if known is not None and known[0] is KeyVerdict.ACCEPTED:
                    verdict = KeyVerdict.ACCEPTED
            else:
                self._remember(digest, verdict)
            asking.verdict = verdict
        finally:
            asking.done.set()
            del self._asking[digest]
        return verdict

    def _remember(self, digest: bytes, verdict: KeyVerdict) -> None:
        ttl = self._ttl_s if verdict is KeyVerdict.ACCEPTED else self._refused_ttl_s
        self._known[digest] = (verdict, self._clock() + ttl)
        self._known.move_to_end(digest)
        while len(self._known) > self._max:
            self._known.popitem(last=False)

    async def _ask(self, key: str) -> KeyVerdict:
        self.asked += 1
        settings = self._settings.model_copy(update={"api_key": SecretStr(key), "key_source": None})
        client = OnePinClient(settings, transport=self._pool, retry=self._retry)
        try:
            await client.whoami()
        except OnePinAPIError as exc:
            if exc.status in (401, 403):
                logger.info("OnePin refused a caller's key (%d %s)", exc.status, exc.code)
                return KeyVerdict.REFUSED
            logger.warning("Could not check a caller's key: OnePin answered %d", exc.status)
            return KeyVerdict.UNAVAILABLE
        except OnePinError as exc:
            # The type says enough (connection, timeout, bad response); the text may quote URLs.
            logger.warning("Could not check a caller's key with OnePin: %s", type(exc).__name__)
            return KeyVerdict.UNAVAILABLE
        finally:
            await client.aclose()
        return KeyVerdict.ACCEPTED

    async def aclose(self) -> None:
        await self._carrier.aclose()


class ClosingOnShutdown:
    """ASGI layer: close `resource` when the server shuts down (the app's lifespan ends)."""

    def __init__(self, app: ASGIApp, close: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.close()
            await send(message)

        await self.app(scope, receive, closing)


# --- the app ------------------------------------------------------------------------------------


def mcp_path(options: ServeOptions) -> str:
    return SSE_PATH if options.transport == "sse" else STREAMABLE_HTTP_PATH


def build_app(
    server: OnePinServer, options: ServeOptions, *, keys: KeyCheck | None = None
) -> ASGIApp:
    """The whole HTTP app for `options`: the SDK's app, `/healthz`, session limits, and the auth
    layer. Passthrough mode needs `keys`, the check of callers' keys with OnePin."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    # Registered on the server so that the SDK mounts it beside its own routes, outside the
    # Host/Origin check (which guards the MCP endpoints only).
    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(healthz)
    security = transport_security(options)
    limits = SessionLimits(
        total=options.max_sessions,
        # The static token is one credential shared by every client: a cap per credential
        # would be the total cap again, so it applies to callers' own keys only.
        per_caller=options.max_sessions_per_key if options.auth == "passthrough" else None,
        idle_timeout_s=options.session_idle_timeout_s,
    )
    if options.transport == "sse":
        app: ASGIApp = SessionAdmission(
            QuietRefusals(server.sse_app(transport_security=security, host=options.host)),
            transport="sse",
            path=SSE_PATH,
            limits=limits,
        )
    else:
        app = server.streamable_http_app(
            stateless_http=options.stateless,
            transport_security=security,
            host=options.host,
            session_idle_timeout=limits.idle_timeout_s,
            # Also counted (and refused with a clearer answer) by SessionAdmission; the SDK's
            # own limit stays as a backstop.
            max_sessions=limits.total,
        )
        if not options.stateless:
            app = SessionAdmission(
                app,
                transport="streamable-http",
                path=STREAMABLE_HTTP_PATH,
                limits=limits,
                registry=StreamableSessions(server.session_manager),
            )
    accepted = accepted_hosts(options)
    app = AbandonedRequests(
        HostOriginGate(app, None if accepted is None else AllowedHosts(accepted))
    )
    if options.auth == "token":
        assert options.http_token, "options guarantee a token in token mode"
        return BearerGate(
            app,
            accept=token_checker(options.http_token),
            expects="'Authorization: Bearer <ONEPIN_MCP_HTTP_TOKEN>'",
        )
    if options.auth == "passthrough":
        if keys is None:
            raise ValueError("passthrough auth needs a KeyCheck to verify callers' keys")
        return ClosingOnShutdown(
            BearerGate(
                app,
                accept=is_onepin_key,
                expects="your OnePin API key as 'Authorization: Bearer op_live_…'",
                verify=keys,
            ),
            keys.aclose,
        )
    return app


# --- serving ------------------------------------------------------------------------------------

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


def serve_http(
    server: OnePinServer,
    options: ServeOptions,
    sock: socket.socket,
    *,
    keys: KeyCheck | None = None,
) -> None:
    """Serve on `sock` (from `bind`) until SIGINT or SIGTERM; announce the URL on stderr first.

    `keys` checks callers' keys in passthrough mode (see `build_app`)."""
    app = build_app(server, options, keys=keys)
    keep_session_ids_out_of_logs()
    url = url_of(sock, mcp_path(options))
    # Written, not logged: the URL is the command's user interface and must show at any log
    # level (and `--port 0` users need it to connect at all).
    sys.stderr.write(
        f"onepin-mcp: serving MCP over {options.transport} at {url} "
        f"(auth: {options.auth}; health check: {url_of(sock, HEALTH_PATH)})\n"
    )
    sys.stderr.flush()
    config = uvicorn.Config(
        app,
        # None: uvicorn's loggers propagate to the root handler on stderr set up by the CLI,
        # instead of uvicorn's default, which writes the access log to stdout.
        log_config=None,
        access_log=True,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
        # Always h11 with read deadlines, even where httptools is installed: uvicorn's own
        # protocols wait for ever on a request that never finishes.
        http=with_deadlines(options.header_timeout_s, options.body_timeout_s),
    )
    try:
        with exit_quietly_on_signals():
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    logger.info("onepin-mcp at %s stopped", url)


def describe_security(options: ServeOptions) -> str:
    """One line for the startup log: which Host headers are accepted."""
    settings = transport_security(options)
    if not settings.enable_dns_rebinding_protection:
        return "Host/Origin check off (--allowed-host '*')"
    return "Host/Origin check on; accepted hosts: " + json.dumps(
        [h for h in settings.allowed_hosts if not h.endswith(":*")]
    )
