"""`KeyCheck` in process, against the sandbox's in-process transport and a hand-driven clock:
what is remembered, for how long, how concurrent first uses share one question, and what an
outage does to keys seen before and keys never seen."""

from __future__ import annotations

import anyio
import pytest

from onepin_mcp.api.client import RetryPolicy
from onepin_mcp.api.settings import Settings
from onepin_mcp.http_auth import KeyCheck, KeyVerdict
from onepin_mcp.sandbox import Sandbox

pytestmark = pytest.mark.anyio

GOOD_KEY = "op_live_" + "G" * 32
OTHER_GOOD_KEY = "op_live_" + "H" * 32
REFUSED_KEY = "op_live_" + "N" * 32
WHOAMI = "/api/v1/auth/whoami"


async def _no_wait(seconds: float) -> None:
    return None


# The server's policy (one retry), with the back-off recorded instead of waited.
RECORDED_RETRY = RetryPolicy(max_attempts=2, sleep=_no_wait)


class HandClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(manual_clock=True, api_keys=[GOOD_KEY, OTHER_GOOD_KEY])


def _check(sandbox: Sandbox, clock: HandClock, **kwargs: float) -> KeyCheck:
    settings = Settings(base_url="http://sandbox.onepin.test")
    return KeyCheck(
        settings, transport=sandbox.transport(), clock=clock, retry=RECORDED_RETRY, **kwargs
    )


def _whoamis(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.path == WHOAMI)


async def test_verdicts_are_remembered_for_their_ttl_then_asked_again(sandbox: Sandbox) -> None:
    clock = HandClock()
    keys = _check(sandbox, clock, ttl_s=60.0, refused_ttl_s=10.0)
    try:
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        assert await keys(REFUSED_KEY) is KeyVerdict.REFUSED
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        assert await keys(REFUSED_KEY) is KeyVerdict.REFUSED
        assert keys.asked == 2
        clock.now += 11  # the refusal has expired, the acceptance hasn't
        assert await keys(REFUSED_KEY) is KeyVerdict.REFUSED
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        assert keys.asked == 3
        clock.now += 50
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        assert keys.asked == 4
        assert _whoamis(sandbox) == 4
    finally:
        await keys.aclose()


async def test_concurrent_first_uses_of_a_key_share_one_question(sandbox: Sandbox) -> None:
    keys = _check(sandbox, HandClock())
    verdicts: list[KeyVerdict] = []

    async def use(key: str) -> None:
        verdicts.append(await keys(key))

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for _ in range(20):
                    tasks.start_soon(use, GOOD_KEY)
        assert verdicts == [KeyVerdict.ACCEPTED] * 20
        assert keys.asked == 1
    finally:
        await keys.aclose()


@pytest.mark.parametrize("fault", [{"status": 503, "times": None}, {"status": 429, "times": None}])
async def test_an_outage_is_neither_acceptance_nor_refusal_for_a_key_never_seen(
    sandbox: Sandbox, fault: dict[str, object]
) -> None:
    clock = HandClock()
    keys = _check(sandbox, clock, ttl_s=60.0)
    try:
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        clock.now += 61  # its acceptance has expired
        sandbox.faults.add({"path": WHOAMI, **fault})
        # Seen and accepted before: still accepted while OnePin can't say otherwise.
        assert await keys(GOOD_KEY) is KeyVerdict.ACCEPTED
        # Never seen: the server can't tell, and says so.
        assert await keys(OTHER_GOOD_KEY) is KeyVerdict.UNAVAILABLE
        assert await keys(REFUSED_KEY) is KeyVerdict.UNAVAILABLE
        sandbox.faults.clear()
        # Nothing was remembered from the outage: the next use asks again.
        assert await keys(OTHER_GOOD_KEY) is KeyVerdict.ACCEPTED
        assert await keys(REFUSED_KEY) is KeyVerdict.REFUSED
    finally:
        await keys.aclose()
