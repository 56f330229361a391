"""HTTP sessions bound to the caller that opened them, how many each may hold, and their ids
kept out of the log.

* **Who a caller is.** `Callers` turns a credential (the static token, or a caller's own OnePin
  key) into a digest: HMAC-SHA256 under a key drawn at random when the process starts. Not a
  plain SHA-256: the token may be short enough to guess, and a plain hash seen anywhere (a
  debugger, a heap dump, a log line someone adds later) would let a guess be checked offline.
  The digest is all the SDK sees: `scope["user"]` is an `AuthenticatedUser` whose AccessToken
  holds the digest as both `client_id` (what the SDK compares, see `principal_components`) and
  `token` (the SDK never needs the credential itself, so the key is not left where a repr of
  the user would print it). The SDK's session managers (Streamable HTTP and SSE) record that
  principal when a session opens and answer any later request for the session made with
  another credential exactly as for an unknown session (404, same body).
* **How many.** `SessionAdmission` refuses a request that would open a session when the caller
  already holds `per_caller` sessions (429) or the server holds `total` (503), with a JSON body
  that says which limit and what to do. Streamable HTTP sessions are counted in the SDK's own
  session registry (so a session that ended by DELETE, idle expiry or crash is never counted
  twice or forgotten), plus the opening requests still in flight. An SSE session lives exactly
  as long as its GET stream, so it is counted for the duration of that request.
* **Which replica.** Behind a balancer that routes each session to its own replica,
  `SessionRoutes` makes the ids this replica hands out name it: `ROUTE.` + the SDK's id (its
  random part untouched: the 122 random bits of a uuid4), so the balancer reads the replica
  from the id (`deploy/nginx-sessions.conf`). On the way in the prefix is taken off again; an
  id without it, from another replica or made up, reaches the SDK as one it never minted, and
  is answered exactly as any unknown session (404).
* **Ids out of the log.** The SDK logs session ids at INFO and WARNING (a new session, an
  unknown or foreign one, its end); uvicorn's access line carries SSE's `?session_id=`. Anyone
  who can read the log could then try the id. `keep_session_ids_out_of_logs` demotes those
  records to DEBUG (`--log-level debug` still shows them) and drops query strings from access
  lines.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onepin_mcp.sdk import session_owners, stateful_sessions

logger = logging.getLogger(__name__)

SESSION_ID_HEADER = b"mcp-session-id"
PROTOCOL_VERSION_HEADER = b"mcp-protocol-version"
# The longest a refused client is told to wait: sessions free up as their clients close them,
# which nobody can predict; a minute is a polite interval between tries.
MAX_RETRY_AFTER_S = 60


# --- who a caller is ----------------------------------------------------------------------------


class Callers:
    """Credential → principal, by HMAC-SHA256 under a per-process random key."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def digest(self, credential: str) -> str:
        return hmac.new(self._secret, credential.encode("utf-8"), hashlib.sha256).hexdigest()

    def user(self, credential: str) -> AuthenticatedUser:
        """What `scope["user"]` holds for a request made with `credential`."""
        digest = self.digest(credential)
        return AuthenticatedUser(AccessToken(token=digest, client_id=digest, scopes=[]))


def caller_of(scope: Scope) -> str | None:
    """The digest of the credential a request was made with, or None (no auth configured)."""
    user = scope.get("user")
    return user.access_token.client_id if isinstance(user, AuthenticatedUser) else None


# --- how many -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionLimits:
    """Open sessions allowed in total and per caller (None: no per-caller limit), and how long
    a Streamable HTTP session may go without a request in flight before it is closed."""

    total: int
    per_caller: int | None
    idle_timeout_s: float


class StreamableSessions:
    """The open Streamable HTTP sessions and their owners, read from the SDK's session manager.

    The manager keeps both (it needs them to route requests and check owners) but has no
    public way to count them; reading its two maps is exact where a count of our own would
    drift (the manager ends idle and crashed sessions without telling anyone). Checked when
    the app is built, so that an SDK that renamed them fails at start, not by letting every
    session through. Both are reached through `sdk`, the one place that names private SDK parts.
    """

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        # Both read once here, so that an SDK without them fails at start (see the class).
        stateful_sessions(manager)
        session_owners(manager)
        self._manager = manager

    def total(self) -> int:
        return len(stateful_sessions(self._manager))

    def held_by(self, caller: str) -> int:
        owners = session_owners(self._manager)
        return sum(1 for owner in owners.values() if owner.get("client_id") == caller)


