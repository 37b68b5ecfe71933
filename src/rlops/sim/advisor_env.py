"""``rlops/Advisor-v0``: one user, one strategy recommendation per trading day.

A contextual bandit with delayed rewards: the advisor reward of day ``t``'s decision is
known only when its ``window_days`` window closes, so with ``delayed=True`` (the default)
step ``t`` returns the summed rewards of the decisions whose windows closed that day, and
the last step settles every window still open (the simulator knows the future; a
learner does not see it earlier). ``delayed=False`` gives each decision its own reward at
once, the usual bandit view. ``info["signals"]`` always holds this decision's signals.
Markets replay history (``MarketSpec(mode="replay", start, end)``) or are synthetic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.rewards.seeds import advisor_reward
from rlops.rewards.spec import RewardFunction
from rlops.sim.advisor_core import (
    ADVISOR_ACTIONS,
    ADVISOR_SCHEMA,
    TRAILING_DAYS,
    AdvisorConfig,
    AdvisorCore,
)
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.pricing_env import schema_bounds

Obs = npt.NDArray[np.float32]


class AdvisorEnv(gym.Env[Obs, np.int64]):
    """A Gymnasium view of :class:`AdvisorCore` with a single user."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        config: AdvisorConfig | None = None,
        market: MarketSpec | None = None,
        actions: ActionCatalog = ADVISOR_ACTIONS,
        reward: RewardFunction = advisor_reward,
        delayed: bool = True,
    ) -> None:
        base = config or AdvisorConfig()
        self.config = replace(base, n_users=1)
        self.market_spec = market or MarketSpec(start="2013-01-02", end="2014-06-30")
        self.actions = actions
        self.reward_function = reward
        self.delayed = delayed
        low, high = schema_bounds(ADVISOR_SCHEMA)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(actions))
        self._core: AdvisorCore | None = None
        self._open: deque[float] = deque()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        market, first, last = build_market(
            self.market_spec,
            self.np_random,
            lookback=TRAILING_DAYS,
            window=self.config.window_days,
        )
        self._core = AdvisorCore(self.config, market, first, last, self.np_random, self.actions)
        self._open = deque()
        return self._core.observe()[0], {"date": str(market.dates[first])}

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        if self._core is None:
            raise RuntimeError("call reset() before step()")
        core = self._core
        result = core.step(np.asarray([int(action)], dtype=np.int64))
        signals = {name: float(values[0]) for name, values in result.signals.items()}
        own = self.reward_function(signals).total
        terminated = core.done
        if not self.delayed:
            reward = own
        else:
            self._open.append(own)
            keep = 0 if terminated else self.config.window_days
            closing = max(0, len(self._open) - keep)
            reward = float(sum(self._open.popleft() for _ in range(closing)))
        info = {
            "signals": signals,
            "decision_reward": own,
            "followed": bool(result.followed[0]),
            "date": str(core.market.dates[result.day]),
        }
        return core.observe()[0], reward, terminated, False, info
