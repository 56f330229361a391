"""Stateful sessions behind nginx: every request of a session reaches the replica that holds it.

Real processes on loopback sockets: the sandbox as OnePin (one process, so every replica sees
the same runs), three `onepin-mcp` replicas serving stateful Streamable HTTP, each with its own
`--session-route`, and Debian's nginx in front of them, run unprivileged from a temporary
prefix with the shipped `deploy/nginx-sessions.conf`: the file itself, with only the replicas'
addresses, the listening port and temporary paths put in. Through the balancer a client
subscribes to a run and hears of its changes, waits for it with progress notifications, and
answers the confirmation `cancel_run` asks for, while other clients open sessions of their own;
those spread over the three replicas, and no request of any session is answered as if its
session were unknown.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import CallToolResult
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import seed
from onepin_mcp.watch import progress_key
from tests.support.processes import Launched, launch, terminate
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.support.updates import Updates
from tests.support.users import User
from tests.transports.served import REPO, Served, start_server, stop_server
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

pytestmark = pytest.mark.anyio

DEADLINE_S = 90.0
SHIPPED = REPO / "deploy" / "nginx-sessions.conf"
ROUTES = ("a", "b", "c")
# The replicas' addresses as the shipped file names them (compose service names).
SHIPPED_ADDRESS = "onepin-mcp-{route}:8000"
WORKFLOW = seed.WORKFLOW_COMPLETES_ID  # completes in about 16.5 s of sandbox time
STEP_S = 0.5
OTHER_CLIENTS = 9
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
REQUEST_STATE_KEY = secrets.token_hex(32)
ROUTED_ID = re.compile(r"(?P<route>[a-z0-9-]+)\.[0-9a-f]{32}")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


# --- the balancer -------------------------------------------------------------------------------


def free_loopback_port() -> int:
    """A port nothing listens on now; nginx binds it itself, so it can't be handed a socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render(shipped: str, *, replicas: dict[str, str], port: int, prefix: Path) -> str:
    """The shipped configuration with the test's addresses and paths put in; nothing else.

    Each replacement must find its text, so a change of the shipped file's shape fails here
    rather than leaving the test on rules of its own."""
    replacements = {
        SHIPPED_ADDRESS.format(route=route): address for route, address in replicas.items()
    }
    replacements["listen 8080;"] = f"listen 127.0.0.1:{port};"
    # Temporary files (request bodies, buffered answers) under the prefix, not /var/lib/nginx.
    temp_paths = "".join(
        f"\n    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements["http {"] = "http {" + temp_paths
    rendered = shipped
    for text, replacement in replacements.items():
        assert text in rendered, f"{SHIPPED.name} no longer has {text!r}"
        rendered = rendered.replace(text, replacement)
    return rendered


@dataclass
class Balancer:
    launched: Launched
    url: str
    prefix: Path

    def access_log(self) -> str:
        self.launched.stdout_file.seek(0)
        return str(self.launched.stdout_file.read())


def start_balancer(replicas: dict[str, str]) -> Balancer:
    """nginx from the shipped file, in front of `replicas` (route → host:port), on a loopback
    port, as a child process with a temporary prefix. Skips when nginx is not installed."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; see .ci/run)")
    # Started as root, nginx runs its workers as an unprivileged user, who must reach the
    # prefix (pytest's temporary directories are private to their owner).
    prefix = Path(tempfile.mkdtemp(prefix="onepin-nginx-"))
    prefix.chmod(0o755)
    port = free_loopback_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render(SHIPPED.read_text(), replicas=replicas, port=port, prefix=prefix),
        encoding="utf-8",
    )
    launched = launch(
        [
            binary,
            "-p",
            str(prefix),
            "-e",
            "stderr",
            "-c",
            str(conf),
            # Notices on stderr: the master announces its workers once it listens.
            "-g",
            f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr notice;",
        ],
        env={"PATH": os.environ.get("PATH", "")},
        ready=lambda stderr: "start worker process" in stderr,
        deadline_s=30.0,
    )
    return Balancer(launched, f"http://127.0.0.1:{port}/mcp", prefix)


def stop_balancer(balancer: Balancer) -> None:
    died_early = balancer.launched.process.poll()
    terminate(balancer.launched)
    shutil.rmtree(balancer.prefix, ignore_errors=True)
    assert died_early is None, "nginx exited on its own:\n" + "".join(
        balancer.launched.stderr_lines
    )


# --- the replicas and OnePin ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    # A manual clock: a run moves only when the test says, so it is still active when needed.
    sandbox = start_sandbox("--manual-clock")
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture(scope="module")
def replicas(
    onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Served]]:
    started: dict[str, Served] = {}
    try:
        for route in ROUTES:
            started[route] = start_server(
                "--transport",
                "streamable-http",
                "--session-route",
                route,
                home=tmp_path_factory.mktemp(f"home-{route}"),
                env={
                    "ONEPIN_BASE_URL": onepin.base_url,
                    "ONEPIN_API_KEY": onepin.key,
                    # On 2026-07-28 the answer to a question is a new request, which may reach
                    # another replica: all of them seal and open the question's state alike.
                    "ONEPIN_MCP_REQUEST_STATE_KEY": REQUEST_STATE_KEY,
                },
            )
        yield started
    finally:
        for served in started.values():
            assert stop_server(served) == 0, served.stderr_text()


@pytest.fixture(scope="module")
def balancer(replicas: dict[str, Served]) -> Iterator[Balancer]:
    addresses = {route: served.base.removeprefix("http://") for route, served in replicas.items()}
    started = start_balancer(addresses)
    yield started
    stop_balancer(started)


@pytest.fixture
async def api(onepin: ServedSandbox) -> AsyncIterator[OnePinClient]:
    settings = Settings(api_key=SecretStr(onepin.key), base_url=onepin.base_url)
    async with OnePinClient(settings) as client:
        yield client


# --- what each client sent and was answered -------------------------------------------------------


@dataclass
class Exchange:
    method: str
    sent_session: str | None
    status: int
    named_session: str | None


@dataclass
class Wire:
    """httpx2 event hooks keeping every exchange of one MCP client with the balancer."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        self.exchanges.append(
            Exchange(
                request.method,
                request.headers.get("mcp-session-id"),
                response.status_code,
                response.headers.get("mcp-session-id"),
            )
        )

    def session(self) -> str:
        """The one session this client had: named by the answer to its first request, and
        carried by every request after it, each answered as a known session's."""
        first, *rest = self.exchanges
        assert first.sent_session is None
        assert first.named_session is not None, first
        assert rest, "the client made no request in its session"
        for exchange in rest:
            assert exchange.sent_session == first.named_session, exchange
            # A replica that doesn't hold the session would answer 404 ("Session not found").
            assert exchange.status < 400, exchange
        return first.named_session


@asynccontextmanager
async def mcp_client(url: str, wire: Wire, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(event_hooks={"response": [wire.on_response]}, timeout=60) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            read_timeout_seconds=60,
            **kwargs,
        ) as client,
    ):
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


class Progress:
    """A `progress_callback`: keeps each notification, and says when the first one came."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float | None, str | None]] = []
        self.first = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))
        self.first.set()


# --- what the clients do ------------------------------------------------------------------------


async def advance_until_progress_changes(
    onepin: ServedSandbox, api: OnePinClient, run: str
) -> None:
    before = progress_key(await api.get_run(WORKFLOW, run))
    while progress_key(await api.get_run(WORKFLOW, run)) == before:
        onepin.advance(STEP_S)


async def subscribe_and_hear_of_a_change(
    client: Client, mode: str, updates: Updates, onepin: ServedSandbox, api: OnePinClient
) -> None:
    run = (await api.start_run(WORKFLOW)).id
    uri = f"onepin://workflows/{WORKFLOW}/runs/{run}"
    if mode == "legacy":
        # resources/updated arrives on the session's GET stream, routed like every request.
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(uri)  # type: ignore[deprecated]
        await advance_until_progress_changes(onepin, api, run)
        assert await updates.received.receive() == uri
    else:
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            assert subscription.honored.resource_subscriptions == [uri]
            await advance_until_progress_changes(onepin, api, run)
            update = await anext(subscription)
            assert getattr(update, "uri", None) == uri
    # The run is done with: to its end, so the workflow can be started again.
    onepin.advance(120)


async def wait_with_progress(client: Client, onepin: ServedSandbox, api: OnePinClient) -> None:
    run = (await api.start_run(WORKFLOW)).id
    progress = Progress()
    result: dict[str, Any] = {}

    async def wait() -> None:
        arguments = {"workflow_id": WORKFLOW, "run_id": run}
        result.update(
            structured(
                await client.call_tool("wait_for_run", arguments, progress_callback=progress)
            )
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait)
        # The first notification says the wait has begun; then the run is moved to its end.
        await progress.first.wait()
        onepin.advance(120)
    assert (result["done"], result["status"]) == (True, "completed")
    assert len(progress.seen) >= 2, progress.seen
    assert progress.seen[-1][2] is not None
    assert progress.seen[-1][2].startswith("completed")


async def answer_a_confirmation(client: Client, user: User, api: OnePinClient) -> None:
    run = await api.start_run(WORKFLOW)
    cancelled = structured(
        await client.call_tool("cancel_run", {"workflow_id": WORKFLOW, "run_id": run.id})
    )
    assert cancelled["status"] == "cancelled"
    assert len(user.questions) == 1, user.questions
    assert user.questions[0].startswith(f"Cancel run #{run.run_number} ")
    assert (await api.get_run_status(WORKFLOW, run.id)).status == "cancelled"


async def open_a_session_and_work_in_it(url: str, wire: Wire) -> None:
    async with mcp_client(url, wire, "legacy") as client:
        await client.list_tools()
        structured(await client.call_tool("list_workflows", {}))
        structured(await client.call_tool("get_account", {}))


# --- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_through_the_balancer_a_session_subscribes_waits_and_confirms_while_others_spread(
    balancer: Balancer, onepin: ServedSandbox, api: OnePinClient, mode: str
) -> None:
    onepin.reset()
    updates, user, main = Updates(), User(), Wire()
    others = [Wire() for _ in range(OTHER_CLIENTS)]
    with anyio.fail_after(DEADLINE_S), closing(updates):
        async with (
            mcp_client(
                balancer.url, main, mode, message_handler=updates, elicitation_callback=user
            ) as client,
            anyio.create_task_group() as tasks,
        ):
            for wire in others:
                tasks.start_soon(open_a_session_and_work_in_it, balancer.url, wire)
            await subscribe_and_hear_of_a_change(client, mode, updates, onepin, api)
            await wait_with_progress(client, onepin, api)
            await answer_a_confirmation(client, user, api)

    sessions = [wire.session() for wire in others]
    if mode == "legacy":
        sessions.append(main.session())
    else:
        # The 2026-07-28 protocol has no sessions: nothing to route, and nothing refused.
        assert all(e.sent_session is None and e.named_session is None for e in main.exchanges)
        assert all(e.status < 400 for e in main.exchanges), main.exchanges
    routes = []
    for session in sessions:
        match = ROUTED_ID.fullmatch(session)
        assert match is not None, session
        routes.append(match["route"])
    # Every replica opened some of the sessions, and (above) answered every request of each.
    assert set(routes) == set(ROUTES), routes


def answer_of(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, response.content, headers


def test_an_id_another_replica_minted_is_answered_exactly_as_an_unknown_one(
    replicas: dict[str, Served],
) -> None:
    a, b = replicas["a"].url, replicas["b"].url
    with httpx.Client(timeout=30) as http:
        opened = http.post(a, json=INITIALIZE, headers=MCP_POST_HEADERS)
        assert opened.status_code == 200
        minted = opened.headers["mcp-session-id"]
        match = ROUTED_ID.fullmatch(minted)
        assert match is not None, minted
        assert match["route"] == "a"

        def ask(url: str, session: str) -> tuple[int, bytes, list[tuple[str, str]]]:
            headers = {**MCP_POST_HEADERS, "mcp-session-id": session}
            headers["mcp-protocol-version"] = INITIALIZE["params"]["protocolVersion"]
            return answer_of(http.post(url, json=LIST_TOOLS, headers=headers))

        made_up = f"a.{uuid.uuid4().hex}"
        unknown = ask(a, made_up)
        assert unknown[0] == 404
        # The session's own replica knows it (the control for what follows).
        assert ask(a, minted)[0] == 200
        # Another replica, given the id, answers as for any id nobody minted there.
        assert ask(b, minted) == ask(b, f"b.{uuid.uuid4().hex}")
        # The random part alone is not the id, even on the replica that minted it.
        assert ask(a, minted.partition(".")[2]) == unknown
        http.delete(a, headers={**MCP_POST_HEADERS, "mcp-session-id": minted})
