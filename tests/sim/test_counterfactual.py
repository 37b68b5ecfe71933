"""The simulator's one-step truth, the quantity off-policy estimators target.

Closed forms: for a deterministic logging policy, its own one-step value is exactly the
mean reward of its run (the copies draw the same random numbers as the original); and a
target's value is linear in its probabilities. Then IPS on a logged epsilon-greedy run
recovers a different policy's one-step value within its interval.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlops.learn.benchdata import EpsilonMix
from rlops.learn.simdata import pricing_logs
from rlops.sim.advisor_core import ADVISOR_SCHEMA, AdvisorConfig
from rlops.sim.baselines import AdvisorRules, FixedAction, PricingRules, UniformRandom
from rlops.sim.battery import BatteryConfig, evaluate
from rlops.sim.counterfactual import advisor_one_step_value, pricing_one_step_value
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA, PricingConfig
from rlops.sim.scenarios import scenario

RULES = PricingRules(PRICING_SCHEMA)
WORLD = PricingConfig(n_products=10)


def test_a_deterministic_policys_own_value_is_the_mean_reward_of_its_run() -> None:
    normal = scenario("pricing", "normal")
    world = normal.config.with_products(10)  # type: ignore[union-attr]
    truth = pricing_one_step_value(RULES, RULES, world, seed=7)
    run = evaluate(RULES, "pricing", config=BatteryConfig(seeds=(7,), pricing_products=10),
                   scenarios=[normal])  # fmt: skip
    assert truth == pytest.approx(run.metric("normal", "reward").mean, abs=1e-12)


def test_the_value_weighs_each_actions_reward_by_the_targets_probability() -> None:
    up, down = FixedAction("price_change"), FixedAction("price_change", largest=False)
    everything = EpsilonMix(up, 1.0)  # epsilon 1: uniform over every action
    values = [pricing_one_step_value(t, RULES, WORLD, seed=3) for t in (up, down, everything)]
    again = pricing_one_step_value(FixedAction("price_change"), RULES, WORLD, seed=3)
    assert again == values[0]  # seeded: the same call gives the same number
    uniform = pricing_one_step_value(UniformRandom(), RULES, WORLD, seed=3)
    assert values[2] == pytest.approx(uniform, abs=1e-12)
    assert values[0] != values[1]


def test_ips_on_logged_exploration_recovers_the_one_step_truth() -> None:
    logging = EpsilonMix(RULES, 0.5)
    target = FixedAction("price_change", largest=False)  # always the deepest cut
    truth = pricing_one_step_value(target, logging, WORLD, seed=11)
    data = pricing_logs(logging, WORLD, seed=11)  # the same run: same states, same draws
    probs = target.probabilities(data.features, PRICING_ACTIONS)
    terms = probs[np.arange(len(data)), data.actions] / data.propensities * data.rewards
    value, se = float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms)))
    assert abs(value - truth) < 2.0 * se, (value, truth, se)
    assert se < 0.3 * abs(truth)  # the check has teeth: the interval is narrow


def test_the_advisor_has_its_one_step_truth_too() -> None:
    config = AdvisorConfig(n_users=20)
    rules = AdvisorRules(ADVISOR_SCHEMA)
    spec = MarketSpec()
    own = advisor_one_step_value(rules, rules, config, spec, seed=2, max_days=10)
    other = advisor_one_step_value(UniformRandom(), rules, config, spec, seed=2, max_days=10)
    assert np.isfinite(own) and np.isfinite(other) and own != other
