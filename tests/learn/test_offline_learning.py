"""Learning thresholds for the offline learners, seeded, on the simulators and CartPole.

- Pricing: CQL trained on the rule engine's logs (with 30% uniform exploration) beats
  the rule engine on held-out simulator seeds, in every scenario of the battery.
- Apprentice: behaviour cloning of the rule engine matches it on held-out products
  above 0.9 and may act; with a threshold above what it reached it may not.
- CartPole: CQL from a poor balancer's logs (mean return about 45) balances far longer.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rlops.learn.apprentice import ApprenticeConfig, train_apprentice
from rlops.learn.bc import BCConfig
from rlops.learn.benchdata import (
    CartPoleBalancer,
    EpsilonMix,
    cartpole_logs,
    cartpole_returns,
    pricing_rule_logs,
)
from rlops.learn.cql import CQLConfig, train_cql
from rlops.learn.simdata import pricing_logs
from rlops.sim.baselines import PricingRules
from rlops.sim.battery import BatteryConfig, evaluate
from rlops.sim.pricing_core import PRICING_SCHEMA, PricingConfig

pytestmark = pytest.mark.slow

# Per-visit reward margin CQL must clear over the rules in the default market. Across
# training seeds 0-2 it clears 0.045-0.066 (rules: 0.001; holding the price: 0.028).
PRICING_MARGIN = 0.02
PRICING_CQL = CQLConfig(steps=3000, gamma=0.9, alpha=0.1, seed=0)
CARTPOLE_CQL = CQLConfig(steps=3000, gamma=0.99, alpha=0.5, seed=0)
CARTPOLE_MIN_RETURN = 200.0


def test_cql_on_the_rule_engines_logs_beats_the_rule_engine() -> None:
    start = time.perf_counter()
    logs = pricing_rule_logs(products=50, seed=10, epsilon=0.3)
    result = train_cql(logs, PRICING_CQL)
    battery = BatteryConfig(seeds=(100, 101), pricing_products=100)
    rules = evaluate(PricingRules(PRICING_SCHEMA), "pricing", config=battery)
    cql = evaluate(result.policy, "pricing", config=battery)
    lines = []
    for scenario in cql.scenarios:
        ours = scenario.metrics["reward"].mean
        theirs = rules.metric(scenario.scenario, "reward").mean
        lines.append(f"{scenario.scenario}: cql {ours:.4f} rules {theirs:.4f}")
        assert ours > theirs, lines[-1]
    print("\n".join(lines), f"\n{time.perf_counter() - start:.1f}s")
    normal = cql.metric("normal", "reward").mean - rules.metric("normal", "reward").mean
    assert normal > PRICING_MARGIN, lines


def test_apprentice_clones_the_rule_engine_and_may_act() -> None:
    rules = PricingRules(PRICING_SCHEMA)
    logs = pricing_logs(rules, PricingConfig(n_products=20), seed=3)
    config = ApprenticeConfig(bc=BCConfig(steps=1000), threshold=0.9)
    apprentice = train_apprentice(logs, config)
    report = apprentice.report
    print(report)
    assert report.match_rate > 0.9 and report.may_act
    assert report.n_holdout > 2000
    # The clone now serves, and agrees with the rules on fresh states.
    fresh = pricing_logs(rules, PricingConfig(n_products=5), seed=4).features
    serving = apprentice.serving(rules)
    assert serving.acting and serving.agreement(fresh, logs.catalog) > 0.9

    strict = train_apprentice(logs, ApprenticeConfig(bc=config.bc, threshold=0.995))
    assert strict.report.match_rate == report.match_rate  # same seed, same clone
    assert not strict.report.may_act
    held_back = strict.serving(rules)
    np.testing.assert_array_equal(
        held_back.probabilities(fresh, logs.catalog), rules.probabilities(fresh, logs.catalog)
    )


def test_cql_balances_cartpole_from_a_poor_controllers_logs() -> None:
    logger = EpsilonMix(CartPoleBalancer(), 0.5)
    logs = cartpole_logs(logger, episodes=200, seed=0)
    logged_return = len(logs) / 200
    result = train_cql(logs, CARTPOLE_CQL)
    returns = cartpole_returns(result.policy, episodes=10, seed=1000)
    print(f"logged {logged_return:.1f}, cql {returns.mean():.1f}")
    assert logged_return < 60.0
    assert returns.mean() >= CARTPOLE_MIN_RETURN
