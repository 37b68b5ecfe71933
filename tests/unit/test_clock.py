from __future__ import annotations

import time

import pytest

from rlops.core import Clock, ManualClock, RealClock, ValidationError


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(100.0)
    assert isinstance(clock, Clock)
    assert clock.advance(30 * 86_400) == 100.0 + 30 * 86_400
    clock.set(clock.now() + 1)
    with pytest.raises(ValidationError):
        clock.set(0.0)
    with pytest.raises(ValidationError):
        clock.advance(-1)


def test_real_clock_tracks_wall_time() -> None:
    assert abs(RealClock().now() - time.time()) < 1.0


def test_manual_clock_refuses_non_finite_times() -> None:
    clock = ManualClock(0.0)
    with pytest.raises(ValidationError):
        clock.set(float("inf"))
    with pytest.raises(ValidationError):
        clock.advance(float("nan"))
