"""Live run resources through the MCP client, in both protocol eras, on sandbox time.

The server's clock here is a `SteppedClock`: a watcher's sleep waits until the test lets it
through (then moves the sandbox clock, as `SandboxClock` does). A test therefore plays a run
out one poll at a time: let the sleep pass, wait until the watcher has polled, announced and
gone back to sleep (or stopped), then look at what the client received. Nothing waits on real
time; every wait is bounded by `anyio.fail_after`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage
from mcp.client.subscriptions import ResourceUpdated
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import INVALID_PARAMS, ResourceUpdatedNotification
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunState
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.sandbox.requestlog import key_id_of
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import OnePinServer, create_server
from onepin_mcp.subscriptions import RunWatchers, parse_run_uri, run_subscriptions
from onepin_mcp.watch import ProgressKey, progress_key

from .conftest import NO_WAIT_RETRY, SandboxClock, ServerFactory, sandbox_settings

pytestmark = pytest.mark.anyio

WORKFLOW = seed.WORKFLOW_COMPLETES_ID  # a run completes in about 16.5 s of sandbox time
DEADLINE_S = 10


def run_uri(workflow_id: str, run_id: str) -> str:
    return f"onepin://workflows/{workflow_id}/runs/{run_id}"


def status_polls(sandbox: Sandbox, run_id: str) -> int:
    return sum(1 for r in sandbox.requests if r.path.endswith(f"/runs/{run_id}/status"))


class SteppedClock:
    """A `SandboxClock` whose every sleep waits for the test's go-ahead."""

    def __init__(self, inner: SandboxClock) -> None:
        self.inner = inner
        self.asleep = anyio.Event()
        self._go, self._gate = anyio.create_memory_object_stream[None]()

    def now(self) -> float:
        return self.inner.now()

    async def sleep(self, seconds: float) -> None:
        self.asleep.set()
        await self._gate.receive()
        await self.inner.sleep(seconds)

    async def settled(self, watchers: RunWatchers, uri: str) -> None:
        """Wait until the watcher of `uri` sleeps (its poll and announcements done) or stopped."""
        async with anyio.create_task_group() as tasks:

            async def first(wait: Callable[[], Awaitable[None]]) -> None:
                await wait()
                tasks.cancel_scope.cancel()

            tasks.start_soon(first, self.asleep.wait)
            tasks.start_soon(first, lambda: watchers.stopped(uri))

    async def step(self, watchers: RunWatchers, uri: str) -> None:
        """Let the pending sleep pass; return once the next poll has been dealt with."""
        self.asleep = anyio.Event()
        await self._go.send(None)
        await self.settled(watchers, uri)

    def close(self) -> None:
        self._go.close()
        self._gate.close()


@pytest.fixture
def clock(sandbox_clock: SandboxClock) -> AsyncIterator[SteppedClock]:
    stepped = SteppedClock(sandbox_clock)
    yield stepped
    stepped.close()


@pytest.fixture
def server(sandbox: Sandbox, clock: SteppedClock) -> OnePinServer:
    return create_server(
        sandbox_settings(sandbox),
        selection=ToolSelection(),
        transport=sandbox.transport(),
        retry=NO_WAIT_RETRY,
        clock=clock,
    )


def watchers_of(server: OnePinServer) -> RunWatchers:
    (watchers,) = run_subscriptions(server).active  # one connected client, one lifespan
    return watchers


class Updates:
    """A `message_handler` that records the URIs of `resources/updated` notifications."""

    def __init__(self) -> None:
        self.uris: list[str] = []

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(message.params.uri)


async def subscribe(client: Client, uri: str) -> None:
    with pytest.warns(MCPDeprecationWarning):
        await client.subscribe_resource(uri)  # type: ignore[deprecated]


async def unsubscribe(client: Client, uri: str) -> None:
    with pytest.warns(MCPDeprecationWarning):
        await client.unsubscribe_resource(uri)  # type: ignore[deprecated]


async def round_trip(client: Client) -> None:
    """A request and its reply: what the server sent before replying has been received."""
    await client.list_resource_templates()


async def started_run(api: OnePinClient) -> tuple[str, str]:
    run = await api.start_run(WORKFLOW)
    return run.id, run_uri(WORKFLOW, run.id)


async def state_of(api: OnePinClient, run_id: str) -> RunState:
    # The full record (GET …/runs/{id}), so that the request log's /status lines are the server's.
    return await api.get_run(WORKFLOW, run_id)


