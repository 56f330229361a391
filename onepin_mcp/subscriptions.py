"""Live run resources: a subscribed run snapshot sends `resources/updated` on every change.

Subscribing to `onepin://workflows/{workflow_id}/runs/{run_id}` makes the server follow that run
(`watch.follow_run`: the cheap status endpoint, adaptive interval) and announce each change of
its progress (`watch.progress_key`) to every subscriber, until the run is terminal. Then the
watcher stops and is forgotten. An update means "read the snapshot again"; the step log
(`…/steps`) changes along with it, so a client that shows both re-reads both.

Both protocol eras:
- 2025-11-25 and older: `resources/subscribe` / `resources/unsubscribe` (low-level handlers
  registered here; having them is what makes `initialize` advertise `resources.subscribe`).
  A subscriber is the client's connection; updates go out on its standalone channel. Its
  subscriptions end with `resources/unsubscribe` or when the connection closes.
- 2026-07-28: `subscriptions/listen`, served by the SDK's `ListenHandler` over the server's
  `SubscriptionBus`. The handler is wrapped here: run snapshot URIs in the listen filter are
  checked and watched for as long as the stream is open; URIs that nothing here would ever
  announce are left out of the acknowledged filter (the protocol's way to say "not honored").
  Updates are published on the bus once per change and URI; the SDK fans them out.

One watcher per run, whatever the number of subscribers, in either era: it sleeps on
`AppState.clock` and polls with the client of a subscriber that is still subscribed (the
earliest one left). Every subscription is checked first with one status request made with the
subscriber's own client, so that a caller with its own key (HTTP passthrough) learns of a run it
cannot see as an error, and never through a watcher someone else started. When the last
subscriber using a key leaves, the watcher stops using that key: a caller who left has not
agreed to have its key spent on others' behalf. A run that is already terminal is accepted and
never watched: it will not change.

Watchers belong to the lifespan: `register_subscriptions` wraps the server's lifespan so that
each lifespan (one per process under HTTP, one per connection on stdio) gets its own
`RunWatchers`, whose task group holds every watcher task and is cancelled at shutdown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from weakref import WeakKeyDictionary

import anyio
import anyio.abc
import anyio.lowlevel
from mcp import MCPError
from mcp.server import MCPServer, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.context import HandlerResult
from mcp.server.mcpserver import Context
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinError, OnePinInputError, redact
from onepin_mcp.api.models import RunState
from onepin_mcp.failures import explain
from onepin_mcp.resources import RUN_URI
from onepin_mcp.sdk import connection_of, lowlevel_server, wrap_lifespan
from onepin_mcp.state import AppState, Clock
from onepin_mcp.watch import PollSchedule, ProgressKey, follow_run, progress_key

logger = logging.getLogger("onepin_mcp.subscriptions")

# The run snapshot template, as a pattern: the ids are single path segments.
_RUN_URI_PATTERN: Final = re.compile(
    r"onepin://workflows/(?P<workflow_id>[^/?#{}]+)/runs/(?P<run_id>[^/?#{}]+)"
)
# After a failed poll (the client has already retried what it could), the watcher pauses this
# long on the clock and follows the run again; after this many failures in a row it gives up.
RETRY_PAUSE_S: Final = 15.0
MAX_CONSECUTIVE_FAILURES: Final = 5
# A client that stopped reading must not hold a watcher (and every other subscriber) up.
NOTIFY_TIMEOUT_S: Final = 5.0
# Where a legacy connection records that its subscriptions end with it.
_CONNECTION_STATE_KEY: Final = "onepin_mcp.run_watchers"


class RunRef(NamedTuple):
    """A run, by ids as a subscriber spelled them."""

    workflow_id: str
    run_id: str

    @property
    def key(self) -> tuple[str, str]:
        # UUIDs: one run whatever the case of its hex digits.
        return (self.workflow_id.lower(), self.run_id.lower())

    def ids(self) -> dict[str, str]:
        return {"workflow_id": self.workflow_id, "run_id": self.run_id}


def parse_run_uri(uri: str) -> RunRef | None:
    """The run a snapshot URI of this server names, else None (other resources, other URIs)."""
    match = _RUN_URI_PATTERN.fullmatch(uri)
    if match is None:
        return None
    return RunRef(match["workflow_id"], match["run_id"])


class SubscriptionRefused(MCPError):
    """A subscription this server cannot honor: `-32602` with the URI, worded for the caller."""

    def __init__(self, uri: str, message: str) -> None:
        # The URI is the caller's text and may carry a key pasted into it: masked in both.
        super().__init__(INVALID_PARAMS, redact(message), data={"uri": redact(uri)})


def _not_a_run_uri(uri: str) -> SubscriptionRefused:
    return SubscriptionRefused(
        uri,
        f"Cannot subscribe to {uri!r}: only run snapshots send updates here ({RUN_URI}); "
        "a run's step log changes with its snapshot, so subscribe to the snapshot and "
        "re-read both on each update.",
    )


@dataclass(frozen=True)
class CheckedRun:
    """A subscription that passed its check: the URI, its run, and the run's state then."""

    uri: str
    run: RunRef
    baseline: ProgressKey
    terminal: bool


