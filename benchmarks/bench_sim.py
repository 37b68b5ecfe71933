"""Simulator throughput: the vectorized cores against a per-step loop over Gymnasium.

Both sides run the same world and the same fixed action, in the same process; the
loop side is what a user gets from ``env.step`` one customer (or user-day) at a time.
Targets (issue 3): at least 20x, and at least 1,000,000 pricing customer-steps per
second.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import BenchResult, best_rate
from rlops.sim.advisor_core import TRAILING_DAYS, AdvisorConfig, AdvisorCore
from rlops.sim.advisor_env import AdvisorEnv
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.pricing_core import PRICE_STEPS, PricingConfig, PricingCore
from rlops.sim.pricing_env import PricingEnv

HOLD = PRICE_STEPS.index(0.0)
PRODUCTS = 20_000
USERS = 10_000
MARKET = MarketSpec(start="2003-03-03", end="2007-10-31")


def _pricing_vector() -> int:
    core = PricingCore(PricingConfig(n_products=PRODUCTS), np.random.default_rng(0))
    actions = np.full(PRODUCTS, HOLD, dtype=np.int64)
    steps = 100
    for _ in range(steps):
        core.observe()
        core.step(actions)
    return PRODUCTS * steps


def _pricing_loop() -> int:
    env = PricingEnv()
    env.reset(seed=0)
    steps = 5_000
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(HOLD)
        if terminated or truncated:
            env.reset()
    return steps


def _advisor_vector() -> int:
    config = AdvisorConfig(n_users=USERS)
    market, first, last = build_market(
        MARKET, np.random.default_rng(0), lookback=TRAILING_DAYS, window=config.window_days
    )
    core = AdvisorCore(config, market, first, last, np.random.default_rng(0))
    actions = np.full(USERS, 2, dtype=np.int64)
    days = 60
    for _ in range(days):
        core.observe()
        core.step(actions)
    return USERS * days


def _advisor_loop() -> int:
    env = AdvisorEnv(market=MARKET)
    env.reset(seed=0)
    days = 1_000
    for _ in range(days):
        _, _, terminated, _, _ = env.step(2)
        if terminated:
            env.reset()
    return days


def run() -> list[BenchResult]:
    results = []
    for name, unit, vector, loop, floor in [
        (
            "sim_pricing_customer_steps",
            "customer-steps/s",
            _pricing_vector,
            _pricing_loop,
            1_000_000.0,
        ),
        ("sim_advisor_user_days", "user-days/s", _advisor_vector, _advisor_loop, 0.0),
    ]:
        fast = best_rate(vector)
        slow = best_rate(loop)
        ratio = fast / slow
        target = ">= 20x" + (f" and >= {floor:,.0f}/s" if floor else "")
        results.append(
            BenchResult(
                name=name,
                value=fast,
                unit=unit,
                baseline="gymnasium per-step loop",
                baseline_value=slow,
                ratio=ratio,
                target=target,
                passed=ratio >= 20.0 and fast >= floor,
            )
        )
    return results
