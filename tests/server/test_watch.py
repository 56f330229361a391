"""`onepin_mcp.watch` on its own: a plain OnePin client on the sandbox, driven by sandbox time.

The `SandboxClock` moves the sandbox's manual clock on every sleep, so a 14-minute run plays out
in milliseconds and every pause the schedule chose is on record (`sandbox_clock.slept`).
"""

from __future__ import annotations

import itertools
from datetime import datetime

import anyio
import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunState
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.watch import PollSchedule, follow_run, progress_key, wait_until_settled

from .conftest import GateClock, SandboxClock

pytestmark = pytest.mark.anyio

RUNNING = (seed.WORKFLOW_COURSE_ID, seed.RUN_RUNNING_ID)


def status_polls(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.method == "GET" and r.path.endswith("/status"))


def sandbox_now(sandbox: Sandbox) -> datetime:
    return sandbox.clock.now()


class RecordingClient:
    """Wraps `get_run_status` to keep every state a poll saw, including unchanged ones."""

    def __init__(self, api: OnePinClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[RunState] = []
        fetch = api.get_run_status

        async def recording(workflow_id: str, run_id: str) -> RunState:
            state = await fetch(workflow_id, run_id)
            self.seen.append(state)
            return state

        monkeypatch.setattr(api, "get_run_status", recording)


# --- PollSchedule and progress_key ----------------------------------------------------------------


def test_the_schedule_backs_off_while_nothing_changes_and_resets_on_change() -> None:
    schedule = PollSchedule(first_s=1, min_s=1, max_s=10, backoff=2)
    assert schedule.next_interval(1, changed=False) == 2
    assert schedule.next_interval(8, changed=False) == 10  # capped
    assert schedule.next_interval(10, changed=False) == 10
    assert schedule.next_interval(8, changed=True) == 1


@pytest.mark.parametrize(
    "values",
    [
        {"min_s": 0},
        {"min_s": 5, "max_s": 2},
        {"first_s": 20},
        {"first_s": 0.5},
        {"backoff": 0.9},
        {"max_s": float("inf")},
    ],
)
def test_a_schedule_that_could_busy_loop_or_never_poll_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="poll schedule"):
        PollSchedule(**values)


async def test_progress_key_ignores_timestamps_but_sees_counts_and_pause_reasons(
    api: OnePinClient,
) -> None:
    state = await api.get_run_status(*RUNNING)
    assert progress_key(state) == progress_key(state.model_copy(update={"updated_at": None}))
    for change in (
        {"finished_steps": (state.finished_steps or 0) + 1},
        {"total_nodes": (state.total_nodes or 0) + 1},
        {"status": "paused"},
        {"pause_reason": "provider_outage"},
    ):
        assert progress_key(state) != progress_key(state.model_copy(update=change))


# --- follow_run -----------------------------------------------------------------------------------


