"""Running an ASGI app on a real socket with uvicorn, shared by the MCP server's HTTP transports
and the sandbox command: bind first (so port 0 resolves to a real port before anything is
announced), name the socket's URL, and treat SIGINT/SIGTERM as the normal way to stop.

`serve_in_workers` runs one socket in several forked processes (one per core), for servers
whose every request may be answered by any process: the parent only supervises, replacing a
worker that dies and stopping them all on SIGINT/SIGTERM.

`freeze_startup_heap` takes what a server built at start out of the garbage collector's scans,
once, just before it serves.

Plain socket and signal handling only, so that both sides may import it without the sandbox
depending on the client or the server depending on the sandbox.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

WILDCARD_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - names of the wildcard, not a bind

logger = logging.getLogger(__name__)

# After SIGINT/SIGTERM, how long workers get to finish (uvicorn's own graceful wait included)
# before they are killed.
WORKER_STOP_DEADLINE_S = 15.0
# A worker that dies is replaced, but one that dies again and again (a crash at start, a broken
# deploy) must not be replaced for ever: more replacements than this within the window end the
# whole server with status 1, for its own supervisor (systemd, Docker, Kubernetes) to act on.
MAX_REPLACEMENTS = 5
REPLACEMENT_WINDOW_S = 60.0
_PR_SET_PDEATHSIG = 1


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


def freeze_startup_heap() -> int:
    """Collect once, then leave every object alive now out of all later collections; returns
    how many objects that is.

    What a server builds before its first request (imported modules, registered tools and their
    schemas, the app) lives as long as the process, yet every full collection walks all of it
    again: a MCP server over HTTP holds about 110,000 tracked objects at start, and walking them
    cost about 50 ms of CPU every few hundred calls (some 5 % of the CPU per call, and a pause
    each time that every request in flight waits out). Frozen, they are only freed by reference
    counting, as before, and collections look at what requests create. Called before workers
    are forked, it also keeps them from writing to the pages they share with the parent (the
    collector would otherwise update every object's header in each worker).
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("%d objects built at start left out of garbage collection", frozen)
    return frozen


# --- several worker processes on one socket ----------------------------------------------------


def serve_in_workers(count: int, run_worker: Callable[[int], None]) -> int:
    """Run `run_worker(index)` in `count` forked processes and supervise them; the exit status.

    Each worker inherits the listening socket bound by the parent (the kernel hands each new
    connection to one of the processes accepting on it), so the port is bound once and `--port
    0` still names one port. The parent runs no event loop and serves nothing: it forks from a
    state no request has touched, which makes a replacement as fresh as the first worker.

    A worker that exits while the server is not stopping (crashed, killed, out of memory) is
    replaced under the same index; more than `MAX_REPLACEMENTS` within `REPLACEMENT_WINDOW_S`
    stop the server with status 1. SIGINT or SIGTERM to the parent is passed on to every worker
    as SIGTERM; workers still running after `WORKER_STOP_DEADLINE_S` are killed. Returns 0 after
    a stop by signal.
    """
    workers: dict[int, int] = {}  # pid -> index
    replaced: deque[float] = deque()
    parent = os.getpid()
    stopping = False
    failed = False

    def stop_all(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # Bounds the wait below even if a worker ignores SIGTERM or hangs.
        signal.alarm(math.ceil(WORKER_STOP_DEADLINE_S))

    def kill_all(signum: int, frame: object) -> None:
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def start(index: int) -> None:
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            _run_forked_worker(index, parent, run_worker)
        workers[pid] = index
        logger.info("worker %d of %d started (pid %d)", index + 1, count, pid)

    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGINT, stop_all),
            (signal.SIGTERM, stop_all),
            (signal.SIGALRM, kill_all),
        )
    }
    try:
        for index in range(count):
            start(index)
        while workers:
            try:
                pid, status = os.wait()  # resumed after a signal handler runs (PEP 475)
            except ChildProcessError:
                break
            index_of = workers.pop(pid, None)
            if index_of is None or stopping:
                continue
            logger.warning(
                "worker %d (pid %d) ended on its own (%s); starting another",
                index_of + 1,
                pid,
                _describe_status(status),
            )
            now = time.monotonic()
            replaced.append(now)
            while replaced and replaced[0] < now - REPLACEMENT_WINDOW_S:
                replaced.popleft()
            if len(replaced) > MAX_REPLACEMENTS:
                logger.error(
                    "workers ended %d times within %g s; stopping the server",
                    len(replaced),
                    REPLACEMENT_WINDOW_S,
                )
                failed = True
                stop_all(signal.SIGTERM, None)
                continue
            start(index_of)
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _run_forked_worker(index: int, parent: int, run_worker: Callable[[int], None]) -> None:
    """The body of a forked worker; never returns (the process ends here)."""
    code = 0
    try:
        # The parent's handlers forward signals to workers; a worker stops on them instead
        # (uvicorn installs its own handlers while it serves).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        _end_with_parent(parent)
        tag_log_lines(f"[worker {index + 1} pid {os.getpid()}]")
        run_worker(index)
    except BaseException:
        logger.exception("worker %d failed", index + 1)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Not sys.exit: the parent's cleanups (atexit, open files, the socket) are the parent's.
        os._exit(code)


def _end_with_parent(parent: int) -> None:
    """Ask Linux to send this worker SIGTERM if the supervisor dies (killed with -9, say), so
    that no orphan keeps serving the port unsupervised. Elsewhere, a no-op."""
    if sys.platform != "linux":
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(0)


def tag_log_lines(tag: str) -> None:
    """Start every log line of this process with `tag`: with several workers writing to one
    stderr, an operator can tell whose line is whose."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Tagged(tag, handler.formatter or logging.Formatter()))


class _Tagged(logging.Formatter):
    def __init__(self, tag: str, inner: logging.Formatter) -> None:
        super().__init__()
        self._tag = tag
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"{self._tag} {self._inner.format(record)}"


def _describe_status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"
