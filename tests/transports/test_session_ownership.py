"""HTTP sessions belong to the caller that opened them.

Real processes on loopback sockets: the sandbox as OnePin, accepting OWNER_KEY and OTHER_KEY
only, and `onepin-mcp` in passthrough mode over Streamable HTTP and over SSE. An owner opens a
session; another caller who knows its id (the server used to log it at INFO) tries every way in
that the issue reproduced: the GET stream, DELETE, a POSTed request, a POSTed *response* to the
owner's pending confirmation question, and on SSE a request reusing the id of the owner's
pending call. Each attempt is made once with another valid key and once with a well-formed key
OnePin refuses, and must be answered exactly as the same request for a made-up session id
(status, body, headers); the owner's session must go on as if nothing happened.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData
from pydantic import SecretStr

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import seed
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import Served, start_passthrough, stop_server
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
OWNER_KEY = "op_live_" + "O" * 32
OTHER_KEY = "op_live_" + "T" * 32
REFUSED_KEY = "op_live_" + "R" * 32  # well-formed; OnePin doesn't know it
ATTACKERS = [OTHER_KEY, REFUSED_KEY]
ATTACKER_IDS = ["another-valid-key", "a-refused-key"]
PROTOCOL = "2025-11-25"
WORKFLOW = seed.WORKFLOW_COMPLETES_ID
# What a caller that wants the owner's cancel_run to go through would answer for the owner.
ACCEPT_FOR_THE_OWNER = {"action": "accept", "content": {"confirm": True}}
# The ids a guessing attacker tries for the server's pending question or the owner's call.
GUESSED_IDS = range(4)
SESSION_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    # A manual clock: a started run stays pending for as long as the test needs it to.
    sandbox = start_sandbox("--manual-clock", "--api-key", OWNER_KEY, "--api-key", OTHER_KEY)
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture(scope="module")
def streamable(onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_passthrough(onepin.base_url, tmp_path_factory.mktemp("home"))
    yield served
    assert stop_server(served) == 0, served.stderr_text()


@pytest.fixture(scope="module")
def sse(onepin: ServedSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_passthrough(onepin.base_url, tmp_path_factory.mktemp("home"), transport="sse")
    yield served
    assert stop_server(served) == 0, served.stderr_text()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def made_up_session() -> str:
    return uuid.uuid4().hex


Answer = tuple[int, bytes, list[tuple[str, str]]]


async def answer_to(http: httpx.AsyncClient, request: httpx.Request) -> Answer:
    """What the server answered, for comparison: status, body, and headers but the date.

    A stream that opened (the session was reached) is not read to its end, which never comes:
    its status and headers already differ from an unknown session's 404."""
    response = await http.send(request, stream=True)
    try:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            body = b"<an open event stream>"
        else:
            body = await response.aread()
    finally:
        await response.aclose()
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, body, headers


def headers_for(key: str, session: str | None = None) -> dict[str, str]:
    headers = {
        **MCP_POST_HEADERS,
        "Authorization": f"Bearer {key}",
        "mcp-protocol-version": PROTOCOL,
    }
    if session is not None:
        headers["mcp-session-id"] = session
    return headers


async def open_session(http: httpx.AsyncClient, url: str, key: str) -> str:
    """A Streamable HTTP session opened by hand, as any client opens one: its id."""
    opened = await http.post(url, json=INITIALIZE, headers=headers_for(key))
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    done = await http.post(url, json=initialized, headers=headers_for(key, session))
    assert done.status_code == 202, done.text
    return session


async def ping(http: httpx.AsyncClient, url: str, key: str, session: str) -> httpx.Response:
    return await http.post(
        url, json={"jsonrpc": "2.0", "id": 77, "method": "ping"}, headers=headers_for(key, session)
    )


def streamable_attack(kind: str, url: str, key: str, session: str) -> httpx.Request:
    headers = headers_for(key, session)
    if kind == "get-stream":
        return httpx.Request("GET", url, headers={**headers, "Accept": "text/event-stream"})
    if kind == "delete":
        return httpx.Request("DELETE", url, headers=headers)
    if kind == "post-request":
        return httpx.Request(
            "POST", url, headers=headers, json={"jsonrpc": "2.0", "id": 0, "method": "ping"}
        )
    assert kind == "post-response"
    return httpx.Request(
        "POST",
        url,
        headers=headers,
        json={"jsonrpc": "2.0", "id": 0, "result": ACCEPT_FOR_THE_OWNER},
    )


