"""Exploration-rate schedules: how epsilon (or a softmax temperature) decays.

A schedule maps progress (decisions served, or seconds since the policy went live) to a
rate. Counting decisions suits a steady stream; clock time suits traffic that comes and
goes, where a quiet night should not freeze exploration at its opening rate.

- ``constant``: ``start`` forever.
- ``linear``: from ``start`` to ``end`` over ``horizon``, then ``end``.
- ``exponential``: ``end + (start - end) * 0.5 ** (progress / horizon)``: ``horizon`` is
  the half-life of the excess over ``end``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from rlops.core.errors import ValidationError

ScheduleKind = Literal["constant", "linear", "exponential"]
ProgressUnit = Literal["decisions", "seconds"]


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: ScheduleKind = "constant"
    start: float = 0.1
    end: float = 0.0
    horizon: float = 1.0
    unit: ProgressUnit = "decisions"

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "exponential"):
            raise ValidationError(f"unknown schedule {self.kind!r}", field="schedule.kind")
        if self.unit not in ("decisions", "seconds"):
            raise ValidationError(f"unknown progress unit {self.unit!r}", field="schedule.unit")
        for name in ("start", "end", "horizon"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValidationError(
                    f"{name} must be a finite number >= 0", field=f"schedule.{name}"
                )
        if self.kind != "constant" and self.horizon <= 0:
            raise ValidationError("horizon must be positive", field="schedule.horizon")

    def value(self, progress: float) -> float:
        """The rate after ``progress`` decisions or seconds (negative progress counts as 0)."""
        t = max(0.0, float(progress))
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * min(t / self.horizon, 1.0)
        return float(self.end + (self.start - self.end) * 0.5 ** (t / self.horizon))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "horizon": self.horizon,
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        return cls(**data)