# --- capabilities ---------------------------------------------------------------------------------


async def test_both_eras_advertise_resource_subscriptions(mcp_client: Client, mode: str) -> None:
    capabilities = mcp_client.server_capabilities
    assert capabilities is not None
    assert capabilities.resources is not None
    assert capabilities.resources.subscribe is True
    if mode == "legacy":
        assert mcp_client.protocol_version == "2025-11-25"
    else:
        assert mcp_client.protocol_version == "2026-07-28"
        assert capabilities.resources.list_changed is True  # what the SDK's listen serves


# --- updates until terminal, then silence ---------------------------------------------------------


async def test_legacy_subscriber_gets_each_change_until_terminal_then_polling_stops(
    server: OnePinServer, clock: SteppedClock, api: OnePinClient, sandbox: Sandbox
) -> None:
    run_id, uri = await started_run(api)
    updates = Updates()
    async with Client(server, mode="legacy", message_handler=updates, cache=None) as client:
        watchers = watchers_of(server)
        with anyio.fail_after(DEADLINE_S):
            await subscribe(client, uri)
            assert watchers.watching(uri)
            await clock.settled(watchers, uri)
            state = await state_of(api, run_id)
            seen: ProgressKey = progress_key(state)
            changes = 0
            announced_while_running = False
            while watchers.watching(uri):
                await clock.step(watchers, uri)
                await round_trip(client)  # the notifications sent before it have arrived
                state = await state_of(api, run_id)
                if progress_key(state) != seen:
                    seen = progress_key(state)
                    changes += 1
                    announced_while_running |= not state.is_terminal
                assert updates.uris == [uri] * changes  # one update per change, none otherwise
            assert state.status == "completed"
            assert announced_while_running
            assert changes >= 3

            polls = status_polls(sandbox, run_id)
            sandbox.advance(600)
            await round_trip(client)
            assert status_polls(sandbox, run_id) == polls
            assert len(watchers) == 0


async def test_listen_subscriber_gets_each_change_until_terminal_then_polling_stops(
    server: OnePinServer, clock: SteppedClock, api: OnePinClient, sandbox: Sandbox
) -> None:
    run_id, uri = await started_run(api)
    updates = Updates()
    async with Client(server, mode="auto", message_handler=updates, cache=None) as client:
        assert client.protocol_version == "2026-07-28"
        watchers = watchers_of(server)
        with anyio.fail_after(DEADLINE_S):
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                assert subscription.honored.resource_subscriptions == [uri]
                assert watchers.watching(uri)
                await clock.settled(watchers, uri)
                seen: ProgressKey = progress_key(await state_of(api, run_id))
                changes = 0
                announced_while_running = False
                while watchers.watching(uri):
                    await clock.step(watchers, uri)
                    state = await state_of(api, run_id)
                    if progress_key(state) != seen:
                        seen = progress_key(state)
                        changes += 1
                        announced_while_running |= not state.is_terminal
                        assert await anext(subscription) == ResourceUpdated(uri=uri)
                assert state.status == "completed"
                assert announced_while_running
                assert changes >= 3
                assert updates.uris == [uri] * changes

                polls = status_polls(sandbox, run_id)
                sandbox.advance(600)
                await round_trip(client)
                assert status_polls(sandbox, run_id) == polls
                assert len(watchers) == 0


# --- one watcher per run --------------------------------------------------------------------------


async def test_two_listen_streams_share_one_watcher_and_the_last_to_leave_stops_it(
    server: OnePinServer, clock: SteppedClock, api: OnePinClient, sandbox: Sandbox
) -> None:
    run_id, uri = await started_run(api)
    async with Client(server, mode="auto", cache=None) as client:
        watchers = watchers_of(server)
        with anyio.fail_after(DEADLINE_S):
            async with client.listen(resource_subscriptions=[uri]) as first:
                async with client.listen(resource_subscriptions=[uri]) as second:
                    assert len(watchers) == 1
                    assert watchers.subscriber_count(uri) == 2
                    await clock.settled(watchers, uri)
                    seen = progress_key(await state_of(api, run_id))
                    both_told = False
                    for _ in range(4):
                        polls = status_polls(sandbox, run_id)
                        await clock.step(watchers, uri)
                        assert status_polls(sandbox, run_id) == polls + 1  # one poll per tick
                        state = await state_of(api, run_id)
                        if progress_key(state) != seen:
                            seen = progress_key(state)
                            assert await anext(first) == ResourceUpdated(uri=uri)
                            assert await anext(second) == ResourceUpdated(uri=uri)
                            both_told = True
                    assert both_told
                    assert not state.is_terminal
                await _until(lambda: watchers.subscriber_count(uri) == 1)
                assert watchers.watching(uri)
            await watchers.stopped(uri)
            assert len(watchers) == 0
            polls = status_polls(sandbox, run_id)
            sandbox.advance(600)
            await round_trip(client)
            assert status_polls(sandbox, run_id) == polls


