"""Sandbox clocks: manual time only moves when told to; scaled time runs at a chosen speed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from onepin_mcp.sandbox.clock import MANUAL_CLOCK_START, Clock, ManualClock, ScaledClock


def test_a_manual_clock_stands_still_until_advanced() -> None:
    clock = ManualClock()
    assert clock.now() == clock.now() == MANUAL_CLOCK_START
    clock.advance(2.5)
    assert clock.now() == MANUAL_CLOCK_START + timedelta(seconds=2.5)
    assert clock.now().tzinfo is not None


def test_a_manual_clock_refuses_to_go_backwards_or_start_naive() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ManualClock().advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_a_scaled_clock_runs_speed_times_faster_than_its_timer() -> None:
    ticks = iter([100.0, 103.0])
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    clock = ScaledClock(20.0, start=start, monotonic=lambda: next(ticks))
    assert clock.now() == start + timedelta(seconds=60)


def test_a_scaled_clock_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0)


def test_both_clocks_satisfy_the_clock_protocol() -> None:
    assert isinstance(ManualClock(), Clock)
    assert isinstance(ScaledClock(), Clock)
