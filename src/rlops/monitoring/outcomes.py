"""The outcome monitor: rolling rewards and join health, fed by the joiner.

It takes the examples each join step wrote: reward by (policy version, arm) for the
detectors' intervals and drop test, example statuses (joined, defaulted, revised late),
the join step's late and quarantined outcomes, how long after its window each decision
was joined, and, when told the pending decisions' timestamps, the join lag. Keys are
versions and arms, never event or unit ids.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ValidationError
from rlops.core.records import Example
from rlops.monitoring.detectors import RewardStats, VersionArm, join_lag
from rlops.monitoring.window import Moments, RollingSums, WindowConfig


class JoinStepLike(Protocol):
    """What the monitor reads of a join step's report (``rlops.store.log.JoinStepReport``)."""

    @property
    def quarantined(self) -> int: ...

    @property
    def late_outcomes(self) -> int: ...


#: Example and outcome statuses counted by :class:`OutcomeMonitor`: examples joined with
#: outcomes, joined with the default reward, revised by a late outcome; outcomes late or
#: quarantined (no decision with their event id yet).
STATUSES: tuple[str, ...] = ("joined", "defaulted", "late", "late_outcomes", "quarantined")


@dataclass(frozen=True, slots=True)
class OutcomeConfig:
    """The window; the join's reward window (seconds); the reward version to average
    (``None``: every example's reward, for a log with one version)."""

    reward_window_seconds: float
    window: WindowConfig = field(default_factory=WindowConfig)
    reward_spec: str | None = None
    z: float = 1.96

    def __post_init__(self) -> None:
        w = self.reward_window_seconds
        if (
            isinstance(w, bool)
            or not isinstance(w, int | float)
            or not (math.isfinite(w) and w >= 0)
        ):
            raise ValidationError(
                "reward_window_seconds must be finite and >= 0", field="reward_window_seconds"
            )
        if not (math.isfinite(self.z) and self.z > 0):
            raise ValidationError("z must be finite and > 0", field="z")


@dataclass(frozen=True, slots=True)
class OutcomeSnapshot:
    """Rewards per ``(policy_version, arm)``, status counts, join delay and lag at ``at``.

    ``join_delay``: seconds from a decision's window closing to its example, over the
    window's first joins. ``join_lag``: the oldest pending decision's age past its
    window at the last :meth:`OutcomeMonitor.observe_pending` (``None`` before one).
    """

    at: float
    rewards: dict[VersionArm, RewardStats]
    statuses: dict[str, int]
    join_delay: Moments
    join_lag: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "rewards": [
                {"policy_version": v, "arm": a, **stats.to_json()}
                for (v, a), stats in sorted(self.rewards.items())
            ],
            "statuses": dict(self.statuses),
            "join_delay": self.join_delay.to_json(),
            "join_lag": self.join_lag,
        }


class OutcomeMonitor:
    """Rolling rewards and join health from the joiner's examples.

    A late revision (``revision > 0``) counts as ``late`` but does not enter the reward
    means: the first revision already did, and replacing it would mean remembering
    every event id in the window.
    """

    def __init__(self, config: OutcomeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else RealClock()
        self._rewards: RollingSums[VersionArm] = RollingSums(3, config.window, self.clock)
        self._statuses: RollingSums[str] = RollingSums(1, config.window, self.clock)
        self._delay: RollingSums[str] = RollingSums(3, config.window, self.clock)
        self._lag: float | None = None
        self._lock = threading.Lock()

    def observe(self, examples: Sequence[Example], now: float | None = None) -> None:
        """Count the examples one join step wrote (first joins and late revisions)."""
        when = self.clock.now() if now is None else now
        spec = self.config.reward_spec
        first = [e for e in examples if e.revision == 0]
        scored = [e for e in first if spec is None or e.reward_spec == spec]
        rewards = np.array([e.reward for e in scored], dtype=np.float64)
        delay = np.array(
            [e.joined_at - e.ts - self.config.reward_window_seconds for e in first],
            dtype=np.float64,
        )
        defaulted = sum(e.defaulted for e in first)
        statuses = {
            "joined": len(first) - defaulted,
            "defaulted": defaulted,
            "late": len(examples) - len(first),
        }
        with self._lock:
            self._rewards.add(
                [(e.policy_version, e.arm) for e in scored],
                np.column_stack([np.ones_like(rewards), rewards, rewards * rewards]),
                when,
            )
            self._delay.add(
                ["join"] * len(delay),
                np.column_stack([np.ones_like(delay), delay, delay * delay]),
                when,
            )
            self._count(statuses, when)

    def observe_join_step(self, report: JoinStepLike, now: float | None = None) -> None:
        """Count a join step's late and quarantined outcomes (a ``progress`` callback)."""
        when = self.clock.now() if now is None else now
        with self._lock:
            self._count(
                {"late_outcomes": report.late_outcomes, "quarantined": report.quarantined}, when
            )

    def observe_pending(self, pending_ts: npt.ArrayLike, now: float | None = None) -> float:
        """Record and return the join lag of the pending decisions' timestamps."""
        when = self.clock.now() if now is None else now
        lag = join_lag(pending_ts, when, self.config.reward_window_seconds)
        with self._lock:
            self._lag = lag
        return lag

    def _count(self, statuses: dict[str, int], when: float) -> None:
        names = [name for name, n in statuses.items() if n]
        if names:
            self._statuses.add(names, [float(statuses[name]) for name in names], when)

    def snapshot(self, now: float | None = None) -> OutcomeSnapshot:
        when = self.clock.now() if now is None else now
        with self._lock:
            rewards = self._rewards.totals(when)
            statuses = self._statuses.totals(when)
            delay = self._delay.totals(when).sums.get("join")
            lag = self._lag
        return OutcomeSnapshot(
            at=when,
            rewards={
                key: RewardStats.of(Moments.of(*sums.tolist()), self.config.z)
                for key, sums in sorted(rewards.sums.items())
            },
            statuses={name: round(float(statuses.sums.get(name, [0.0])[0])) for name in STATUSES},
            join_delay=Moments(0, 0.0, 0.0) if delay is None else Moments.of(*delay.tolist()),
            join_lag=lag,
        )
