"""Running an ASGI app on a real socket with uvicorn, shared by the MCP server's HTTP transports
and the sandbox command: bind first (so port 0 resolves to a real port before anything is
announced), name the socket's URL, and treat SIGINT/SIGTERM as the normal way to stop.

Plain socket and signal handling only, so that both sides may import it without the sandbox
depending on the client or the server depending on the sandbox.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator

WILDCARD_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - names of the wildcard, not a bind


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, bound now so that port 0 resolves to a real port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def host_literal(host: str) -> str:
    """A host as it appears in a URL or a Host header: IPv6 addresses in brackets."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def url_of(sock: socket.socket, path: str = "") -> str:
    """The http URL a local client uses to reach `sock` (a wildcard bind is reached on loopback)."""
    host, port = sock.getsockname()[:2]
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    return f"http://{host_literal(host)}:{port}{path}"


@contextlib.contextmanager
def exit_quietly_on_signals() -> Iterator[None]:
    """Make SIGINT/SIGTERM end the server with exit status 0.

    uvicorn handles both signals while it runs, then restores the handlers it found and raises
    the signal again. With a no-op installed as the handler it finds, the re-raised signal is
    absorbed: a stop by signal is how a server normally ends, not a failure.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
