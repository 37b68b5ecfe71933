"""The pricing simulator's customers, priced by a live decision service.

Where :func:`rlops.sim.rollout.pricing_run` asks a policy object directly, this asks
whatever serves production (an in-process :class:`~rlops.serving.service.DecisionService`
or the HTTP server), so the whole serving path runs: arms, exploration, the trust region,
the log. The simulator then answers each decision with the outcomes production would
receive, stamped from the decision's own time: the visit's sale signals
``outcome_delay`` seconds later, and at the end of a clearance window, whether the target
was met. Outcomes are handed out only once the clock has passed their time, so they
arrive late, as real ones do.

The simulated reward of every visit (the pricing reward over its signals, clearance
bonus included) is returned beside the decisions: the ground truth the loop's estimates
and comparisons are checked against.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.clock import ManualClock
from rlops.core.features import FeatureValue
from rlops.core.records import Decision, Outcome
from rlops.rewards.seeds import pricing_reward
from rlops.sim.logging import PRICING_SALE_SIGNALS, SECONDS_PER_HOUR, features_by_name
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA, PricingConfig, PricingCore
from rlops.sim.rollout import generators
from rlops.sim.vector_reward import vector_reward

# Decides for these units in these contexts, returning the logged decisions in order.
Decide = Callable[[Sequence[str], Sequence[Mapping[str, FeatureValue]]], Sequence[Decision]]


@dataclass(frozen=True, slots=True)
class ServedStep:
    """One visit per product: the decisions and what each visit truly earned."""

    decisions: Sequence[Decision]
    rewards: npt.NDArray[np.float64]
    signals: Mapping[str, npt.NDArray[np.float64]]


class Traffic(Protocol):
    """A simulated population served by ``decide``: what the production rig drives.

    ``step`` advances the clock to the next round of decisions and returns them with
    their true rewards; ``due`` hands out the outcomes the clock has reached, once each.
    """

    units: list[str]

    def step(self, decide: Decide) -> ServedStep: ...

    def due(self) -> list[Outcome]: ...

    def drain(self) -> list[Outcome]: ...


class OutcomeQueue:
    """Outcomes waiting for their time, handed out oldest first once the clock is there."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._pending: list[tuple[float, int, Outcome]] = []
        self._sequence = 0

    def put(self, outcome: Outcome) -> None:
        heapq.heappush(self._pending, (outcome.ts, self._sequence, outcome))
        self._sequence += 1

    def due(self) -> list[Outcome]:
        now = self.clock.now()
        out = []
        while self._pending and self._pending[0][0] <= now:
            out.append(heapq.heappop(self._pending)[2])
        return out

    def drain(self) -> list[Outcome]:
        out = [item[2] for item in sorted(self._pending)]
        self._pending.clear()
        return out


class PricingTraffic:
    """Steps the market; each step every product gets one visitor priced by ``decide``."""

    def __init__(
        self,
        config: PricingConfig,
        seed: int,
        *,
        clock: ManualClock,
        outcome_delay: float = 60.0,
        unit_prefix: str = "product-",
    ) -> None:
        world, _ = generators(seed)
        self.core = PricingCore(config, world)
        self.clock = clock
        self.start = clock.now()
        self.outcome_delay = outcome_delay
        self.units = [f"{unit_prefix}{p}" for p in range(config.n_products)]
        self._index = {a: i for i, a in enumerate(PRICING_ACTIONS.ids)}
        self._queue = OutcomeQueue(clock)

    def step(self, decide: Decide) -> ServedStep:
        """Advance the clock to the visits, decide, and queue the outcomes they cause."""
        core = self.core
        visit = self.start + float(np.median(core.hours)) * SECONDS_PER_HOUR
        if visit > self.clock.now():
            self.clock.set(visit)
        features = core.observe()
        contexts = [features_by_name(PRICING_SCHEMA, row) for row in features]
        decisions = list(decide(self.units, contexts))
        if len(decisions) != len(self.units):
            raise ValueError(f"decide returned {len(decisions)} decisions for {len(self.units)}")
        actions = np.array([self._index[d.action_id] for d in decisions], dtype=np.int64)
        result = core.step(actions)
        for p, d in enumerate(decisions):
            signals = {name: float(result.signals[name][p]) for name in PRICING_SALE_SIGNALS}
            self._queue.put(
                Outcome(f"{d.event_id}-visit", d.event_id, d.ts + self.outcome_delay, signals)
            )
            if result.window_end[p]:
                hours_left = float(result.window_end_hours[p] - result.hours[p])
                met = float(result.signals["clearance_met"][p])
                ts = d.ts + max(hours_left * SECONDS_PER_HOUR, self.outcome_delay)
                self._queue.put(
                    Outcome(f"{d.event_id}-clearance", d.event_id, ts, {"clearance_met": met})
                )
        rewards = vector_reward(pricing_reward, result.signals)
        return ServedStep(decisions, rewards, result.signals)

    def due(self) -> list[Outcome]:
        """Outcomes whose time the clock has reached, oldest first (each handed out once)."""
        return self._queue.due()

    def drain(self) -> list[Outcome]:
        """Every outcome still pending (the end of a run), oldest first."""
        return self._queue.drain()
