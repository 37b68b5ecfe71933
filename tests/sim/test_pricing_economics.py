"""Economic sanity of the pricing market, and rewards against hand-computed values."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from rlops.rewards import pricing_reward
from rlops.sim.pricing_core import (
    COLUMN,
    PRICE_STEPS,
    PRICING_ACTIONS,
    PRICING_SCHEMA,
    SEGMENTS,
    PricingConfig,
    PricingCore,
    conversion_probability,
)
from rlops.sim.pricing_env import PricingEnv
from rlops.sim.vector_reward import vector_reward

HOLD = PRICE_STEPS.index(0.0)


def test_conversion_probability_falls_as_price_rises() -> None:
    prices = np.linspace(50.0, 200.0, 61)
    ones = np.ones_like(prices)
    p = conversion_probability(prices, 100 * ones, 100 * ones, -1 * ones, 4 * ones, 2 * ones)
    assert np.all(np.diff(p) < 0.0)


def _conversions(price_ratio: float) -> float:
    config = PricingConfig(
        n_products=300,
        initial_price_ratio=price_ratio,
        floor_ratio=0.5,
        ceiling_ratio=2.0,
        initial_inventory=100_000,
        clearance_target=10,
    )
    core = PricingCore(config, np.random.default_rng(5))
    hold = np.full(config.n_products, HOLD)
    return float(sum(core.step(hold).signals["converted"].sum() for _ in range(200)))


def test_market_conversions_fall_as_price_rises_with_the_same_customers() -> None:
    sales = [_conversions(r) for r in (0.8, 0.9, 1.0, 1.1, 1.2)]
    assert all(a > b for a, b in itertools.pairwise(sales))


def test_inventory_never_negative_and_price_within_floor_and_ceiling() -> None:
    config = PricingConfig(
        n_products=200,
        initial_inventory=5,
        restock_units=2,
        clearance_window_hours=48.0,
        clearance_target=5,
    )
    core = PricingCore(config, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    for _ in range(500):
        core.step(rng.integers(0, len(PRICE_STEPS), size=config.n_products))
        assert core.inventory.min() >= 0
        assert core.price.min() >= core.floor - 1e-9
        assert core.price.max() <= core.ceiling + 1e-9


def test_clearance_signal_only_on_the_last_step_of_its_window() -> None:
    env = PricingEnv(PricingConfig(clearance_window_hours=24.0, clearance_target=5))
    env.reset(seed=0)
    seen_end = 0
    for _ in range(400):
        _, reward, terminated, _, info = env.step(HOLD)
        signals = info["signals"]
        assert ("clearance_met" in signals) == terminated
        if terminated:
            seen_end += 1
            assert info["hours"] < 24.0
            assert reward == pytest.approx(pricing_reward(signals).total)
            env.reset(seed=seen_end)
    assert seen_end >= 2


def test_reward_matches_hand_computation_on_a_fixed_trajectory() -> None:
    # Sale at 110 with cost 60 after a +10% change: margin (110-60)/110, flicker 0.02.
    sale = {
        "converted": 1.0,
        "margin_rate": 50.0 / 110.0,
        "abandoned_cart": 0.0,
        "price_changes": 1.0,
    }
    abandon = {"converted": 0.0, "margin_rate": 0.4, "abandoned_cart": 1.0, "price_changes": 0.0}
    last = {
        "converted": 0.0,
        "margin_rate": 0.4,
        "abandoned_cart": 0.0,
        "price_changes": 0.0,
        "clearance_met": 1.0,
    }
    expected = [50.0 / 110.0 - 0.02, -0.5, 1.0]
    got = [pricing_reward(s).total for s in (sale, abandon, last)]
    assert got == pytest.approx(expected, abs=1e-12)
    arrays = {k: np.asarray([s.get(k, 0.0) for s in (sale, abandon, last)]) for k in last}
    assert vector_reward(pricing_reward, arrays).tolist() == pytest.approx(expected, abs=1e-12)


def test_env_step_reward_follows_the_core_signals() -> None:
    config = PricingConfig(initial_inventory=1000)
    env = PricingEnv(config)
    env.reset(seed=4)
    _, reward, _, _, info = env.step(PRICE_STEPS.index(0.10))
    signals = info["signals"]
    assert signals["price_changes"] == 1.0
    assert signals["margin_rate"] == pytest.approx((110.0 - 60.0) / 110.0)
    expected = (
        signals["converted"] * signals["margin_rate"] - 0.5 * signals["abandoned_cart"] - 0.02
    )
    assert reward == pytest.approx(expected)


def test_observation_columns_match_the_schema_built_by_name() -> None:
    core = PricingCore(replace(PricingConfig(), n_products=4), np.random.default_rng(0))
    core.step(np.zeros(4, dtype=np.int64))
    matrix = core.observe()
    for row in matrix:
        segment = SEGMENTS[int(np.argmax(row[COLUMN["segment=bargain"] :][:3]))]
        values: dict[str, float | int | bool | str] = {
            f.name: float(row[COLUMN[f.name]])
            for f in PRICING_SCHEMA.features
            if f.kind in ("float",)
        }
        values["weekend"] = bool(row[COLUMN["weekend"]])
        values["recent_views"] = int(row[COLUMN["recent_views"]])
        values["segment"] = segment
        assert np.array_equal(PRICING_SCHEMA.vector(values), row)
    assert len(PRICING_ACTIONS) == len(PRICE_STEPS)
