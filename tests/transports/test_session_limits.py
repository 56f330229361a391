"""Who may open HTTP sessions, and how many, on real sockets.

Passthrough keys are checked with OnePin (`GET /auth/whoami`, the sandbox as OnePin in its own
process) before a session exists: a refused key gets 401 and no session, and the verdict is
remembered; when OnePin can't be asked, 503. Open sessions are capped per key (429) and in
total (503), and an idle Streamable HTTP session is closed, freeing its place.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from onepin_mcp.sandbox.requestlog import key_id_of
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import start_passthrough, start_server, stopping
from tests.transports.test_http import INITIALIZE
from tests.transports.test_session_ownership import headers_for, open_session, ping

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
FIRST_KEY = "op_live_" + "1" * 32
SECOND_KEY = "op_live_" + "2" * 32
REFUSED_KEY = "op_live_" + "9" * 32
TOKEN = "limits-token-" + "q" * 27
CREATED = "Created new transport with session ID"
# Logged once a stream's session is forgotten; "0 open": the last of the test's streams.
SSE_ALL_CLOSED = re.compile("An SSE session closed; 0 open")


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    sandbox = start_sandbox("--manual-clock", "--api-key", FIRST_KEY, "--api-key", SECOND_KEY)
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def _whoamis(onepin: ServedSandbox, key: str) -> int:
    records = onepin.control("GET", "/_sandbox/requests").json()["data"]
    return sum(
        1 for r in records if r["path"].endswith("/auth/whoami") and r["key_id"] == key_id_of(key)
    )


# --- passthrough keys are checked before a session exists ----------------------------------------


async def test_a_key_onepin_refuses_gets_401_and_no_session_and_is_asked_about_once(
    onepin: ServedSandbox, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with stopping(start_passthrough(onepin.base_url, tmp_path, "--log-level", "debug")) as served:
        asked_before = _whoamis(onepin, REFUSED_KEY)
        with anyio.fail_after(DEADLINE_S):
            answers = [
                await http.post(served.url, json=INITIALIZE, headers=headers_for(REFUSED_KEY))
                for _ in range(3)
            ]
            accepted = await open_session(http, served.url, FIRST_KEY)
        for refused in answers:
            assert refused.status_code == 401
            assert refused.json()["error"] == "invalid_token"
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            assert "OnePin refused this API key" in refused.json()["error_description"]
            assert REFUSED_KEY not in refused.text
        # The verdict is remembered: three requests, one question to OnePin.
        assert _whoamis(onepin, REFUSED_KEY) - asked_before == 1
        # One session was created, the accepted key's; the refused key's requests made none.
        log = served.stderr_text()
        assert log.count(CREATED) == 1
        assert f"{CREATED}: {accepted}" in log
        # At debug, the session id is still logged (as a DEBUG line).
        assert re.search(rf"DEBUG mcp\.server\.streamable_http_manager: {CREATED}: {accepted}", log)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_when_onepin_cannot_be_asked_a_new_key_gets_503_not_401(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with stopping(start_passthrough(f"http://127.0.0.1:{_closed_port()}", tmp_path)) as served:
        with anyio.fail_after(DEADLINE_S):
            response = await http.post(served.url, json=INITIALIZE, headers=headers_for(FIRST_KEY))
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert int(response.headers["retry-after"]) > 0
        assert "Created new transport" not in served.stderr_text()


# --- caps: per key (429) and in total (503) ------------------------------------------------------


async def test_streamable_sessions_are_capped_per_key_with_429_and_in_total_with_503(
    onepin: ServedSandbox, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with stopping(
        start_passthrough(
            onepin.base_url, tmp_path, "--max-sessions-per-key", "2", "--max-sessions", "3"
        )
    ) as served:
        with anyio.fail_after(DEADLINE_S):
            first = [await open_session(http, served.url, FIRST_KEY) for _ in range(2)]
            over_key = await http.post(served.url, json=INITIALIZE, headers=headers_for(FIRST_KEY))
            await open_session(http, served.url, SECOND_KEY)
            over_total = await http.post(
                served.url, json=INITIALIZE, headers=headers_for(SECOND_KEY)
            )

            assert over_key.status_code == 429
            assert over_key.json()["error"] == "too_many_sessions"
            assert "2 open MCP sessions" in over_key.json()["error_description"]
            assert int(over_key.headers["retry-after"]) > 0
            assert over_total.status_code == 503
            assert over_total.json()["error"] == "server_busy"
            assert int(over_total.headers["retry-after"]) > 0
            # Refusals changed nothing: the open sessions still answer.
            assert (await ping(http, served.url, FIRST_KEY, first[0])).status_code == 200

            # Closing one frees its place, for its key.
            closed = await http.delete(served.url, headers=headers_for(FIRST_KEY, first[0]))
            assert closed.status_code == 200
            await open_session(http, served.url, FIRST_KEY)


async def test_sse_sessions_are_capped_per_key_while_their_streams_are_open(
    onepin: ServedSandbox, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with stopping(
        start_passthrough(
            onepin.base_url,
            tmp_path,
            "--max-sessions-per-key",
            "1",
            "--log-level",
            "debug",
            transport="sse",
        )
    ) as served:
        auth = {"Authorization": f"Bearer {FIRST_KEY}"}
        with anyio.fail_after(DEADLINE_S):
            async with http.stream("GET", served.url, headers=auth) as first:
                assert first.status_code == 200
                second = await http.get(served.url, headers=auth)
                assert second.status_code == 429
                assert second.json()["error"] == "too_many_sessions"
                # Another key is not held back by the first one's sessions.
                other = {"Authorization": f"Bearer {SECOND_KEY}"}
                async with http.stream("GET", served.url, headers=other) as another:
                    assert another.status_code == 200
            # The first stream closed, so its session ended: the key may open one again.
            await served.stderr_shows(SSE_ALL_CLOSED)
            async with http.stream("GET", served.url, headers=auth) as again:
                assert again.status_code == 200


async def test_token_mode_caps_sessions_in_total_only(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    # Every client of a token server holds the same token: a cap per credential would be the
    # total cap again, so only the total applies (and ownership can't tell its clients apart).
    with stopping(
        start_server(
            "--sandbox",
            "--transport",
            "streamable-http",
            "--max-sessions",
            "2",
            "--max-sessions-per-key",
            "1",
            home=tmp_path,
            env={"ONEPIN_MCP_HTTP_TOKEN": TOKEN},
        )
    ) as served:
        with anyio.fail_after(DEADLINE_S):
            opened = [await open_session(http, served.url, TOKEN) for _ in range(2)]
            third = await http.post(served.url, json=INITIALIZE, headers=headers_for(TOKEN))
        assert len(set(opened)) == 2
        assert third.status_code == 503
        assert third.json()["error"] == "server_busy"


# --- idle expiry ---------------------------------------------------------------------------------


async def test_an_idle_session_is_closed_and_frees_its_place(
    onepin: ServedSandbox, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with stopping(
        start_passthrough(
            onepin.base_url,
            tmp_path,
            "--max-sessions-per-key",
            "1",
            "--session-idle-timeout",
            # Long enough for the refused attempt below to come first on a busy machine.
            "2",
            "--log-level",
            "debug",
        )
    ) as served:
        with anyio.fail_after(DEADLINE_S):
            idle = await open_session(http, served.url, FIRST_KEY)
            # An opening attempt doesn't touch the idle session, and is refused while it lives.
            refused = await http.post(served.url, json=INITIALIZE, headers=headers_for(FIRST_KEY))
            assert refused.status_code == 429
            # The SDK logs the expiry (at debug: the line names the session) just before it
            # forgets the session, with no await in between.
            await served.stderr_shows(re.compile(f"Session {idle} idle timeout"))
            attempt = await http.post(served.url, json=INITIALIZE, headers=headers_for(FIRST_KEY))
            assert attempt.status_code == 200
            gone = await ping(http, served.url, FIRST_KEY, idle)
        assert gone.status_code == 404
