"""The advisor simulator's users, advised by a live decision service.

The advisor counterpart of :class:`~rlops.sim.traffic.PricingTraffic`: each step is one
trading day on which every user gets one recommendation from ``decide`` (the serving
path: arms, exploration, trust region, log). The simulated clock moves one day per
trading day, so a reward window of ``window_days`` trading days closes ``window_days``
simulated days after its decision; the window's figures (return, volatility, drawdown,
engagement) arrive as one outcome just before the window ends, inside the join's window,
and only once the clock has passed that time.
"""

from __future__ import annotations

import numpy as np

from rlops.core.clock import ManualClock
from rlops.core.records import Outcome
from rlops.rewards.join import SECONDS_PER_DAY
from rlops.rewards.seeds import advisor_reward
from rlops.sim.advisor_core import (
    ADVISOR_ACTIONS,
    ADVISOR_SCHEMA,
    TRAILING_DAYS,
    AdvisorConfig,
    AdvisorCore,
)
from rlops.sim.logging import features_by_name
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.rollout import generators
from rlops.sim.traffic import Decide, OutcomeQueue, ServedStep
from rlops.sim.vector_reward import vector_reward


class AdvisorTraffic:
    """Steps the market a trading day at a time; every user is advised once a day."""

    def __init__(
        self,
        config: AdvisorConfig,
        market: MarketSpec,
        seed: int,
        *,
        clock: ManualClock,
        unit_prefix: str = "user-",
    ) -> None:
        world, _ = generators(seed)
        data, first, last = build_market(
            market, world, lookback=TRAILING_DAYS, window=config.window_days
        )
        self.core = AdvisorCore(config, data, first, last, world, ADVISOR_ACTIONS)
        self.clock = clock
        self.start = clock.now()
        self.window_seconds = config.window_days * SECONDS_PER_DAY
        self.units = [f"{unit_prefix}{u}" for u in range(config.n_users)]
        self._index = {a: i for i, a in enumerate(ADVISOR_ACTIONS.ids)}
        self._queue = OutcomeQueue(clock)
        self._steps = 0

    @property
    def done(self) -> bool:
        """The market has no decision days left."""
        return self.core.done

    def step(self, decide: Decide) -> ServedStep:
        """Advance the clock to the next trading day, advise everyone, queue the outcomes."""
        day = self.start + self._steps * SECONDS_PER_DAY
        if day > self.clock.now():
            self.clock.set(day)
        features = self.core.observe()
        contexts = [features_by_name(ADVISOR_SCHEMA, row) for row in features]
        decisions = list(decide(self.units, contexts))
        if len(decisions) != len(self.units):
            raise ValueError(f"decide returned {len(decisions)} decisions for {len(self.units)}")
        actions = np.array([self._index[d.action_id] for d in decisions], dtype=np.int64)
        result = self.core.step(actions)
        self._steps += 1
        for u, d in enumerate(decisions):
            signals = {name: float(values[u]) for name, values in result.signals.items()}
            # One second before the window ends: the join (window_seconds) still takes it.
            ts = d.ts + self.window_seconds - 1.0
            self._queue.put(Outcome(f"{d.event_id}-window", d.event_id, ts, signals))
        rewards = vector_reward(advisor_reward, result.signals)
        return ServedStep(decisions, rewards, result.signals)

    def due(self) -> list[Outcome]:
        """Outcomes whose time the clock has reached, oldest first (each handed out once)."""
        return self._queue.due()

    def drain(self) -> list[Outcome]:
        """Every outcome still pending (the end of a run), oldest first."""
        return self._queue.drain()