# --- Streamable HTTP: the stream, DELETE and posts with another caller's credential --------------


@pytest.mark.parametrize("kind", ["get-stream", "delete", "post-request", "post-response"])
@pytest.mark.parametrize("attacker", ATTACKERS, ids=ATTACKER_IDS)
async def test_another_caller_is_answered_as_for_an_unknown_session_and_the_owner_goes_on(
    streamable: Served, http: httpx.AsyncClient, attacker: str, kind: str
) -> None:
    with anyio.fail_after(DEADLINE_S):
        session = await open_session(http, streamable.url, OWNER_KEY)

        attempt = await answer_to(http, streamable_attack(kind, streamable.url, attacker, session))
        unknown = await answer_to(
            http, streamable_attack(kind, streamable.url, attacker, made_up_session())
        )

        assert attempt == unknown
        assert attempt[0] in (401, 404)
        # Nothing changed for the owner: the session is still there and still answers.
        still = await ping(http, streamable.url, OWNER_KEY, session)
        assert still.status_code == 200
        assert '"id":77' in still.text


# --- a pending confirmation question, answered by someone else -----------------------------------


class HesitantUser:
    """The owner's user: asked to confirm, takes their time, then says no."""

    def __init__(self) -> None:
        self.asked = anyio.Event()
        self.may_answer = anyio.Event()
        self.questions: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        self.questions.append(params.message)
        self.asked.set()
        await self.may_answer.wait()
        return ElicitResult(action="decline")


async def _start_a_run(onepin: ServedSandbox) -> str:
    onepin.reset()  # one active run per workflow: start from the seed each time
    settings = Settings(api_key=SecretStr(OWNER_KEY), base_url=onepin.base_url)
    async with OnePinClient(settings) as api:
        return (await api.start_run(WORKFLOW)).id


async def _status(onepin: ServedSandbox, run_id: str) -> str:
    settings = Settings(api_key=SecretStr(OWNER_KEY), base_url=onepin.base_url)
    async with OnePinClient(settings) as api:
        return str((await api.get_run_status(WORKFLOW, run_id)).status)


def _cancels(onepin: ServedSandbox, run_id: str) -> list[dict[str, Any]]:
    records = onepin.control("GET", "/_sandbox/requests").json()["data"]
    return [r for r in records if r["method"] == "POST" and r["path"].endswith(f"{run_id}/cancel")]


def _text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def _cancel_while(
    client: Client, run_id: str, user: HesitantUser, attack: Any
) -> tuple[Any, list[tuple[Answer, Answer]]]:
    """The owner's cancel_run, with `attack` run while the question is pending."""
    outcome: dict[str, Any] = {}

    async def cancel() -> None:
        outcome["result"] = await client.call_tool(
            "cancel_run", {"workflow_id": WORKFLOW, "run_id": run_id}
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(cancel)
        await user.asked.wait()
        pairs = await attack()
        user.may_answer.set()
    return outcome["result"], pairs


@pytest.mark.parametrize("attacker", ATTACKERS, ids=ATTACKER_IDS)
async def test_another_caller_cannot_answer_the_owners_confirmation_over_streamable_http(
    onepin: ServedSandbox, streamable: Served, http: httpx.AsyncClient, attacker: str
) -> None:
    sessions: set[str] = set()

    async def remember_session(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            sessions.add(response.headers["mcp-session-id"])

    user = HesitantUser()
    with anyio.fail_after(DEADLINE_S):
        run_id = await _start_a_run(onepin)

        async def attack() -> list[tuple[Answer, Answer]]:
            (session,) = sessions
            pairs = []
            for guessed in GUESSED_IDS:
                answer = {"jsonrpc": "2.0", "id": guessed, "result": ACCEPT_FOR_THE_OWNER}
                pairs.append(
                    (
                        await answer_to(
                            http,
                            httpx.Request(
                                "POST",
                                streamable.url,
                                headers=headers_for(attacker, session),
                                json=answer,
                            ),
                        ),
                        await answer_to(
                            http,
                            httpx.Request(
                                "POST",
                                streamable.url,
                                headers=headers_for(attacker, made_up_session()),
                                json=answer,
                            ),
                        ),
                    )
                )
            return pairs

        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {OWNER_KEY}"},
                event_hooks={"response": [remember_session]},
            ) as owner_http,
            Client(
                streamable_http_client(streamable.url, http_client=owner_http),
                mode="legacy",
                elicitation_callback=user,  # type: ignore[arg-type]
            ) as owner,
        ):
            result, pairs = await _cancel_while(owner, run_id, user, attack)

        assert all(attempt == unknown for attempt, unknown in pairs), pairs
        assert result.is_error
        assert "the user declined" in _text(result)
        assert len(user.questions) == 1
        assert _cancels(onepin, run_id) == []
        assert await _status(onepin, run_id) == "pending"


