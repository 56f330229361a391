"""Serving MCP over HTTP: the SDK's SSE or Streamable HTTP app, guarded, on a socket we bind.

`build_app` wraps the SDK's Starlette app in these ASGI layers, from the outside in:

* client auth (`onepin_mcp.http_auth`): a static bearer token, or passthrough, where each
  request's bearer credential is the caller's own OnePin key, checked with OnePin first;
* request hygiene (`onepin_mcp.http_guards`): a request abandoned half-way ends quietly, and
  Host/Origin (DNS-rebinding) protection is on for every bind, matched exactly;
* sessions bound to the credential that opened them, capped per key and in total, and their
  ids kept out of the log (`onepin_mcp.sessions`);
* for SSE, refusals and posts to a session that has just ended answered, not logged as
  tracebacks (`http_guards.QuietRefusals`);

and registers `/healthz` beside the SDK's routes, answered without auth (load balancers and
container probes have no token).

`serve_http` runs it with uvicorn, with read deadlines on every connection
(`http_guards.ReadDeadlines`), on a socket bound before uvicorn starts (`serving.bind`), so
that `--port 0` works and the announced URL is real; with `--workers N`, in N forked processes
sharing that socket (`serving.serve_in_workers`). What was built up to then is frozen out of
garbage collection first (`serving.freeze_startup_heap`): it lives as long as the process.

The refusal to bind beyond loopback without auth happens earlier, in `options`.
"""

from __future__ import annotations

import json
import logging
import socket
import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from onepin_mcp import __version__
from onepin_mcp.http_auth import (
    BearerGate,
    ClosingOnShutdown,
    KeyCheck,
    is_onepin_key,
    token_checker,
)
from onepin_mcp.http_guards import (
    HEALTH_PATH,
    AbandonedRequests,
    AllowedHosts,
    HostOriginGate,
    QuietRefusals,
    accepted_hosts,
    transport_security,
    with_deadlines,
)
from onepin_mcp.options import ServeOptions
from onepin_mcp.server import OnePinServer
from onepin_mcp.serving import (
    exit_quietly_on_signals,
    freeze_startup_heap,
    serve_in_workers,
    url_of,
)
from onepin_mcp.sessions import (
    SessionAdmission,
    SessionLimits,
    SessionRoutes,
    StreamableSessions,
    keep_session_ids_out_of_logs,
)

logger = logging.getLogger(__name__)

SSE_PATH = "/sse"
STREAMABLE_HTTP_PATH = "/mcp"
# Long-lived SSE and GET streams would otherwise hold a stop for uvicorn's whole default wait.
GRACEFUL_SHUTDOWN_S = 3


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
        if options.session_route is not None:
            app = SessionRoutes(app, options.session_route)
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


def serve_http(
    server: OnePinServer,
    options: ServeOptions,
    sock: socket.socket,
    *,
    keys: KeyCheck | None = None,
) -> int:
    """Serve on `sock` (from `bind`) until SIGINT or SIGTERM; announce the URL on stderr first.
    Returns the exit status: 0 after a stop by signal.

    `keys` checks callers' keys in passthrough mode (see `build_app`). With `options.workers`
    above 1, the app is built once here and served by that many forked processes on the same
    socket (`serving.serve_in_workers`); options allow it only for stateless Streamable HTTP,
    where no request depends on the process that answered the one before."""
    app = build_app(server, options, keys=keys)
    keep_session_ids_out_of_logs()
    # Last before serving (and before workers fork): everything built so far lives as long as
    # the process, so no collection needs to walk it again.
    freeze_startup_heap()
    url = url_of(sock, mcp_path(options))
    workers = f"; {options.workers} worker processes" if options.workers > 1 else ""
    # Written, not logged: the URL is the command's user interface and must show at any log
    # level (and `--port 0` users need it to connect at all).
    sys.stderr.write(
        f"onepin-mcp: serving MCP over {options.transport} at {url} "
        f"(auth: {options.auth}; health check: {url_of(sock, HEALTH_PATH)}{workers})\n"
    )
    sys.stderr.flush()
    try:
        if options.workers > 1:
            code = serve_in_workers(options.workers, lambda _: _run_uvicorn(app, options, sock))
        else:
            _run_uvicorn(app, options, sock)
            code = 0
    finally:
        sock.close()
    logger.info("onepin-mcp at %s stopped", url)
    return code


def _run_uvicorn(app: ASGIApp, options: ServeOptions, sock: socket.socket) -> None:
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
    with exit_quietly_on_signals():
        uvicorn.Server(config).run(sockets=[sock])


def describe_security(options: ServeOptions) -> str:
    """One line for the startup log: which Host headers are accepted."""
    settings = transport_security(options)
    if not settings.enable_dns_rebinding_protection:
        return "Host/Origin check off (--allowed-host '*')"
    return "Host/Origin check on; accepted hosts: " + json.dumps(
        [h for h in settings.allowed_hosts if not h.endswith(":*")]
    )
