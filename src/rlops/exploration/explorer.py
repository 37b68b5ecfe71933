"""Exploration wrappers: epsilon and softmax with decaying rates, and a propensity floor.

Off-policy evaluation needs support: an action the serving policy never takes cannot be
evaluated from its logs, so every allowed action keeps at least ``floor`` probability.
All three operations act only on allowed actions (a masked action stays at 0) and keep
rows summing to 1. The pure functions do the maths; :class:`Explorer` tracks progress
(decisions served or clock time) for the schedule.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ValidationError
from rlops.exploration.schedules import Schedule
from rlops.policies.contract import Probs, Scores, softmax

Mask = npt.NDArray[np.bool_]


def _uniform(allowed: Mask) -> Probs:
    counts = allowed.sum(axis=1, keepdims=True)
    if np.any(counts == 0):
        raise ValidationError("a row allows no action", field="allowed")
    out: Probs = allowed / counts
    return out


def epsilon_mix(probs: Probs, allowed: Mask, epsilon: float) -> Probs:
    """``(1 - epsilon) p + epsilon * uniform(allowed)``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValidationError("epsilon must lie in [0, 1]", field="epsilon")
    out: Probs = (1.0 - epsilon) * probs + epsilon * _uniform(allowed)
    return out


def tempered(
    probs: Probs, allowed: Mask, temperature: float, scores: Scores | None = None
) -> Probs:
    """Softmax over ``scores / temperature`` (or over ``log p / temperature``) on allowed actions.

    Without scores, ``p ** (1 / T)`` renormalised: ``T > 1`` flattens, ``T < 1`` sharpens,
    and an action at probability 0 stays there unless ``scores`` are given.
    """
    if not temperature > 0.0:
        raise ValidationError("temperature must be positive", field="temperature")
    if scores is None:
        with np.errstate(divide="ignore"):
            scores = np.log(probs)
    masked = np.where(allowed, scores, -np.inf)
    return softmax(masked, temperature)


def with_floor(probs: Probs, allowed: Mask, floor: float) -> Probs:
    """Every allowed action at least ``floor``: ``(1 - k floor) p + floor`` over the ``k`` allowed.

    This is the smallest uniform mix that lifts every allowed action to the floor whatever
    ``p`` is; a floor above ``1 / k`` is cut to ``1 / k`` (uniform) for that row.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValidationError("floor must lie in [0, 1]", field="floor")
    if floor == 0.0:
        return probs
    k = allowed.sum(axis=1, keepdims=True)
    weight = np.minimum(k * floor, 1.0)
    out: Probs = (1.0 - weight) * probs + weight * _uniform(allowed)
    return out


@dataclass(frozen=True, slots=True)
class ExplorationConfig:
    """``kind``: ``epsilon`` (schedule gives epsilon), ``softmax`` (schedule gives the
    temperature) or ``none``; ``floor`` applies after either."""

    kind: Literal["none", "epsilon", "softmax"] = "none"
    schedule: Schedule = field(default_factory=Schedule)
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "epsilon", "softmax"):
            raise ValidationError(f"unknown exploration {self.kind!r}", field="exploration.kind")
        if not 0.0 <= self.floor <= 1.0:
            raise ValidationError("floor must lie in [0, 1]", field="exploration.floor")
        if self.kind == "epsilon" and max(self.schedule.start, self.schedule.end) > 1.0:
            raise ValidationError("epsilon must lie in [0, 1]", field="exploration.schedule")
        if self.kind == "softmax" and min(self.schedule.start, self.schedule.end) <= 0.0:
            raise ValidationError("a temperature must be positive", field="exploration.schedule")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "schedule": self.schedule.to_json(), "floor": self.floor}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExplorationConfig:
        return cls(
            kind=data.get("kind", "none"),
            schedule=Schedule.from_json(data.get("schedule", {})),
            floor=float(data.get("floor", 0.0)),
        )


class Explorer:
    """Applies a config with its schedule's current rate; counts decisions thread-safely."""

    def __init__(self, config: ExplorationConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self._started = self.clock.now()
        self._decisions = 0
        self._lock = threading.Lock()

    @property
    def decisions(self) -> int:
        return self._decisions

    def rate(self) -> float:
        """The schedule's current epsilon or temperature."""
        schedule = self.config.schedule
        if schedule.unit == "decisions":
            return schedule.value(self._decisions)
        return schedule.value(self.clock.now() - self._started)

    def apply(self, probs: Probs, allowed: Mask, scores: Scores | None = None) -> Probs:
        """The served distribution for ``probs`` at the current rate (does not advance)."""
        kind = self.config.kind
        out = probs
        if kind == "epsilon":
            out = epsilon_mix(probs, allowed, self.rate())
        elif kind == "softmax":
            out = tempered(probs, allowed, self.rate(), scores)
        return with_floor(out, allowed, self.config.floor)

    def advance(self, decisions: int) -> None:
        with self._lock:
            self._decisions += decisions