async def test_follow_run_yields_only_changes_and_ends_after_the_terminal_state(
    api: OnePinClient,
    sandbox: Sandbox,
    sandbox_clock: SandboxClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = RecordingClient(api, monkeypatch)
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    with anyio.fail_after(5):
        states = [
            s
            async for s in follow_run(api, seed.WORKFLOW_COMPLETES_ID, run.id, clock=sandbox_clock)
        ]
    keys = [progress_key(s) for s in states]
    assert states[0].status == "pending"
    assert states[-1].status == "completed"
    assert not any(s.is_terminal for s in states[:-1])
    assert all(a != b for a, b in itertools.pairwise(keys))
    # Some polls saw nothing new and were not passed on; each yielded state was a real poll.
    assert len(recorder.seen) > len(states)
    assert set(keys) == {progress_key(s) for s in recorder.seen}
    assert status_polls(sandbox) == len(recorder.seen) == len(sandbox_clock.slept) + 1


async def test_follow_run_backs_off_while_nothing_changes_resets_after_progress_and_caps(
    api: OnePinClient, sandbox_clock: SandboxClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingClient(api, monkeypatch)
    schedule = PollSchedule()
    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    with anyio.fail_after(10):
        async for _ in follow_run(
            api, seed.WORKFLOW_LONG_ID, run.id, clock=sandbox_clock, schedule=schedule
        ):
            pass
    keys = [progress_key(s) for s in recorder.seen]
    pauses = sandbox_clock.slept
    assert len(pauses) == len(keys) - 1
    assert pauses[0] == schedule.first_s
    backed_off = reset = 0
    for i in range(1, len(pauses)):
        if keys[i] != keys[i - 1]:
            assert pauses[i] == schedule.min_s  # progress moved: look again soon
            reset += 1
        else:
            assert pauses[i] == pytest.approx(min(schedule.max_s, pauses[i - 1] * schedule.backoff))
            backed_off += 1
    assert reset >= 5
    assert backed_off >= 20
    # The quiet stretches of a 14-minute run reach the cap and never pass it.
    assert max(pauses) == schedule.max_s
    assert pauses.count(schedule.max_s) >= 20


async def test_follow_run_keeps_following_a_paused_run_and_sees_it_resume(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    # Anyone may resume a paused run, so a watcher (unlike a wait) does not stop at a pause: it
    # backs off to the slowest rate and picks the run up again once someone resumes it.
    workflow_id, run_id = seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID
    resumed_after: list[int] = []
    sleep = sandbox_clock.sleep

    async def sleep_then_resume(seconds: float) -> None:
        await sleep(seconds)
        if not resumed_after and sum(sandbox_clock.slept) >= 120:
            resumed_after.append(len(sandbox_clock.slept))
            await api.resume_run(workflow_id, run_id)

    sandbox_clock.sleep = sleep_then_resume  # type: ignore[method-assign]
    with anyio.fail_after(5):
        seen = [s async for s in follow_run(api, workflow_id, run_id, clock=sandbox_clock)]
    assert seen[0].status == "paused"
    assert seen[1].status in ("pending", "running")
    assert seen[-1].is_terminal
    before_resume = sandbox_clock.slept[: resumed_after[0]]
    assert before_resume[-1] == PollSchedule().max_s
    assert max(sandbox_clock.slept) == PollSchedule().max_s


async def test_cancelling_a_follower_stops_its_polling_at_once(
    api: OnePinClient, sandbox: Sandbox
) -> None:
    clock = GateClock(sandbox)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                async for _ in follow_run(api, *RUNNING, clock=clock):
                    pass

            tg.start_soon(follow)
            await clock.asleep.wait()
            polls = status_polls(sandbox)
            tg.cancel_scope.cancel()
        await clock.cancelled.wait()
        clock.gate.set()  # a follower that survived would wake and poll now
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
    assert clock.woke == 0
    assert status_polls(sandbox) == polls == 1


# --- wait_until_settled ---------------------------------------------------------------------------


async def test_a_wait_returns_within_one_poll_of_the_run_ending(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    started = sandbox_now(sandbox)
    seen: list[RunState] = []

    async def on_progress(state: RunState) -> None:
        seen.append(state)

    with anyio.fail_after(5):
        state, done, waited_s = await wait_until_settled(
            api,
            seed.WORKFLOW_COMPLETES_ID,
            run.id,
            clock=sandbox_clock,
            timeout_s=120,
            on_progress=on_progress,
        )
    assert done is True
    assert state.status == "completed"
    assert state.completed_at is not None
    late_s = (sandbox_now(sandbox) - state.completed_at).total_seconds()
    assert 0 <= late_s <= sandbox_clock.slept[-1]
    assert waited_s == pytest.approx(sum(sandbox_clock.slept))
    assert waited_s == pytest.approx((sandbox_now(sandbox) - started).total_seconds())
    # on_progress saw the first state and every change, and nothing twice.
    assert seen[0].status == "pending"
    assert seen[-1] is state
    keys = [progress_key(s) for s in seen]
    assert len(set(keys)) == len(keys)


async def test_a_wait_that_times_out_polls_once_more_at_the_deadline_and_never_sleeps_past_it(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    with anyio.fail_after(5):
        state, done, waited_s = await wait_until_settled(
            api, *RUNNING, clock=sandbox_clock, timeout_s=30
        )
    assert done is False
    assert state.status == "running"
    assert waited_s == pytest.approx(30)
    assert sum(sandbox_clock.slept) == pytest.approx(30)
    # The last pause was cut to end at the deadline, and the state returned is from then.
    assert sandbox_clock.slept[-1] < PollSchedule().max_s
    assert status_polls(sandbox) == len(sandbox_clock.slept) + 1


async def test_a_wait_on_a_paused_run_returns_at_once_with_the_reason(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    with anyio.fail_after(5):
        state, done, waited_s = await wait_until_settled(
            api, seed.WORKFLOW_IVR_ID, seed.RUN_PAUSED_ID, clock=sandbox_clock, timeout_s=600
        )
    assert (state.status, state.pause_reason, done, waited_s) == ("paused", "user", False, 0)
    assert sandbox_clock.slept == []
    assert status_polls(sandbox) == 1


async def test_a_wait_follows_a_pause_request_until_the_run_is_paused(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    run = await api.start_run(seed.WORKFLOW_LONG_ID)
    sandbox.advance(5)
    requested = await api.pause_run(seed.WORKFLOW_LONG_ID, run.id)
    assert requested.status == "running"  # the current step finishes first
    with anyio.fail_after(5):
        state, done, waited_s = await wait_until_settled(
            api, seed.WORKFLOW_LONG_ID, run.id, clock=sandbox_clock, timeout_s=600
        )
    assert (state.status, state.pause_reason, done) == ("paused", "user", False)
    assert 0 < waited_s < 600


async def test_a_wait_refuses_a_negative_or_nan_timeout(
    api: OnePinClient, sandbox: Sandbox, sandbox_clock: SandboxClock
) -> None:
    for timeout_s in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout_s"):
            await wait_until_settled(api, *RUNNING, clock=sandbox_clock, timeout_s=timeout_s)
    assert len(sandbox.requests) == 0
