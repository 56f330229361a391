"""Following a run: adaptive polling of the cheap status endpoint, for waits and watchers.

A run takes minutes and its state changes in bursts (a node finishes, then a long generation
step is quiet). Polling at a fixed rate either hammers the API during the quiet stretches or
notices the end late. So the interval starts short, drops back to the minimum whenever progress
moves, grows by `backoff` on every poll that shows nothing new, and never exceeds `max_s`.

Only `GET …/runs/{id}/status` is called: it is the endpoint OnePin meant for polling. Both
sleeping and measuring go through the injected `Clock`, so tests and the benchmark play out
minutes of sandbox time with no real waiting.

Cancellation is never caught here: when the caller's scope is cancelled (the MCP client gave up
or went away), the pending sleep or request raises and no further request is made.

This module sits below the tools and the subscriptions and does not import `mcp`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunState

if TYPE_CHECKING:
    # Only the protocol's shape is needed; importing `state` at run time would pull in `mcp`.
    from onepin_mcp.state import Clock

ProgressKey = tuple[object, ...]


class StatusReader(Protocol):
    """What following a run needs of a client: its cheap status read. A `OnePinClient` is one;
    a run watcher is another, which reads with whichever subscriber's client is current."""

    async def get_run_status(self, workflow_id: str, run_id: str) -> RunState: ...


OnProgress = Callable[[RunState], Awaitable[None]]


@dataclass(frozen=True)
class PollSchedule:
    """How long to wait between two polls of a run's status.

    `first_s` is the pause after the first poll; after a poll that showed a change the pause is
    `min_s`; after one that showed nothing new it is the previous pause times `backoff`, capped at
    `max_s`. The defaults notice a short run's end within about a second and settle at one
    request per 15 s during long quiet stretches.
    """

    first_s: float = 1.0
    min_s: float = 1.0
    max_s: float = 15.0
    backoff: float = 1.5

    def __post_init__(self) -> None:
        # A zero or negative pause would turn a wait into a busy loop against the API.
        numbers = (self.first_s, self.min_s, self.max_s, self.backoff)
        if not all(math.isfinite(n) for n in numbers):
            raise ValueError("poll schedule values must be finite numbers")
        if not 0 < self.min_s <= self.max_s:
            raise ValueError("poll schedule needs 0 < min_s <= max_s")
        if not self.min_s <= self.first_s <= self.max_s:
            raise ValueError("poll schedule needs min_s <= first_s <= max_s")
        if self.backoff < 1:
            raise ValueError("poll schedule backoff must be at least 1 (it lengthens pauses)")

    def next_interval(self, previous_s: float, *, changed: bool) -> float:
        """The pause after a poll, given the pause before it and whether the poll saw a change."""
        if changed:
            return self.min_s
        return min(self.max_s, max(self.min_s, previous_s * self.backoff))


def progress_key(state: RunState) -> ProgressKey:
    """What counts as a change worth reporting: the status, the step and node counts (with
    their totals, which grow when validators send takes back), and why a run is paused.
    Timestamps are left out on purpose: `updated_at` moves without anything an agent would act on.
    """
    return (
        state.status,
        state.finished_steps,
        state.total_steps,
        state.finished_nodes,
        state.total_nodes,
        state.pause_reason,
    )


async def _polls(
    client: StatusReader,
    workflow_id: str,
    run_id: str,
    *,
    clock: Clock,
    schedule: PollSchedule,
    deadline: float | None = None,
) -> AsyncGenerator[tuple[RunState, bool], None]:
    """Every poll's state with whether it differs from the previous one (the first always does).

    Ends after a terminal state, or, with a `deadline` on `clock`, after the poll made when the
    deadline was reached: the last pause is cut short so that no sleep runs past it.
    """
    previous: ProgressKey | None = None
    interval = schedule.first_s
    while True:
        state = await client.get_run_status(workflow_id, run_id)
        key = progress_key(state)
        changed = key != previous
        if previous is not None:
            interval = schedule.next_interval(interval, changed=changed)
        previous = key
        yield state, changed
        if state.is_terminal:
            return
        pause = interval
        if deadline is not None:
            remaining = deadline - clock.now()
            if remaining <= 0:
                return
            pause = min(pause, remaining)
        await clock.sleep(pause)


async def follow_run(
    client: StatusReader,
    workflow_id: str,
    run_id: str,
    *,
    clock: Clock,
    schedule: PollSchedule = PollSchedule(),
) -> AsyncGenerator[RunState, None]:
    """Yield the run's first state, then each state that differs by `progress_key`; return after
    yielding a terminal state.

    A paused run is followed on (at the slowest rate), since anyone may resume it; a caller that
    cannot wait on a pause stops when it sees one, as `wait_until_settled` does. Close the
    iterator (`contextlib.aclosing`) or cancel the caller to stop polling at once.
    """
    async with aclosing(
        _polls(client, workflow_id, run_id, clock=clock, schedule=schedule)
    ) as polls:
        async for state, changed in polls:
            if changed:
                yield state


async def wait_until_settled(
    client: OnePinClient,
    workflow_id: str,
    run_id: str,
    *,
    clock: Clock,
    timeout_s: float,
    on_progress: OnProgress | None = None,
    schedule: PollSchedule = PollSchedule(),
) -> tuple[RunState, bool, float]:
    """Poll until the run is terminal, paused, or `timeout_s` has passed on `clock`.

    Returns the last state, `done` (true only for a terminal state) and the seconds waited on
    `clock`. A paused run returns at once with done false: waiting cannot end a pause. At the
    timeout the run is polled once more, so the state returned is current. `on_progress` gets the
    first state and every later one that differs by `progress_key`.
    """
    if not timeout_s >= 0:  # also refuses NaN, which would never reach a deadline
        raise ValueError("timeout_s must be a non-negative number")
    started = clock.now()
    state: RunState | None = None
    async with aclosing(
        _polls(
            client,
            workflow_id,
            run_id,
            clock=clock,
            schedule=schedule,
            deadline=started + timeout_s,
        )
    ) as polls:
        async for state, changed in polls:
            if changed and on_progress is not None:
                await on_progress(state)
            if state.status == "paused":
                break
    # `_polls` always yields at least once before it can end.
    assert state is not None
    return state, state.is_terminal, max(0.0, clock.now() - started)
