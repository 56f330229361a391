"""Serve the sandbox over a real socket with uvicorn (`onepin-mcp sandbox`).

The socket is bound before uvicorn starts so that port 0 works and the announced URL is the
real one. Everything goes to stderr: in stdio mode stdout belongs to the MCP wire, and a user
who pipes the command's output must not get log lines mixed into it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn

from .app import Sandbox

logger = logging.getLogger(__name__)


def _log_config() -> dict[str, Any]:
    # uvicorn's default sends access logs to stdout; both streams go to stderr here.
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {"stderr": {**handler, "formatter": "plain"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def _exit_quietly_on_signals() -> Iterator[None]:
    """Make SIGINT/SIGTERM end the server with exit status 0.

    uvicorn handles both signals while it runs, then restores the previous handlers and raises
    the signal again so that the default action (death by signal, or KeyboardInterrupt) happens.
    With a no-op as the "previous" handler, the re-raised signal is absorbed: a stop requested
    by signal is the normal way for this command to end, not a failure.
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


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_keys: Sequence[str] = (),
    speed: float = 1.0,
    manual_clock: bool = False,
    ready: Callable[[str], None] | None = None,
    sandbox: Sandbox | None = None,
) -> None:
    """Run the sandbox until SIGINT or SIGTERM (or, off the main thread, until the process ends).

    `api_keys` empty accepts any well-formed key. `ready` is called with the base URL once the
    socket listens. A prepared `sandbox` may be passed instead of the key, speed and clock options.
    """
    app = sandbox or Sandbox(
        api_keys=list(api_keys) or None, manual_clock=manual_clock, speed=speed
    )
    sock = _bind(host, port)
    url = base_url_of(sock)
    clock = "manual clock (POST /_sandbox/clock to advance)" if app.manual else f"speed {speed:g}x"
    # Written straight to stderr rather than logged: this is the command's user interface and
    # must show whatever the logging configuration is. The key is a sandbox key, meant to be seen.
    sys.stderr.write(
        f"OnePin sandbox at {url} ({clock})\n"
        f"  export ONEPIN_BASE_URL={url}\n"
        f"  export ONEPIN_API_KEY={app.example_key}\n"
    )
    sys.stderr.flush()
    if ready is not None:
        ready(url)
    config = uvicorn.Config(
        app.app,
        log_config=_log_config(),
        access_log=True,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        with _exit_quietly_on_signals():
            server.run(sockets=[sock])
    finally:
        sock.close()
    logger.info("OnePin sandbox at %s stopped", url)
