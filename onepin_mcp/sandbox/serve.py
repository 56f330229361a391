"""Serve the sandbox over a real socket with uvicorn (`onepin-mcp sandbox`).

The socket is bound before uvicorn starts so that port 0 works and the announced URL is the
real one. Everything goes to stderr: in stdio mode stdout belongs to the MCP wire, and a user
who pipes the command's output must not get log lines mixed into it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
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