class SessionAdmission:
    """ASGI layer: refuse a request that would open a session beyond the limits.

    For Streamable HTTP (stateful), a request opens a session when it carries no
    `Mcp-Session-Id` and belongs to a protocol era that has sessions (no `MCP-Protocol-Version`
    or one of the handshake versions; the SDK routes others to its sessionless path). It is
    counted as opening from when it is admitted until its answer names the new session (from
    then on the SDK's registry counts it) or refuses it. For SSE, the GET stream is the session.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        transport: Literal["sse", "streamable-http"],
        path: str,
        limits: SessionLimits,
        registry: StreamableSessions | None = None,
    ) -> None:
        if transport == "streamable-http" and registry is None:
            raise ValueError("Streamable HTTP admission counts sessions in the SDK's registry")
        self.app = app
        self.transport = transport
        self.path = path
        self.limits = limits
        self._registry = registry
        # Opening requests in flight (Streamable HTTP), or open streams (SSE), per caller.
        self._held: Counter[str | None] = Counter()

    def held(self) -> int:
        """Sessions open now, plus the ones being opened."""
        counted = self._registry.total() if self._registry is not None else 0
        return counted + sum(self._held.values())

    def held_by(self, caller: str | None) -> int:
        counted = (
            self._registry.held_by(caller)
            if self._registry is not None and caller is not None
            else 0
        )
        return counted + self._held[caller]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._opens_a_session(scope):
            await self.app(scope, receive, send)
            return
        caller = caller_of(scope)
        refusal = self._refusal(caller)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        self._held[caller] += 1
        counted = True

        def release() -> None:
            nonlocal counted
            if counted:
                counted = False
                self._held[caller] -= 1
                if self._held[caller] <= 0:
                    del self._held[caller]

        async def watching(message: Message) -> None:
            # Streamable HTTP: once the answer names the session, the SDK's registry holds it.
            if (
                self.transport == "streamable-http"
                and message["type"] == "http.response.start"
                and message["status"] < 400
                and any(name == SESSION_ID_HEADER for name, _ in message.get("headers", ()))
            ):
                release()
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            release()
            if self.transport == "sse":
                logger.debug("An SSE session closed; %d open", self.held())

    def _opens_a_session(self, scope: Scope) -> bool:
        if scope.get("path") != self.path:
            return False
        if self.transport == "sse":
            return scope.get("method") == "GET"
        headers = scope.get("headers", ())
        if any(name == SESSION_ID_HEADER for name, _ in headers):
            return False
        versions = [
            bytes(v).decode("latin-1") for name, v in headers if name == PROTOCOL_VERSION_HEADER
        ]
        return not versions or versions[0] in HANDSHAKE_PROTOCOL_VERSIONS

    def _refusal(self, caller: str | None) -> JSONResponse | None:
        limits = self.limits
        retry_after = str(self._retry_after_s())
        per_caller = limits.per_caller
        if caller is not None and per_caller is not None and self.held_by(caller) >= per_caller:
            logger.info(
                "Refused a new %s session: the caller already holds %d (the limit per key)",
                self.transport,
                per_caller,
            )
            return JSONResponse(
                {
                    "error": "too_many_sessions",
                    "error_description": (
                        f"This key already has {per_caller} open MCP sessions, the most this "
                        "server allows per key. Close one you no longer use "
                        f"({self._how_sessions_end()}), then retry."
                    ),
                },
                status_code=429,
                headers={"Retry-After": retry_after},
            )
        if self.held() >= limits.total:
            logger.warning(
                "Refused a new %s session: %d sessions are open, the server's limit",
                self.transport,
                limits.total,
            )
            return JSONResponse(
                {
                    "error": "server_busy",
                    "error_description": (
                        f"The server has {limits.total} open MCP sessions, the most it allows. "
                        "Retry later; existing sessions are unaffected."
                    ),
                },
                status_code=503,
                headers={"Retry-After": retry_after},
            )
        return None

    def _how_sessions_end(self) -> str:
        if self.transport == "sse":
            return "an SSE session ends when its client disconnects"
        return (
            "a client ends its session when it closes; an idle one ends after "
            f"{self.limits.idle_timeout_s:g} s without requests"
        )

    def _retry_after_s(self) -> int:
        if self.transport == "sse":
            return MAX_RETRY_AFTER_S
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self.limits.idle_timeout_s)))


# --- which replica ------------------------------------------------------------------------------

# What an id that doesn't carry this replica's route becomes on its way to the SDK: the SDK's
# ids are hex digits only, so one starting with this can never be found (and is answered 404).
_NOT_MINTED_HERE = b"!"


class SessionRoutes:
    """ASGI layer (stateful Streamable HTTP): session ids carry this replica's route name.

    The SDK mints and looks up its own ids; this layer only rewrites the `Mcp-Session-Id`
    header, adding `route.` to every answer that names a session and taking it off every
    request that presents one. Nothing private of the SDK is touched, and a request whose id
    does not start with this replica's route is passed on with an id the SDK cannot know, so
    it takes the SDK's own unknown-session path (the same 404, body and headers, as any id
    nobody minted, or another caller's).
    """

    def __init__(self, app: ASGIApp, route: str) -> None:
        self.app = app
        self.prefix = f"{route}.".encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if any(name == SESSION_ID_HEADER for name, _ in headers):
            scope = dict(scope)
            scope["headers"] = [
                (name, self._inward(bytes(value)) if name == SESSION_ID_HEADER else value)
                for name, value in headers
            ]

        async def outward(message: Message) -> None:
            if message["type"] == "http.response.start" and any(
                name.lower() == SESSION_ID_HEADER for name, _ in message.get("headers", ())
            ):
                message = dict(message)
                message["headers"] = [
                    (name, self.prefix + value if name.lower() == SESSION_ID_HEADER else value)
                    for name, value in message["headers"]
                ]
            await send(message)

        await self.app(scope, receive, outward)

    def _inward(self, value: bytes) -> bytes:
        if value.startswith(self.prefix):
            return value[len(self.prefix) :]
        return _NOT_MINTED_HERE + value


# --- ids out of the log -------------------------------------------------------------------------

# The SDK's loggers that name sessions, and what in their messages is a session id: the hex
# UUIDs it issues (Streamable HTTP: 32 hex digits; SSE: a UUID, printed with dashes), or the
# attacker-chosen text of an id it could not parse.
SESSION_LOGGERS = (
    "mcp.server.streamable_http_manager",
    "mcp.server.streamable_http",
    "mcp.server.sse",
)
_SESSION_ID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|Received invalid session ID",
    re.IGNORECASE,
)
_MASK = "<session id>"


class SessionIdsAtDebug(logging.Filter):
    """On the SDK's session loggers: a record that names a session id is a DEBUG record.

    Records below ERROR are demoted (and dropped unless debug is on). An error (a session that
    crashed) stays an error, as it should, with the id masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's to report
            return True
        if not _SESSION_ID.search(message):
            return True
        if record.levelno >= logging.ERROR:
            record.msg, record.args = _SESSION_ID.sub(_MASK, message), None
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class AccessPathsWithoutQuery(logging.Filter):
    """On `uvicorn.access`: the request's path without its query string.

    uvicorn logs `client - "METHOD path?query HTTP/x" status`, with the path as the third
    argument; SSE's query carries the session id, and no query we serve needs logging.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].partition("?")[0], *args[3:])
        return True


def keep_session_ids_out_of_logs() -> None:
    """Install both filters (once, however many times it is called)."""
    for name in SESSION_LOGGERS:
        _install(logging.getLogger(name), SessionIdsAtDebug)
    _install(logging.getLogger("uvicorn.access"), AccessPathsWithoutQuery)


def _install(target: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(existing, kind) for existing in target.filters):
        target.addFilter(kind())
