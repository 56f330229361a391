"""Sandbox time: every timestamp the sandbox hands out and every run transition reads one clock.

Runs are advanced lazily from `clock.now()` on each request, so swapping the clock is all it takes
to make a run finish in milliseconds (tests, `ManualClock`) or at a demo-friendly pace
(`ScaledClock` with a speed factor).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

# The instant a manual clock starts at: fixed so that seeded timestamps, request ids and file
# names are reproducible from one test run to the next. Matches the era of the API examples.
MANUAL_CLOCK_START = datetime(2026, 3, 12, 9, 0, 0, tzinfo=timezone.utc)


@runtime_checkable
class Clock(Protocol):
    """A source of sandbox time."""

    def now(self) -> datetime:
        """The current sandbox time, timezone-aware, in UTC."""
        ...


class ManualClock:
    """A clock that only moves when told to, so tests drive run lifecycles without sleeping."""

    def __init__(self, start: datetime = MANUAL_CLOCK_START) -> None:
        if start.tzinfo is None:
            raise ValueError("the start of a clock must be timezone-aware")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move time forward; time never runs backwards, because runs only move forwards."""
        if seconds < 0:
            raise ValueError("a clock can only be advanced by a non-negative number of seconds")
        self._now += timedelta(seconds=seconds)
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now.isoformat()})"


class ScaledClock:
    """Wall-clock time sped up (or slowed down) by a constant factor.

    Sandbox time is `start + real elapsed * speed`, measured on a monotonic timer so that a
    system clock adjustment cannot make runs jump or stall.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be a positive number")
        if start is not None and start.tzinfo is None:
            raise ValueError("the start of a clock must be timezone-aware")
        self.speed = speed
        self._start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._origin) * self.speed
        return self._start + timedelta(seconds=elapsed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed})"