@dataclass(eq=False)
class _Subscriber:
    uri: str
    client: OnePinClient  # the subscriber's own: with HTTP passthrough, its caller's key
    connection: Connection | None  # None: a 2026 listen stream, reached through the bus


@dataclass(eq=False)
class _Watcher:
    run: RunRef
    last: ProgressKey
    # Keyed by (owner, uri): the owner is a legacy Connection or a listen stream's token.
    subscribers: dict[tuple[object, str], _Subscriber] = field(default_factory=dict)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)

    @property
    def client(self) -> OnePinClient | None:
        """The client polls go out with: the earliest subscriber's still here, else none."""
        return next((s.client for s in self.subscribers.values()), None)

    async def get_run_status(self, workflow_id: str, run_id: str) -> RunState:
        # Chosen per poll, so that a subscriber who left stops lending its key at the next one.
        client = self.client
        if client is None:
            # Only after the last subscriber left, which cancelled `scope`: stop here, quietly.
            self.scope.cancel()
            await anyio.lowlevel.checkpoint()
            raise AssertionError("unreachable: the watcher's scope is cancelled")
        return await client.get_run_status(workflow_id, run_id)


class RunWatchers:
    """The watchers of one lifespan: at most one per run, each in `running()`'s task group."""

    def __init__(
        self,
        *,
        bus: SubscriptionBus,
        clock: Clock,
        schedule: PollSchedule | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._schedule = schedule or PollSchedule()
        self._watchers: dict[tuple[str, str], _Watcher] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RunWatchers]:
        """Hold the watchers' task group; leaving it stops every watcher."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                self._tasks = None
                self._watchers.clear()
                tasks.cancel_scope.cancel()

    # --- subscribing ---------------------------------------------------------------------------

    async def check(self, client: OnePinClient, uri: str) -> CheckedRun:
        """Check that `uri` is a run snapshot `client` can see (one status request), or refuse."""
        run = parse_run_uri(uri)
        if run is None:
            raise _not_a_run_uri(uri)
        try:
            state = await client.get_run_status(run.workflow_id, run.run_id)
        except OnePinError as exc:
            missing = isinstance(exc, OnePinInputError) or (
                isinstance(exc, OnePinAPIError) and exc.status == 404
            )
            reason = explain(exc, run.ids())
            if missing:
                raise SubscriptionRefused(uri, f"Cannot subscribe to {uri!r}: {reason}") from exc
            raise MCPError(
                INTERNAL_ERROR,
                redact(f"Cannot subscribe to {uri!r} now: {reason}"),
                data={"uri": redact(uri)},
            ) from exc
        return CheckedRun(uri, run, progress_key(state), state.is_terminal)

    def add(
        self,
        owner: object,
        checked: CheckedRun,
        client: OnePinClient,
        *,
        connection: Connection | None = None,
    ) -> None:
        """Subscribe `owner` to a checked run; start its watcher unless one runs already.

        Synchronous on purpose: a listen stream's bus listener is registered right after, before
        the new watcher can take its first step, so no update falls in between.
        """
        if checked.terminal:
            return  # it will never change: nothing to watch, nothing to announce
        watcher = self._watchers.get(checked.run.key)
        if watcher is None:
            if self._tasks is None:
                raise MCPError(INTERNAL_ERROR, "Run subscriptions are not available: shutting down")
            watcher = _Watcher(run=checked.run, last=checked.baseline)
            self._watchers[checked.run.key] = watcher
            self._tasks.start_soon(self._watch, watcher, name=f"watch {checked.uri}")
            logger.info("Watching run %s/%s", *checked.run.key)
        watcher.subscribers[(owner, checked.uri)] = _Subscriber(checked.uri, client, connection)

    def remove(self, owner: object, uri: str) -> None:
        """End `owner`'s subscription to `uri` (nothing if it had none)."""
        run = parse_run_uri(uri)
        watcher = self._watchers.get(run.key) if run is not None else None
        if watcher is not None:
            watcher.subscribers.pop((owner, uri), None)
            self._stop_if_unwatched(watcher)

    def remove_owner(self, owner: object) -> None:
        """End every subscription of `owner` (a closed connection, an ended listen stream)."""
        for watcher in list(self._watchers.values()):
            for key in [key for key in watcher.subscribers if key[0] is owner]:
                del watcher.subscribers[key]
            self._stop_if_unwatched(watcher)

    def _stop_if_unwatched(self, watcher: _Watcher) -> None:
        if not watcher.subscribers:
            self._forget(watcher)
            watcher.scope.cancel()
            logger.info("Stopped watching run %s/%s: no subscribers left", *watcher.run.key)

    # --- looking on (operations, tests) --------------------------------------------------------

    def watching(self, uri: str) -> bool:
        """Whether a watcher follows the run `uri` names."""
        run = parse_run_uri(uri)
        return run is not None and run.key in self._watchers

    def subscriber_count(self, uri: str) -> int:
        """How many subscriptions the watcher of `uri`'s run serves (0 when none runs)."""
        run = parse_run_uri(uri)
        watcher = self._watchers.get(run.key) if run is not None else None
        return len(watcher.subscribers) if watcher is not None else 0

    def __len__(self) -> int:
        return len(self._watchers)

    async def stopped(self, uri: str) -> None:
        """Return once no watcher follows the run `uri` names (at once if none does)."""
        run = parse_run_uri(uri)
        watcher = self._watchers.get(run.key) if run is not None else None
        if watcher is not None:
            await watcher.done.wait()

    # --- the watcher ---------------------------------------------------------------------------

    async def _watch(self, watcher: _Watcher) -> None:
        run = watcher.run
        failures = 0
        try:
            with watcher.scope:
                while True:
                    try:
                        async with aclosing(
                            follow_run(
                                watcher,
                                run.workflow_id,
                                run.run_id,
                                clock=self._clock,
                                schedule=self._schedule,
                            )
                        ) as states:
                            async for state in states:
                                failures = 0
                                key = progress_key(state)
                                if key != watcher.last:
                                    watcher.last = key
                                    await self._announce(watcher)
                        logger.info("Run %s/%s is %s: watcher done", *run.key, watcher.last[0])
                        return
                    except OnePinError as exc:
                        failures += 1
                        reason = explain(exc, run.ids())
                        gone = isinstance(exc, OnePinAPIError) and exc.status == 404
                        if gone or failures >= MAX_CONSECUTIVE_FAILURES:
                            logger.warning("Stopped watching run %s/%s: %s", *run.key, reason)
                            # Reading the snapshot now shows what happened (or fails alike).
                            await self._announce(watcher)
                            return
                        logger.info("Watching run %s/%s failed; retrying: %s", *run.key, reason)
                        await self._clock.sleep(RETRY_PAUSE_S)
        finally:
            self._forget(watcher)
            watcher.done.set()

    def _forget(self, watcher: _Watcher) -> None:
        if self._watchers.get(watcher.run.key) is watcher:
            del self._watchers[watcher.run.key]

    async def _announce(self, watcher: _Watcher) -> None:
        """`resources/updated` to every subscriber: legacy ones directly, listen streams once per
        URI through the bus (which delivers to each stream that asked for that URI)."""
        published: set[str] = set()
        for subscriber in list(watcher.subscribers.values()):
            uri = subscriber.uri
            if subscriber.connection is None:
                if uri not in published:
                    published.add(uri)
                    await self._bus.publish(ResourceUpdated(uri=uri))
                continue
            with anyio.move_on_after(NOTIFY_TIMEOUT_S) as timed:
                # Best effort by design: a closed stream is dropped quietly, never raised.
                await subscriber.connection.send_resource_updated(uri)
            if timed.cancelled_caught:
                logger.warning("A subscriber of %s is not reading; update not delivered", uri)


