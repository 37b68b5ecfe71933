"""A policy's one-step value on the states a logging policy visits, computed exactly.

This is what IPS, SNIPS and DR estimate from logged data: the reward the target policy
would have earned, decision by decision, in the states the logging policy led to. A
policy's value when deployed is another quantity: its own actions move the states
(prices move inventory, and inventory moves the clearance bonus), so an estimate from
logs may be right and still differ from a deployed run. This module gives the estimators
the truth they are meant to hit.

At each step of a logging run the market is copied once per action and every copy takes
that action for every unit, drawing the same random numbers as the original (the
generator's state is copied too). So each unit's reward under each action is known
there, not estimated, and the target's value is the probability-weighted sum. The
logging policy then takes its own action on the original and the run goes on, untouched
by the copies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.rewards.seeds import advisor_reward, pricing_reward
from rlops.rewards.spec import RewardFunction
from rlops.sim.advisor_core import ADVISOR_ACTIONS, TRAILING_DAYS, AdvisorConfig, AdvisorCore
from rlops.sim.baselines import Policy, act
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.pricing_core import PRICING_ACTIONS, PricingConfig, PricingCore
from rlops.sim.rollout import generators, windows_closed
from rlops.sim.vector_reward import vector_reward

FloatArray = npt.NDArray[np.float64]


class _Core(Protocol):
    def observe(self) -> npt.NDArray[np.float32]: ...

    def step(self, actions: npt.NDArray[np.int64]) -> Any: ...


def action_values(
    core: _Core, n: int, k: int, reward: RewardFunction, shared: dict[int, Any]
) -> FloatArray:
    """``(n, k)``: each unit's reward this step under each action (same random draws)."""
    columns = []
    for a in range(k):
        twin = copy.deepcopy(core, dict(shared))  # read-only members (market data) shared
        columns.append(vector_reward(reward, twin.step(np.full(n, a, dtype=np.int64)).signals))
    return np.stack(columns, axis=1)


def _value(
    steps: Iterator[Any],
    core: _Core,
    target: Policy,
    logging: Policy,
    catalog: ActionCatalog,
    reward: RewardFunction,
    sampler: np.random.Generator,
    shared: dict[int, Any],
    done: Callable[[Any], bool],
) -> float:
    values = []
    for _ in steps:
        features = core.observe()
        rewards = action_values(core, len(features), len(catalog), reward, shared)
        values.append((target.probabilities(features, catalog) * rewards).sum(axis=1))
        index, _ = act(logging, features, catalog, sampler)
        if done(core.step(index)):
            break
    return float(np.concatenate(values).mean())


def pricing_one_step_value(
    target: Policy,
    logging: Policy,
    config: PricingConfig,
    seed: int,
    *,
    windows: int = 1,
    max_steps: int = 20_000,
    catalog: ActionCatalog = PRICING_ACTIONS,
) -> float:
    """Per visit, over ``windows`` clearance windows of a run of ``logging``."""
    world, sampler = generators(seed)
    core = PricingCore(config, world)
    done = windows_closed(config.n_products, windows)
    shared = {id(config): config, id(catalog): catalog}
    return _value(
        iter(range(max_steps)), core, target, logging, catalog, pricing_reward, sampler,
        shared, done,
    )  # fmt: skip


def advisor_one_step_value(
    target: Policy,
    logging: Policy,
    config: AdvisorConfig,
    market: MarketSpec,
    seed: int,
    *,
    max_days: int | None = None,
    catalog: ActionCatalog = ADVISOR_ACTIONS,
) -> float:
    """Per recommendation, over the decision days of a run of ``logging``."""
    world, sampler = generators(seed)
    data, first, last = build_market(
        market, world, lookback=TRAILING_DAYS, window=config.window_days
    )
    if max_days is not None:
        last = min(last, first + max_days)
    core = AdvisorCore(config, data, first, last, world, catalog)
    shared = {id(config): config, id(data): data, id(catalog): catalog}
    return _value(
        iter(range(last - first)), core, target, logging, catalog, advisor_reward, sampler,
        shared, lambda _step: core.done,
    )  # fmt: skip