# --- SSE: posts into another caller's session ----------------------------------------------------


def _sse_post(base: str, key: str, session: str, message: dict[str, Any]) -> httpx.Request:
    return httpx.Request(
        "POST",
        f"{base}/messages/?session_id={session}",
        headers={"Authorization": f"Bearer {key}"},
        json=message,
    )


@pytest.mark.parametrize("attacker", ATTACKERS, ids=ATTACKER_IDS)
async def test_another_caller_can_neither_answer_nor_preempt_the_owner_over_sse(
    onepin: ServedSandbox, sse: Served, http: httpx.AsyncClient, attacker: str
) -> None:
    sessions: list[str] = []
    user = HesitantUser()
    with anyio.fail_after(DEADLINE_S):
        run_id = await _start_a_run(onepin)

        async def attack() -> list[tuple[Answer, Answer]]:
            (session,) = sessions
            pairs = []
            for guessed in GUESSED_IDS:
                for message in (
                    # An answer to the server's pending question, for the owner.
                    {"jsonrpc": "2.0", "id": guessed, "result": ACCEPT_FOR_THE_OWNER},
                    # A request with the id of the owner's pending call: its answer would
                    # reach the owner's stream first and be taken for the owner's.
                    {"jsonrpc": "2.0", "id": guessed, "method": "ping"},
                ):
                    attempt = await answer_to(http, _sse_post(sse.base, attacker, session, message))
                    unknown = await answer_to(
                        http, _sse_post(sse.base, attacker, made_up_session(), message)
                    )
                    pairs.append((attempt, unknown))
            return pairs

        async with Client(
            sse_client(
                sse.url,
                headers={"Authorization": f"Bearer {OWNER_KEY}"},
                on_session_created=sessions.append,
            ),
            mode="legacy",
            elicitation_callback=user,  # type: ignore[arg-type]
        ) as owner:
            result, pairs = await _cancel_while(owner, run_id, user, attack)
            # The owner's session still serves the owner afterwards.
            account = await owner.call_tool("get_account", {})

        assert all(attempt == unknown for attempt, unknown in pairs), pairs
        assert {attempt[0] for attempt, _ in pairs} <= {401, 404}
        # The owner got its own answer to its own call, not a pong.
        assert result.is_error
        assert "the user declined" in _text(result)
        assert not account.is_error, _text(account)
        assert _cancels(onepin, run_id) == []
        assert await _status(onepin, run_id) == "pending"


# --- session ids in the log ----------------------------------------------------------------------


async def test_session_ids_and_query_strings_stay_out_of_the_info_log(
    streamable: Served, sse: Served, http: httpx.AsyncClient
) -> None:
    with anyio.fail_after(DEADLINE_S):
        session = await open_session(http, streamable.url, OWNER_KEY)
        foreign = await ping(http, streamable.url, OTHER_KEY, session)
        unknown = await ping(http, streamable.url, OWNER_KEY, made_up_session())
        closed = await http.delete(streamable.url, headers=headers_for(OWNER_KEY, session))
        sse_unknown = await http.post(
            f"{sse.base}/messages/?session_id={made_up_session()}",
            headers={"Authorization": f"Bearer {OWNER_KEY}"},
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        )
    assert (foreign.status_code, unknown.status_code, closed.status_code) == (404, 404, 200)
    assert sse_unknown.status_code == 404
    for served in (streamable, sse):
        log = served.stderr_text()
        assert session not in log
        assert not SESSION_ID.search(log), log
        assert "session_id=" not in log
    # The access log is still there, with paths only.
    assert '"POST /messages/ HTTP/1.1" 404' in sse.stderr_text()
    assert '"DELETE /mcp HTTP/1.1" 200' in streamable.stderr_text()