KEY_A = "op_live_" + "A" * 32
KEY_B = "op_live_" + "B" * 32


def status_poll_keys(sandbox: Sandbox, run_id: str, since: int) -> list[str | None]:
    return [
        r.key_id for r in sandbox.requests.since(since) if r.path.endswith(f"/runs/{run_id}/status")
    ]


async def test_a_watcher_polls_with_a_key_still_subscribed_and_drops_a_key_whose_caller_left(
    clock: SteppedClock, api: OnePinClient, sandbox: Sandbox
) -> None:
    # As with HTTP passthrough: two callers, each with its own key, follow one run.
    run_id, uri = await started_run(api)
    settings = sandbox_settings(sandbox)
    async with (
        OnePinClient(
            settings.model_copy(update={"api_key": SecretStr(KEY_A)}),
            transport=sandbox.transport(),
            retry=NO_WAIT_RETRY,
        ) as first_client,
        OnePinClient(
            settings.model_copy(update={"api_key": SecretStr(KEY_B)}),
            transport=sandbox.transport(),
            retry=NO_WAIT_RETRY,
        ) as second_client,
    ):
        watchers = RunWatchers(bus=InMemorySubscriptionBus(), clock=clock)
        first, second = object(), object()
        with anyio.fail_after(DEADLINE_S):
            async with watchers.running():
                watchers.add(first, await watchers.check(first_client, uri), first_client)
                watchers.add(second, await watchers.check(second_client, uri), second_client)
                await clock.settled(watchers, uri)
                mark = len(sandbox.requests)
                await clock.step(watchers, uri)
                await clock.step(watchers, uri)
                # The first subscriber's key serves both while it stays.
                assert status_poll_keys(sandbox, run_id, mark) == [key_id_of(KEY_A)] * 2

                watchers.remove_owner(first)
                mark = len(sandbox.requests)
                await clock.step(watchers, uri)
                await clock.step(watchers, uri)
                assert status_poll_keys(sandbox, run_id, mark) == [key_id_of(KEY_B)] * 2

                watchers.remove_owner(second)
                await watchers.stopped(uri)
                mark = len(sandbox.requests)
                sandbox.advance(600)
                await anyio.lowlevel.checkpoint()
                assert status_poll_keys(sandbox, run_id, mark) == []


async def test_unsubscribing_the_last_legacy_subscriber_stops_the_watcher(
    server: OnePinServer, clock: SteppedClock, api: OnePinClient, sandbox: Sandbox
) -> None:
    run_id, uri = await started_run(api)
    async with Client(server, mode="legacy", cache=None) as client:
        watchers = watchers_of(server)
        with anyio.fail_after(DEADLINE_S):
            await subscribe(client, uri)
            await subscribe(client, uri)  # the same subscription again: still one
            assert watchers.subscriber_count(uri) == 1
            await clock.settled(watchers, uri)
            await clock.step(watchers, uri)
            await unsubscribe(client, uri)
            assert not watchers.watching(uri)
            await watchers.stopped(uri)
            polls = status_polls(sandbox, run_id)
            sandbox.advance(600)
            await round_trip(client)
            assert status_polls(sandbox, run_id) == polls
            await unsubscribe(client, uri)  # nothing left to end: still fine


async def test_closing_the_session_stops_its_watchers(
    server: OnePinServer, clock: SteppedClock, api: OnePinClient, sandbox: Sandbox, mode: str
) -> None:
    run_id, uri = await started_run(api)
    with anyio.fail_after(DEADLINE_S):
        async with Client(server, mode=mode, cache=None) as client:
            watchers = watchers_of(server)
            if mode == "legacy":
                await subscribe(client, uri)
            else:
                listening = client.listen(resource_subscriptions=[uri])
                await listening.__aenter__()
            await clock.settled(watchers, uri)
            assert watchers.watching(uri)
            # Gone with the client, without unsubscribing or closing the stream first.
        assert not watchers.watching(uri)
        await watchers.stopped(uri)
        polls = status_polls(sandbox, run_id)
        sandbox.advance(600)
        assert status_polls(sandbox, run_id) == polls
        assert run_subscriptions(server).active == ()


