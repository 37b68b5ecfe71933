"""Running a policy in a vectorized core, step by step, from one seed.

The world and the policy's sampling draw from separate generators spawned from the same
seed, so two policies run on one seed meet the same customers, users and markets
(common random numbers): the battery's comparisons with the baseline are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.sim.advisor_core import (
    ADVISOR_ACTIONS,
    TRAILING_DAYS,
    AdvisorConfig,
    AdvisorCore,
    AdvisorStep,
)
from rlops.sim.baselines import Policy, act
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.pricing_core import PRICING_ACTIONS, PricingConfig, PricingCore, PricingStep


def generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """``(world, policy)`` generators for ``seed``."""
    world, policy = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(world), np.random.default_rng(policy)


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of a vectorized run: what the policy saw, chose and what followed."""

    features: npt.NDArray[np.float32]  # (n, dim)
    actions: npt.NDArray[np.int64]  # (n,) catalog indices
    propensities: npt.NDArray[np.float64]  # (n,)
    pricing: PricingStep | None = None
    advisor: AdvisorStep | None = None


def pricing_run(
    policy: Policy,
    config: PricingConfig,
    seed: int,
    *,
    windows: int = 1,
    max_steps: int = 20_000,
    catalog: ActionCatalog = PRICING_ACTIONS,
) -> Iterator[Transition]:
    """Steps until every product has closed ``windows`` clearance windows (or ``max_steps``)."""
    world, sampler = generators(seed)
    core = PricingCore(config, world)
    done = windows_closed(config.n_products, windows)
    for _ in range(max_steps):
        features = core.observe()
        index, propensity = act(policy, features, catalog, sampler)
        result = core.step(index)
        yield Transition(features, index, propensity, pricing=result)
        if done(result):
            return


def windows_closed(n_products: int, windows: int) -> Callable[[PricingStep], bool]:
    """A check, fed every step, that is true once each product closed ``windows``
    clearance windows: where a pricing run of whole windows ends."""
    closed = np.zeros(n_products, dtype=np.int64)

    def done(step: PricingStep) -> bool:
        closed[:] += step.window_end
        return bool(closed.min() >= windows)

    return done


def advisor_run(
    policy: Policy,
    config: AdvisorConfig,
    market: MarketSpec,
    seed: int,
    *,
    max_days: int | None = None,
    catalog: ActionCatalog = ADVISOR_ACTIONS,
) -> Iterator[Transition]:
    """One decision per user per trading day through the market's decision days."""
    world, sampler = generators(seed)
    data, first, last = build_market(
        market, world, lookback=TRAILING_DAYS, window=config.window_days
    )
    if max_days is not None:
        last = min(last, first + max_days)
    core = AdvisorCore(config, data, first, last, world, catalog)
    while not core.done:
        features = core.observe()
        index, propensity = act(policy, features, catalog, sampler)
        yield Transition(features, index, propensity, advisor=core.step(index))
