"""``rlops/Pricing-v0``: one product through one clearance window, one customer per step.

The observation is a :data:`~rlops.sim.pricing_core.PRICING_SCHEMA` vector; the action is
an index into :data:`~rlops.sim.pricing_core.PRICE_STEPS`. The reward is the pricing
reward function applied to the step's outcome signals, so the clearance bonus arrives
only on the window's last step, where the episode terminates. ``info["signals"]`` holds
the raw signals, as they would be logged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from rlops.rewards.seeds import pricing_reward
from rlops.rewards.spec import RewardFunction
from rlops.sim.pricing_core import (
    PRICE_STEPS,
    PRICING_SCHEMA,
    PricingConfig,
    PricingCore,
)

Obs = npt.NDArray[np.float32]


def schema_bounds(schema: Any) -> tuple[Obs, Obs]:
    """Box bounds from a schema's declared low/high (categories and bools are 0..1)."""
    low: list[float] = []
    high: list[float] = []
    for f in schema.features:
        for _ in f.columns:
            if f.kind in ("category", "bool"):
                low.append(0.0)
                high.append(1.0)
            else:
                low.append(-np.inf if f.low is None else float(f.low))
                high.append(np.inf if f.high is None else float(f.high))
    return np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)


class PricingEnv(gym.Env[Obs, np.int64]):
    """A Gymnasium view of :class:`PricingCore` with a single product."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        config: PricingConfig | None = None,
        reward: RewardFunction = pricing_reward,
        max_steps: int = 5000,
    ) -> None:
        self.config = (config or PricingConfig()).with_products(1)
        self.reward_function = reward
        self.max_steps = max_steps
        low, high = schema_bounds(PRICING_SCHEMA)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(PRICE_STEPS))
        self._core: PricingCore | None = None
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._core = PricingCore(self.config, self.np_random)
        self._steps = 0
        return self._core.observe()[0], {}

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        if self._core is None:
            raise RuntimeError("call reset() before step()")
        result = self._core.step(np.asarray([int(action)], dtype=np.int64))
        self._steps += 1
        terminated = bool(result.window_end[0])
        signals = {name: float(values[0]) for name, values in result.signals.items()}
        if not terminated:
            # clearance_met is emitted only at the end of its window, as in production.
            del signals["clearance_met"]
        reward = self.reward_function(signals).total
        truncated = not terminated and self._steps >= self.max_steps
        info = {"signals": signals, "hours": float(result.hours[0])}
        return self._core.observe()[0], reward, terminated, truncated, info