async def test_a_legacy_connection_ending_releases_its_subscriptions(
    server: OnePinServer, api: OnePinClient
) -> None:
    """The connection's own teardown ends its subscriptions (not just the lifespan's end)."""
    _, uri = await started_run(api)
    async with Client(server, mode="legacy", cache=None) as client:
        watchers = watchers_of(server)
        await subscribe(client, uri)
        (connection,) = {owner for owner, _ in _subscribers(watchers, uri)}
        with anyio.fail_after(DEADLINE_S):
            await connection.exit_stack.aclose()  # what the SDK does when the client goes
        assert not watchers.watching(uri)


# --- what can be subscribed -----------------------------------------------------------------------


async def test_a_legacy_subscription_to_anything_but_a_run_snapshot_is_refused(
    make_server: ServerFactory,
) -> None:
    # resources/subscribe is a 2025-era request: this test speaks only that era.
    async with Client(make_server(toolsets=("all",)), mode="legacy") as legacy:  # type: ignore[arg-type]
        for uri in (
            f"onepin://workflows/{WORKFLOW}",
            f"{run_uri(WORKFLOW, seed.RUN_COMPLETED_ID)}/steps",
            "file:///etc/passwd",
        ):
            with pytest.raises(MCPError) as refused:
                await subscribe(legacy, uri)
            assert refused.value.error.code == INVALID_PARAMS
            assert "only run snapshots send updates" in refused.value.error.message


async def test_subscribing_to_an_unknown_run_is_refused_in_both_eras(
    mcp_client: Client, mode: str
) -> None:
    uri = run_uri(WORKFLOW, "00000000-0000-4000-8000-000000000000")

    async def attempt() -> None:
        if mode == "legacy":
            await subscribe(mcp_client, uri)
        else:
            async with mcp_client.listen(resource_subscriptions=[uri]):
                pass

    with pytest.raises(MCPError) as refused:
        await attempt()
    assert refused.value.error.code == INVALID_PARAMS
    assert uri in refused.value.error.message


async def test_listen_honors_run_snapshots_only(make_server: ServerFactory) -> None:
    # subscriptions/listen is a 2026-era request: this test speaks only that era.
    async with Client(make_server(toolsets=("all",)), mode="auto") as mcp_client:  # type: ignore[arg-type]
        uri = run_uri(seed.WORKFLOW_COURSE_ID, seed.RUN_RUNNING_ID)
        other = f"onepin://workflows/{WORKFLOW}"
        with anyio.fail_after(DEADLINE_S):
            wanted = [uri, other]
            async with mcp_client.listen(
                resource_subscriptions=wanted, tools_list_changed=True
            ) as s:
                assert s.honored.resource_subscriptions == [uri]
                assert s.honored.tools_list_changed is True
            async with mcp_client.listen(resource_subscriptions=[other]) as s:
                assert s.honored.resource_subscriptions is None


async def test_a_finished_run_is_accepted_and_never_watched(
    mcp_client: Client, mode: str, sandbox: Sandbox
) -> None:
    uri = run_uri(seed.WORKFLOW_FAILS_ID, seed.RUN_FAILED_ID)
    if mode == "legacy":
        await subscribe(mcp_client, uri)
    else:
        async with mcp_client.listen(resource_subscriptions=[uri]) as subscription:
            assert subscription.honored.resource_subscriptions == [uri]
    assert status_polls(sandbox, seed.RUN_FAILED_ID) == 1  # the check, and no watcher after it


def test_run_uris_are_recognized_exactly() -> None:
    assert parse_run_uri(run_uri("wf", "run")) == ("wf", "run")
    assert parse_run_uri(run_uri("wf", "run") + "/steps") is None
    assert parse_run_uri("onepin://workflows/wf") is None
    assert parse_run_uri("onepin://workflows/wf/runs/") is None
    assert parse_run_uri("onepin://workflows/{workflow_id}/runs/{run_id}") is None


# --- helpers --------------------------------------------------------------------------------------


def _subscribers(watchers: RunWatchers, uri: str) -> list[tuple[object, str]]:
    run = parse_run_uri(uri)
    assert run is not None
    return list(watchers._watchers[run.key].subscribers)


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until `condition` holds (callers bound it with fail_after):
    for server-side cleanup that follows a client's action with no reply to wait for."""
    while not condition():
        await anyio.lowlevel.checkpoint()
