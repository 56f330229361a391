"""`--workers N`: stateless Streamable HTTP served by N processes on one port.

Real processes on loopback: the sandbox as OnePin (`onepin-mcp sandbox`, its own process, so
that every worker sees the same OnePin), and `onepin-mcp --stateless --workers 2` in front of
it. Which worker answered a request is read from the server's own log: with workers, each line
starts with `[worker I pid P]`, and uvicorn's access log has a line per request. That is the
operator's stderr, not anything a client can see.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from onepin_mcp.options import ENV_WORKERS, OptionsError, ServeOptions, parse_command
from onepin_mcp.sandbox import seed
from tests.support.processes import Launched, terminate
from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox
from tests.transports.served import Served, start_server, stop_server, stopping

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
CLIENTS = 6
# Rounds of CLIENTS concurrent calls before giving up on seeing both workers answer: the kernel
# hands each connection to whichever worker accepts first, so one round may go to one worker,
# but ten rounds in a row (60 connections) all going to the same one would be a broken setup.
MAX_ROUNDS = 10
ARGS = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
STARTED = re.compile(r"worker (\d+) of 2 started \(pid (\d+)\)")
ANSWERED = re.compile(r"\[worker (\d+) pid (\d+)\] .*\"POST /mcp HTTP/1\.1\" 200")


@pytest.fixture(scope="module")
def onepin() -> Iterator[ServedSandbox]:
    sandbox = start_sandbox("--manual-clock")
    yield sandbox
    stop_sandbox(sandbox)


def _start_workers(onepin: ServedSandbox, home: Path) -> Served:
    return start_server(
        "--transport",
        "streamable-http",
        "--stateless",
        "--workers",
        "2",
        home=home,
        env={"ONEPIN_BASE_URL": onepin.base_url, "ONEPIN_API_KEY": onepin.key},
    )


def _worker_pids(served: Served) -> dict[int, int]:
    """The pid of each worker index as last started, from the supervisor's log lines."""
    return {int(m.group(1)): int(m.group(2)) for m in STARTED.finditer(served.stderr_text())}


def _answering_pids(served: Served) -> set[int]:
    return {int(m.group(2)) for m in ANSWERED.finditer(served.stderr_text())}


async def _call(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_run_status", ARGS)
    assert not result.is_error, result.content


async def _calls_until_answered_by(served: Served, pids: set[int], mode: str) -> int:
    """Rounds of concurrent calls until every pid in `pids` has answered one; the calls made."""
    made = 0
    for _ in range(MAX_ROUNDS):
        async with anyio.create_task_group() as clients:
            for _ in range(CLIENTS):
                clients.start_soon(_call, served.url, mode)
        made += CLIENTS
        if pids <= _answering_pids(served):
            return made
    raise AssertionError(
        f"after {made} calls, workers {sorted(pids - _answering_pids(served))} never answered; "
        f"stderr:\n{served.stderr_text()}"
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_two_workers_share_the_port_both_answer_and_stop_with_the_server(
    onepin: ServedSandbox, tmp_path: Path, mode: str
) -> None:
    served = _start_workers(onepin, tmp_path)
    with stopping(served):  # SIGTERM to the supervisor: exit 0
        assert "2 worker processes" in served.stderr_text()
        with anyio.fail_after(DEADLINE_S):
            await served.stderr_shows(re.compile(r"worker 2 of 2 started"))
        pids = _worker_pids(served)
        assert len(set(pids.values())) == 2
        assert served.process.pid not in pids.values()  # the supervisor serves nothing itself
        with anyio.fail_after(DEADLINE_S):
            await _calls_until_answered_by(served, set(pids.values()), mode)
    assert all(_gone(pid) for pid in pids.values()), "a worker outlived its supervisor"
    assert "Traceback" not in served.stderr_text()


async def test_a_killed_worker_is_replaced_and_sigint_stops_every_worker_with_status_0(
    onepin: ServedSandbox, tmp_path: Path
) -> None:
    served = _start_workers(onepin, tmp_path)
    try:
        with anyio.fail_after(DEADLINE_S):
            await served.stderr_shows(re.compile(r"worker 2 of 2 started"))
        first = _worker_pids(served)
        since = len(served.stderr_lines)
        os.kill(first[1], signal.SIGKILL)
        with anyio.fail_after(DEADLINE_S):
            await served.stderr_shows(
                re.compile(rf"worker 1 \(pid {first[1]}\) ended on its own \(signal SIGKILL\)"),
                since,
            )
            await served.stderr_shows(STARTED, since)
        now = _worker_pids(served)
        assert now[2] == first[2]
        assert now[1] not in first.values()
        with anyio.fail_after(DEADLINE_S):
            # The replacement serves, and so does the worker that was never touched.
            await _calls_until_answered_by(served, {now[1], now[2]}, "auto")
        served.process.send_signal(signal.SIGINT)
        code = served.process.wait(timeout=DEADLINE_S)
    except BaseException:
        stop_server(served)
        raise
    terminate(Launched(served.process, served.stderr_lines, served.reader, served.stdout_file))
    assert code == 0, served.stderr_text()
    assert all(_gone(pid) for pid in now.values()), "a worker outlived its supervisor"


def _serve(*argv: str, **env: str) -> ServeOptions:
    command = parse_command(list(argv), env)
    assert isinstance(command, ServeOptions)
    return command


def test_workers_are_read_from_the_flag_or_its_environment_twin() -> None:
    http = ("--transport", "streamable-http", "--stateless")
    assert _serve(*http).workers == 1
    assert _serve(*http, "--workers", "2").workers == 2
    assert _serve(*http, **{ENV_WORKERS: "3"}).workers == 3
    assert _serve(*http, "--workers", "2", **{ENV_WORKERS: "3"}).workers == 2
    # As with every HTTP variable, a shell profile's setting doesn't break a stdio start.
    assert _serve(**{ENV_WORKERS: "3"}).workers == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--transport", "streamable-http"), "a session"),
        (("--transport", "sse"), "a session"),
        (("--transport", "streamable-http", "--stateless", "--sandbox"), "its own sandbox"),
        ((), "only apply to HTTP"),
    ],
)
def test_workers_are_refused_where_a_request_depends_on_the_process(
    argv: tuple[str, ...], says: str
) -> None:
    with pytest.raises(OptionsError, match=says):
        parse_command([*argv, "--workers", "2"], {})


def test_one_worker_is_allowed_with_sessions() -> None:
    assert _serve("--transport", "sse", "--workers", "1").workers == 1


def test_a_worker_count_below_one_is_refused() -> None:
    with pytest.raises(OptionsError, match=ENV_WORKERS):
        parse_command(["--transport", "streamable-http", "--stateless"], {ENV_WORKERS: "0"})
    with pytest.raises(OptionsError, match="at least 1"):
        parse_command(["--transport", "streamable-http", "--stateless", "--workers", "0"], {})
