"""HTTP hygiene on real server processes and raw loopback sockets.

* Requests that never finish: headers that stop half-way, a connection that sends nothing, a
  body that stops short. The server's read deadlines are set to 1 s here
  (`ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S`, `ONEPIN_MCP_HTTP_BODY_TIMEOUT_S`), and each test bounds
  its wait for the server to close the connection with `anyio.fail_after`: without deadlines
  the server waits for ever and the test fails on its own bound.
* Host and Origin matched exactly: forms that start like an accepted one and go on
  (`127.0.0.1:PORT@evil.example`, `…PORT.evil.example`, a path, a port with letters) are
  refused, and the plain forms still served.
* A message posted to an SSE session whose stream has just closed: a quiet 404, no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import anyio.abc
import httpx
import pytest

from tests.transports.served import Served, start_server, stop_server
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

pytestmark = pytest.mark.anyio

READ_DEADLINE_S = 1
# How long a test waits for the server to close a stalled connection: the deadline plus room
# for a loaded machine, far below "never".
CLOSE_BOUND_S = READ_DEADLINE_S + 9
DEADLINES = {
    "ONEPIN_MCP_HTTP_HEADER_TIMEOUT_S": str(READ_DEADLINE_S),
    "ONEPIN_MCP_HTTP_BODY_TIMEOUT_S": str(READ_DEADLINE_S),
}


def _stopped_cleanly(served: Served) -> None:
    assert stop_server(served) == 0, served.stderr_text()
    assert "Traceback" not in served.stderr_text(), served.stderr_text()


@pytest.fixture(scope="module")
def streamable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_server(
        "--sandbox",
        "--transport",
        "streamable-http",
        home=tmp_path_factory.mktemp("home"),
        env=DEADLINES,
    )
    yield served
    _stopped_cleanly(served)


@pytest.fixture(scope="module")
def sse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_server(
        "--sandbox", "--transport", "sse", home=tmp_path_factory.mktemp("home"), env=DEADLINES
    )
    yield served
    _stopped_cleanly(served)


def _port(served: Served) -> int:
    return int(served.base.rsplit(":", 1)[1])


async def _until_closed(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while True:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            return received


async def _sent_then_closed(served: Served, data: bytes) -> bytes:
    """Send `data` on a fresh connection, send nothing more, and return what came back before
    the server closed it (within CLOSE_BOUND_S, else the test fails)."""
    with anyio.fail_after(CLOSE_BOUND_S):
        async with await anyio.connect_tcp("127.0.0.1", _port(served)) as stream:
            if data:
                await stream.send(data)
            return await _until_closed(stream)


# --- requests that never finish -------------------------------------------------------------------


async def test_headers_that_stop_half_way_get_408_and_the_connection_closed(
    streamable: Served,
) -> None:
    port = _port(streamable)
    answer = await _sent_then_closed(
        streamable, f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-".encode()
    )
    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_a_connection_that_never_sends_a_byte_is_closed(streamable: Served) -> None:
    # Nothing was asked, so nothing is answered: the connection is simply closed.
    assert await _sent_then_closed(streamable, b"") == b""


async def test_a_body_that_stops_short_gets_408_and_the_connection_closed(
    streamable: Served,
) -> None:
    port = _port(streamable)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Length: 400\r\n\r\n"
    )
    answer = await _sent_then_closed(streamable, head.encode() + b'{"jsonrpc":"2.0",')
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    # Whatever the application made of the cut-off request, nothing followed the 408.
    assert answer.count(b"HTTP/1.1 ") == 1, answer


async def test_a_stalled_sse_message_body_is_cut_off_too(sse: Served) -> None:
    port = _port(sse)
    head = (
        f"POST /messages/?session_id={'0' * 32} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    )
    answer = await _sent_then_closed(sse, head.encode() + b"{")
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_request_sent_in_time_is_served_on_a_connection_kept_alive(streamable: Served) -> None:
    # The control: the deadlines do not touch a client that sends its requests whole, one
    # after another on the same connection.
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            response = http.post(streamable.url, json=INITIALIZE, headers=MCP_POST_HEADERS)
            assert response.status_code == 200
        assert http.get(f"{streamable.base}/healthz").status_code == 200


# --- Host and Origin, matched exactly -------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}@evil.example",
        "127.0.0.1:{port}.evil.example",
        "localhost:{port}.evil.example",
        "localhost:80x",
        "127.0.0.1:{port}/",
        "127.0.0.1:{port}:{port}",
        "localhost.:{port}",
        "localhost:",
        "localhost:99999",
        "user@localhost:{port}",
        "[::1]x:{port}",
    ],
)
def test_a_host_that_only_starts_like_an_accepted_one_is_refused_with_421(
    streamable: Served, host: str
) -> None:
    sent = host.format(port=_port(streamable))
    response = httpx.post(
        streamable.url, json=INITIALIZE, headers={**MCP_POST_HEADERS, "Host": sent}, timeout=30
    )
    assert response.status_code == 421, response.text


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{port}@evil.example",
        "http://localhost.evil.example",
        "http://localhost:{port}.evil.example",
        "http://localhost:{port}/",
        "http://localhost:{port}/path",
        "http://user@localhost:{port}",
        "http://localhost:80x",
        "http:/localhost:{port}",
        "ws://localhost:{port}",
    ],
)
def test_an_origin_that_only_starts_like_an_accepted_one_is_refused_with_403(
    streamable: Served, origin: str
) -> None:
    sent = origin.format(port=_port(streamable))
    response = httpx.post(
        streamable.url, json=INITIALIZE, headers={**MCP_POST_HEADERS, "Origin": sent}, timeout=30
    )
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:{port}", None),
        ("localhost:{port}", "http://localhost:{port}"),
        ("[::1]:{port}", "https://[::1]:{port}"),
        ("localhost", "http://localhost"),
        ("127.0.0.1:{port}", "http://127.0.0.1:1"),
    ],
)
def test_accepted_hosts_and_origins_are_still_served(
    streamable: Served, host: str, origin: str | None
) -> None:
    port = _port(streamable)
    headers = {**MCP_POST_HEADERS, "Host": host.format(port=port)}
    if origin is not None:
        headers["Origin"] = origin.format(port=port)
    response = httpx.post(streamable.url, json=INITIALIZE, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def test_the_health_check_answers_whatever_the_host(streamable: Served) -> None:
    # Probes reach a container by its address, which no allow-list names.
    response = httpx.get(
        f"{streamable.base}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=30
    )
    assert response.status_code == 200


# --- SSE: a message after the stream closed -------------------------------------------------------


def _open_session(http: httpx.Client, served: Served) -> str:
    """Open an SSE stream, initialize over it, close it; return the session's message URL."""
    with http.stream("GET", served.url) as stream:
        lines = stream.iter_lines()
        endpoint = next(line for line in lines if line.startswith("data:"))[5:].strip()
        url = f"{served.base}{endpoint}"
        assert http.post(url, json=INITIALIZE).status_code == 202
        next(line for line in lines if line.startswith("data:"))  # the initialize result
    return url


def test_messages_posted_after_the_stream_closed_get_a_quiet_404(sse: Served) -> None:
    # Right after a stream closes, the SDK still lists the session while its stream is shut:
    # a message posted then was answered 202, then failed with a traceback in the log and a
    # reset connection. Each post now gets 202 (still delivered) or 404, and then only 404.
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            url = _open_session(http, sse)
            statuses = []
            while not statuses or statuses[-1] != 404:
                assert len(statuses) < 20, statuses
                statuses.append(http.post(url, json=ping).status_code)
            assert set(statuses) <= {202, 404}, statuses
    assert "Traceback" not in sse.stderr_text(), sse.stderr_text()
    assert "Exception in ASGI application" not in sse.stderr_text()