class RunSubscriptions:
    """The server-wide side: the bus, and the `RunWatchers` of every active lifespan."""

    def __init__(self, bus: SubscriptionBus, *, schedule: PollSchedule | None = None) -> None:
        self.bus = bus
        self._schedule = schedule
        self._by_state: dict[int, RunWatchers] = {}

    @property
    def active(self) -> tuple[RunWatchers, ...]:
        """The registries of the lifespans running now (one under HTTP)."""
        return tuple(self._by_state.values())

    def watchers_for(self, state: AppState) -> RunWatchers:
        watchers = self._by_state.get(id(state))
        if watchers is None:
            raise MCPError(INTERNAL_ERROR, "Run subscriptions are not available: no lifespan")
        return watchers

    @asynccontextmanager
    async def lifespan(self, state: AppState) -> AsyncIterator[RunWatchers]:
        watchers = RunWatchers(bus=self.bus, clock=state.clock, schedule=self._schedule)
        async with watchers.running():
            self._by_state[id(state)] = watchers
            try:
                yield watchers
            finally:
                del self._by_state[id(state)]


_REGISTERED: WeakKeyDictionary[MCPServer[Any], RunSubscriptions] = WeakKeyDictionary()


def run_subscriptions(server: MCPServer[Any]) -> RunSubscriptions:
    """What `register_subscriptions` installed on `server`."""
    return _REGISTERED[server]


