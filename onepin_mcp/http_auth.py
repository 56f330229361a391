"""Client auth for the HTTP transports: who may send requests at all, as an outer ASGI layer.

`BearerGate` accepts either a static bearer token, compared in constant time, or (passthrough)
a caller's own OnePin key as `Authorization: Bearer op_live_…`, checked with OnePin on its
first use (`KeyCheck`); `PassthroughClients` then serves each request with a client for that
key. The OnePin clients of all callers send through one shared connection pool (`_SharedPool`),
so that dropping one caller's client never closes a socket another caller's request is using;
`ClosingOnShutdown` closes the key check's pool when the server stops.

What the gate hands on, the caller's identity, is made in `onepin_mcp.sessions` (`Callers`),
which also binds sessions to it; `onepin_mcp.http_guards` holds the checks that apply whoever
the caller is.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from mcp.server.mcpserver import Context
from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.errors import OnePinAPIError, OnePinAuthConfigError, OnePinError
from onepin_mcp.api.settings import Settings
from onepin_mcp.http_guards import HEALTH_PATH
from onepin_mcp.options import API_KEY_FORM, DEFAULT_KEY_CHECK_TTL_S
from onepin_mcp.sessions import Callers

logger = logging.getLogger(__name__)

REALM = "onepin-mcp"

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
