"""How many status requests a wait costs, and how late it notices the end: adaptive vs every 2 s.

Run: `python bench/wait_polling.py` (from the project root, in its venv; no network, no real waits).

Everything runs in process against the sandbox on its manual clock. Three waiters follow the
SAME run at once, each through its own OnePinClient whose requests carry a tag in the query
string, so the sandbox request log attributes every `GET …/status` to its waiter:

- `adaptive`: `wait_until_settled` with the default `PollSchedule`, one call long enough for the
  run (timeout 600 s), as `start_run`'s wait or a client that allows long calls would use it;
- `adaptive-50s`: what an agent does with `wait_for_run`'s default: `wait_until_settled` calls of
  50 s back to back until done (each call starts its schedule afresh);
- `every-2s`: the baseline, polling every 2 s until the run is terminal, as the official CLI does.

Runs (sandbox time, the sandbox's engine is deterministic):
- ~30 s: workflow WORKFLOW_COMPLETES_ID ("Product tour EN+KO") started with its own four lines
  repeated to SHORT_LINES lines;
- ~5 min: workflow WORKFLOW_LONG_ID ("Audiobook chapter 7") started with the first LONG_LINES
  lines of its chapter.
Each repetition starts the waiters at a different moment after the run starts (0 to 2 s, seeded),
so the phase of the 2 s grid against the run's events varies; the table shows medians.

"Late" is the sandbox time from the run's `completed_at` to the moment the waiter returned.
A discrete-event clock plays all waiters on one sandbox clock: when every task is blocked, time
jumps to the earliest wake-up.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

import anyio
import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.models import RunState
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.watch import wait_until_settled

SHORT_LINES = 10  # Product tour lines: ~30 s of sandbox time
LONG_LINES = 36  # Audiobook chapter lines: ~5 min of sandbox time
REPETITIONS = 5
BASELINE_INTERVAL_S = 2.0
AGENT_CALL_S = 50.0  # wait_for_run's default timeout
WAITERS = ("adaptive", "adaptive-50s", "every-2s")


class EventClock:
    """Discrete-event time over the sandbox's manual clock, shared by several tasks."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.sandbox.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now() + seconds, next(self._order), event))
        await event.wait()

    async def drive(self, done: anyio.Event) -> None:
        """Advance to the next wake-up whenever every other task is blocked."""
        while not done.is_set():
            await anyio.wait_all_tasks_blocked()
            if not self._sleepers:
                continue
            wake_at, _, event = heapq.heappop(self._sleepers)
            self.sandbox.advance(max(0.0, wake_at - self.now()))
            event.set()


class Tagged(httpx.AsyncBaseTransport):
    """Adds `bench=<name>` to every request so that the sandbox log says who asked."""

    def __init__(self, inner: httpx.AsyncBaseTransport, name: str) -> None:
        self.inner, self.name = inner, name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_add_param("bench", self.name)
        return await self.inner.handle_async_request(request)


async def _no_sleep(seconds: float) -> None:
    """No retries happen against a healthy sandbox; none would be waited for."""


async def baseline(client: OnePinClient, wf: str, run: str, clock: EventClock) -> RunState:
    while True:
        state = await client.get_run_status(wf, run)
        if state.is_terminal or state.status == "paused":
            return state
        await clock.sleep(BASELINE_INTERVAL_S)


async def adaptive(client: OnePinClient, wf: str, run: str, clock: EventClock) -> RunState:
    state, _, _ = await wait_until_settled(client, wf, run, clock=clock, timeout_s=600)
    return state


async def adaptive_calls(client: OnePinClient, wf: str, run: str, clock: EventClock) -> RunState:
    while True:
        state, done, _ = await wait_until_settled(
            client, wf, run, clock=clock, timeout_s=AGENT_CALL_S
        )
        if done or state.status == "paused":
            return state


Waiter = Callable[[OnePinClient, str, str, EventClock], Awaitable[RunState]]
STRATEGIES: dict[str, Waiter] = {
    "adaptive": adaptive,
    "adaptive-50s": adaptive_calls,
    "every-2s": baseline,
}


@dataclass
class Outcome:
    run_s: float
    polls: dict[str, int]
    late_s: dict[str, float]


async def script_of(client: OnePinClient, workflow_id: str, lines: int) -> str:
    workflow = await client.get_workflow(workflow_id)
    graph = workflow.definition.graph if workflow.definition else None
    source = next(node for node in (graph.nodes if graph else []) if node.type == "source_script")
    own = str((source.config or {})["script_text"]).split("\n")
    return "\n".join((own * (lines // len(own) + 1))[:lines])


async def one(workflow_id: str, lines: int, phase_s: float) -> Outcome:
    sandbox = Sandbox(manual_clock=True)
    clock = EventClock(sandbox)
    settings = Settings(
        api_key=SecretStr(sandbox.example_key), key_source="env", base_url="http://bench"
    )
    retry = RetryPolicy(sleep=_no_sleep)
    clients = {
        name: OnePinClient(settings, transport=Tagged(sandbox.transport(), name), retry=retry)
        for name in (*WAITERS, "setup")
    }
    try:
        setup = clients["setup"]
        run = await setup.start_run(
            workflow_id, script_text=await script_of(setup, workflow_id, lines)
        )
        sandbox.advance(phase_s)
        returned: dict[str, datetime] = {}
        finals: dict[str, RunState] = {}
        done = anyio.Event()

        async def wait(name: str) -> None:
            finals[name] = await STRATEGIES[name](clients[name], workflow_id, run.id, clock)
            returned[name] = sandbox.clock.now()

        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.drive, done)
            async with anyio.create_task_group() as waiters:
                for name in WAITERS:
                    waiters.start_soon(wait, name)
            done.set()
    finally:
        for client in clients.values():
            await client.aclose()
    end = finals["every-2s"]
    assert all(s.is_terminal for s in finals.values())
    assert end.completed_at
    assert end.created_at
    polls = {
        name: sum(
            1
            for r in sandbox.requests
            if r.method == "GET"
            and r.path.endswith("/status")
            and parse_qs(r.query).get("bench") == [name]
        )
        for name in WAITERS
    }
    late = {name: (returned[name] - end.completed_at).total_seconds() for name in WAITERS}
    return Outcome((end.completed_at - end.created_at).total_seconds(), polls, late)


async def main() -> None:
    rng = random.Random(4)
    phases = [round(rng.uniform(0, BASELINE_INTERVAL_S), 2) for _ in range(REPETITIONS)]
    cases = (
        (f"~30 s (Product tour, {SHORT_LINES} lines)", seed.WORKFLOW_COMPLETES_ID, SHORT_LINES),
        (f"~5 min (Audiobook ch. 7, {LONG_LINES} lines)", seed.WORKFLOW_LONG_ID, LONG_LINES),
    )
    print(f"medians over {REPETITIONS} repetitions (wait start phases {phases} s after the start)")
    header = (
        f"{'run':<36} {'waiter':<13} {'run s':>6} {'GET status':>10} {'vs 2 s':>7} {'late s':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, workflow_id, lines in cases:
        outcomes = [await one(workflow_id, lines, phase) for phase in phases]
        run_s = statistics.median(o.run_s for o in outcomes)
        base = statistics.median(o.polls["every-2s"] for o in outcomes)
        for name in WAITERS:
            polls = statistics.median(o.polls[name] for o in outcomes)
            late = statistics.median(o.late_s[name] for o in outcomes)
            ratio = polls / base
            print(f"{label:<36} {name:<13} {run_s:>6.1f} {polls:>10g} {ratio:>7.2f} {late:>7.2f}")


if __name__ == "__main__":
    anyio.run(main)
