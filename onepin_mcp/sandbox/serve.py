"""Serve the sandbox over a real socket with uvicorn: the whole API (`onepin-mcp sandbox`), or
only its presigned files, beside an in-process sandbox (`onepin-mcp --sandbox`).

The socket is bound before uvicorn starts so that port 0 works and the announced URL is the
real one. Everything goes to stderr: in stdio mode stdout belongs to the MCP wire, and a user
who pipes the command's output must not get log lines mixed into it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn

from onepin_mcp.serving import bind, exit_quietly_on_signals, url_of

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
    sock = bind(host, port)
    url = url_of(sock)
    clock = "manual clock (POST /_sandbox/clock to advance)" if app.manual else f"speed {speed:g}x"
    # Written straight to stderr rather than logged: this is the command's user interface and
    # must show whatever the logging configuration is. The key is a sandbox key, meant to be seen.
    sys.stderr.write(
        f"OnePin sandbox at {url} ({clock})\n"
        f"  export ONEPIN_BASE_URL={url}\n"
        f"  export ONEPIN_API_KEY={app.example_key}\n"
        f"  sandbox voices: {app.voice_description}\n"
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
        with exit_quietly_on_signals():
            server.run(sockets=[sock])
    finally:
        sock.close()
    logger.info("OnePin sandbox at %s stopped", url)


FILES_STOP_DEADLINE_S = 5.0
FILES_THREAD = "sandbox-files"


def _quiet_files_thread(record: logging.LogRecord) -> bool:
    # uvicorn's start and stop lines, from the files server's thread: the sandbox's own start
    # line already names the address, and in HTTP mode the MCP server's uvicorn logs the same
    # words. Warnings and errors still show.
    return record.threadName != FILES_THREAD or record.levelno >= logging.WARNING


@contextlib.contextmanager
def serving_files(sandbox: Sandbox, sock: socket.socket) -> Iterator[None]:
    """Serve `sandbox.files_app` on `sock` from a daemon thread while the block runs.

    For `onepin-mcp --sandbox`: the API stays in-process (the MCP server's client reaches it
    through `Sandbox.transport()`, no socket), but a download link must answer a browser or a
    plain HTTP client, so the presigned files alone are served on a loopback port, the one
    `sandbox.files_url` names. Its own event loop on its own thread serves them whatever the MCP
    transport (stdio, SSE, Streamable HTTP); the store is read under `sandbox.lock`, as the API
    reads it. The thread is a daemon and is told to stop when the block ends, so it never
    outlives the server. uvicorn's lines go through the process's logging (stderr, masked);
    access lines are off, since a file URL's token is its only credential.
    """
    config = uvicorn.Config(
        sandbox.files_app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=FILES_THREAD, daemon=True
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(_quiet_files_thread)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=FILES_STOP_DEADLINE_S)
        sock.close()
        uvicorn_log.removeFilter(_quiet_files_thread)
