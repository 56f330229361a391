"""Serving MCP over HTTP: the SDK's SSE or Streamable HTTP app, guarded, on a socket we bind.

What this adds around the SDK's Starlette app:

* `/healthz`, answered without auth (load balancers and container probes have no token);
* client auth as an outer ASGI layer: a static bearer token compared in constant time, or
  passthrough, where each request's `Authorization: Bearer op_live_…` is the caller's own
  OnePin key (`PassthroughClients` then serves each request with a client for that key);
* Host/Origin (DNS-rebinding) protection kept on for every bind. The SDK switches it on only for
  the literal loopback names and turns it off for any other host, so the settings are always
  built here: loopback names are always accepted, plus the bound address and `--allowed-host`
  names; `--allowed-host '*'` is the explicit way to switch the check off (behind a proxy that
  checks Host itself);
* a socket bound before uvicorn starts, so that `--port 0` works and the announced URL is real.

The refusal to bind beyond loopback without auth happens earlier, in `options`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onepin_mcp import __version__
from onepin_mcp.client import OnePinClient, RetryPolicy
from onepin_mcp.config import Settings
from onepin_mcp.errors import OnePinAuthConfigError
from onepin_mcp.options import API_KEY_FORM, ServeOptions
from onepin_mcp.server import OnePinServer
from onepin_mcp.serving import exit_quietly_on_signals, host_literal, url_of

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
SSE_PATH = "/sse"
STREAMABLE_HTTP_PATH = "/mcp"
REALM = "onepin-mcp"
# Long-lived SSE and GET streams would otherwise hold a stop for uvicorn's whole default wait.
GRACEFUL_SHUTDOWN_S = 3

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

# Distinct callers' clients kept at once in passthrough mode. Clients share one connection pool
# (see PassthroughClients), so one costs a few objects, not sockets; the bound only stops an
# endless stream of distinct keys from growing memory.
MAX_PASSTHROUGH_CLIENTS = 1024


# --- Host/Origin protection ---------------------------------------------------------------------


def transport_security(options: ServeOptions) -> TransportSecuritySettings:
    """The Host/Origin allow-list for `options`; never None, so the SDK never picks for us."""
    if options.allowed_hosts == ("*",):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [*LOOPBACK_HOSTS]
    bound = host_literal(options.host)
    if bound not in names and bound not in ("0.0.0.0", "[::]"):  # noqa: S104 - naming, not binding
        names.append(bound)
    hosts: list[str] = []
    origins: list[str] = []
    for name in [*names, *options.allowed_hosts]:
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


class QuietRefusals:
    """ASGI layer for the SSE app: a refused Host/Origin is a refusal, not a crash.

    The SDK's SSE endpoint sends its 421/403 and then raises `ValueError("Request validation
    failed")`, which uvicorn logs as "Exception in ASGI application" with a traceback: one per
    rebinding attempt, which anyone who can reach the port could use to flood the log. Once the
    refusal has been sent, that error is dropped (the SDK has already logged the bad header).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
    """ASGI layer that answers 401 to HTTP requests without an acceptable bearer credential.

    `accept` decides on the credential: constant-time comparison with the static token, or the
    form of an OnePin key in passthrough mode (its validity is OnePin's to judge, per call).
    Paths in `public` (the health check) pass without a credential.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        accept: Callable[[str], bool],
        expects: str,
        public: frozenset[str] = frozenset({HEALTH_PATH}),
    ) -> None:
        self.app = app
        self.accept = accept
        self.expects = expects
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.public:
            await self.app(scope, receive, send)
            return
        credential = _bearer(scope)
        if credential is None:
            # RFC 6750 §3.1: no error code when the request carried no credential at all.
            challenge = f'Bearer realm="{REALM}"'
            body = {"error": "unauthorized", "error_description": f"Send {self.expects}."}
        elif not self.accept(credential):
            challenge = f'Bearer realm="{REALM}", error="invalid_token"'
            body = {
                "error": "invalid_token",
                "error_description": f"The credential was not accepted; send {self.expects}.",
            }
        else:
            await self.app(scope, receive, send)
            return
        logger.info("Refused %s %s: %s", scope.get("method"), scope.get("path"), body["error"])
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})
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


# --- the app ------------------------------------------------------------------------------------


def mcp_path(options: ServeOptions) -> str:
    return SSE_PATH if options.transport == "sse" else STREAMABLE_HTTP_PATH


def build_app(server: OnePinServer, options: ServeOptions) -> ASGIApp:
    """The whole HTTP app for `options`: the SDK's app, `/healthz`, and the auth layer."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    # Registered on the server so that the SDK mounts it beside its own routes, outside the
    # Host/Origin check (which guards the MCP endpoints only).
    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(healthz)
    security = transport_security(options)
    if options.transport == "sse":
        app: ASGIApp = QuietRefusals(server.sse_app(transport_security=security, host=options.host))
    else:
        app = server.streamable_http_app(
            stateless_http=options.stateless, transport_security=security, host=options.host
        )
    if options.auth == "token":
        assert options.http_token, "options guarantee a token in token mode"
        return BearerGate(
            app,
            accept=token_checker(options.http_token),
            expects="'Authorization: Bearer <ONEPIN_MCP_HTTP_TOKEN>'",
        )
    if options.auth == "passthrough":
        return BearerGate(
            app,
            accept=is_onepin_key,
            expects="your OnePin API key as 'Authorization: Bearer op_live_…'",
        )
    return app


# --- serving ------------------------------------------------------------------------------------


def serve_http(server: OnePinServer, options: ServeOptions, sock: socket.socket) -> None:
    """Serve on `sock` (from `bind`) until SIGINT or SIGTERM; announce the URL on stderr first."""
    app = build_app(server, options)
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