def register_subscriptions(
    server: MCPServer[AppState],
    bus: SubscriptionBus,
    *,
    schedule: PollSchedule | None = None,
) -> RunSubscriptions:
    """Make run snapshots subscribable in both eras. `bus` must be the one `server` was built
    with (`MCPServer(subscriptions=bus)`): it is what listen streams receive updates from."""
    subscriptions = RunSubscriptions(bus, schedule=schedule)
    _REGISTERED[server] = subscriptions
    lowlevel = lowlevel_server(server)

    # The watchers' task group lives inside the server's own lifespan.
    wrap_lifespan(server, subscriptions.lifespan)

    def client_of(request: ServerRequestContext[AppState, Any]) -> OnePinClient:
        ctx: Context[AppState, Any] = Context(request_context=request, mcp_server=server)
        return request.lifespan_context.clients.client_for(ctx)

    # --- 2025-era: resources/subscribe and resources/unsubscribe ---------------------------------

    async def subscribe(
        request: ServerRequestContext[AppState, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        uri = str(params.uri)
        connection = _connection_of(request)
        if not connection.has_standalone_channel:
            raise SubscriptionRefused(
                uri,
                f"Cannot subscribe to {uri!r}: this connection cannot receive notifications "
                "(stateless HTTP); read the snapshot again or use wait_for_run instead.",
            )
        watchers = subscriptions.watchers_for(request.lifespan_context)
        client = client_of(request)
        checked = await watchers.check(client, uri)
        _end_with_connection(connection, watchers)
        watchers.add(connection, checked, client, connection=connection)
        return EmptyResult()

    async def unsubscribe(
        request: ServerRequestContext[AppState, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        uri = str(params.uri)
        if parse_run_uri(uri) is None:
            raise _not_a_run_uri(uri)
        watchers = subscriptions.watchers_for(request.lifespan_context)
        watchers.remove(_connection_of(request), uri)
        return EmptyResult()

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)

    # --- 2026-era: subscriptions/listen ----------------------------------------------------------

    served = lowlevel.get_request_handler("subscriptions/listen")
    if served is None:
        return subscriptions  # listen disabled (`subscriptions=False`): the 2025 side only
    serve_listen = served.handler

    async def listen(
        request: ServerRequestContext[AppState, Any], params: SubscriptionsListenRequestParams
    ) -> HandlerResult:
        wanted = params.notifications.resource_subscriptions or []
        uris = [uri for uri in dict.fromkeys(wanted) if parse_run_uri(uri) is not None]
        if len(uris) != len(set(wanted)):
            # The caller's URIs, masked at the source too: a key pasted into one is still a key.
            refused = sorted(set(wanted) - set(uris))
            logger.debug("Listen filter: not honoring %s", redact(str(refused)))
        honored = params.model_copy(
            update={
                "notifications": params.notifications.model_copy(
                    update={"resource_subscriptions": uris or None}
                )
            }
        )
        if not uris:
            return await serve_listen(request, honored)
        watchers = subscriptions.watchers_for(request.lifespan_context)
        client = client_of(request)
        checked = [await watchers.check(client, uri) for uri in uris]
        stream = object()  # this listen stream, as an owner of subscriptions
        try:
            for run in checked:
                watchers.add(stream, run, client)
            # The SDK's handler registers its bus listener before its first await, so before
            # any watcher started above takes a step; it returns when the stream closes.
            return await serve_listen(request, honored)
        finally:
            watchers.remove_owner(stream)

    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen)
    return subscriptions


def _connection_of(request: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a legacy request came on: what its subscriptions belong to.

    `ServerSession` is a per-request proxy; the `Connection` behind it is the per-client object
    that lives as long as the session (its `exit_stack` unwinds when the client goes). The SDK
    exposes it on the kernel's `Context` but not on `ServerRequestContext` (see `sdk`).
    """
    connection = connection_of(request.session)
    if connection is None:
        raise MCPError(INTERNAL_ERROR, "Run subscriptions are not available on this connection")
    return connection


def _end_with_connection(connection: Connection, watchers: RunWatchers) -> None:
    """Arrange, once per connection, for its subscriptions to end when it closes."""
    registered: set[int] = connection.state.setdefault(_CONNECTION_STATE_KEY, set())
    if id(watchers) not in registered:
        registered.add(id(watchers))
        connection.exit_stack.callback(watchers.remove_owner, connection)


__all__ = [
    "CheckedRun",
    "RunRef",
    "RunSubscriptions",
    "RunWatchers",
    "SubscriptionRefused",
    "parse_run_uri",
    "register_subscriptions",
    "run_subscriptions",
]
