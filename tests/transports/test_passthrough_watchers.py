"""A run watcher in passthrough mode spends only the keys of callers still subscribed.

Real processes on loopback sockets: the sandbox as OnePin, and `onepin-mcp` serving Streamable
HTTP in passthrough mode, where each caller's bearer is its own OnePin key. Two callers follow
one run (one watcher serves both); when the first leaves, the watcher goes on with the second
caller's key and never again with the first's. The sandbox's request log names the key of each
request by its key id, so the test sees whose key the server spent without handling keys in logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import seed
from onepin_mcp.sandbox.requestlog import key_id_of
from onepin_mcp.watch import progress_key
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.support.updates import Updates
from tests.transports.served import Served, start_passthrough, stop_server

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
FIRST_KEY = "op_live_" + "F" * 32
SECOND_KEY = "op_live_" + "S" * 32
WORKFLOW = seed.WORKFLOW_COMPLETES_ID  # completes in about 16.5 s of sandbox time
STEP_S = 0.5


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    # A manual clock: the run stays active for as long as the test needs it to.
    sandbox = start_sandbox("--manual-clock", "--api-key", FIRST_KEY, "--api-key", SECOND_KEY)
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture(scope="module")
def passthrough(
    onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    served = start_passthrough(onepin.base_url, tmp_path_factory.mktemp("home"))
    yield served
    assert stop_server(served) == 0, served.stderr_text()


def _status_polls(onepin: ServedSandbox, run_id: str, since: int) -> list[str | None]:
    records = onepin.control("GET", "/_sandbox/requests").json()["data"][since:]
    return [r["key_id"] for r in records if r["path"].endswith(f"/runs/{run_id}/status")]


def _log_length(onepin: ServedSandbox) -> int:
    return len(onepin.control("GET", "/_sandbox/requests").json()["data"])


async def _subscribe(client: Client, uri: str) -> None:
    with pytest.warns(MCPDeprecationWarning):
        await client.subscribe_resource(uri)  # type: ignore[deprecated]


async def test_a_watcher_stops_spending_the_key_of_a_caller_who_left(
    onepin: ServedSandbox, passthrough: Served
) -> None:
    first_id, second_id = key_id_of(FIRST_KEY), key_id_of(SECOND_KEY)
    updates = Updates()

    async def next_change(api: OnePinClient) -> None:
        # Move the sandbox's clock until the run's progress changes; the watcher's next poll
        # sees it and tells the remaining subscriber, so each update marks one more poll made.
        # (The full record, not `/status`, so that the test's reads stay out of the count.)
        before = progress_key(await api.get_run(WORKFLOW, run_id))
        while progress_key(await api.get_run(WORKFLOW, run_id)) == before:
            onepin.advance(STEP_S)
        assert await updates.received.receive() == uri

    settings = Settings(api_key=SecretStr(FIRST_KEY), base_url=onepin.base_url)
    with anyio.fail_after(DEADLINE_S), closing(updates):
        async with (
            OnePinClient(settings) as api,
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {SECOND_KEY}"}) as second_http,
            Client(
                streamable_http_client(passthrough.url, http_client=second_http),
                mode="legacy",
                message_handler=updates,
            ) as second,
        ):
            uri = f"onepin://workflows/{WORKFLOW}/runs/{(await api.start_run(WORKFLOW)).id}"
            run_id = uri.rpartition("/")[2]
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {FIRST_KEY}"}) as first_http,
                Client(
                    streamable_http_client(passthrough.url, http_client=first_http),
                    mode="legacy",
                ) as first,
            ):
                await _subscribe(first, uri)  # starts the watcher
                await _subscribe(second, uri)  # shares it
                mark = _log_length(onepin)
                await next_change(api)
                # While both are here, the first subscriber's key serves both.
                assert set(_status_polls(onepin, run_id, mark)) == {first_id}
            # The first caller has left: its session was deleted on the way out.
            mark = _log_length(onepin)
            await next_change(api)
            await next_change(api)
            polls = _status_polls(onepin, run_id, mark)
            assert second_id in polls
            # A poll already on its way when the caller left may still carry its key; none after.
            tail = polls[polls.index(second_id) :]
            assert tail == [second_id] * len(tail)
