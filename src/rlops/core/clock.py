"""Injected time, so a 30-day reward window runs in milliseconds in tests and simulations."""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol, runtime_checkable

from rlops.core.errors import ValidationError


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock time in Unix seconds."""

    def now(self) -> float: ...


class RealClock:
    """The system's wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; it never goes backwards."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            raise ValidationError(f"cannot advance a clock by {seconds!r} seconds", field="seconds")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current time."""
        with self._lock:
            if not (now >= self._now and math.isfinite(now)):
                raise ValidationError(
                    f"clock cannot go back from {self._now} to {now!r}", field="now"
                )
            self._now = float(now)
