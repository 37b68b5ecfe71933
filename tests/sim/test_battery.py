"""The battery on both apps, the gate, thresholds files and the vectorized reward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlops.core.errors import ValidationError
from rlops.rewards import advisor_reward, pricing_reward
from rlops.sim.baselines import AdvisorRules, FixedAction, PricingRules, act, named_policy
from rlops.sim.battery import BatteryConfig, evaluate
from rlops.sim.gate import Threshold, Thresholds, check, run_gate
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA
from rlops.sim.scenarios import scenarios_for
from rlops.sim.vector_reward import vector_reward

FAST = BatteryConfig(seeds=(0, 1), pricing_products=40, advisor_users=40, advisor_max_days=40)


@pytest.mark.parametrize("app", ["pricing", "advisor"])
def test_battery_runs_every_scenario_with_baseline_rules(app: str) -> None:
    result = evaluate(named_policy(app, "baseline"), app, config=FAST, policy_name="baseline")
    assert [r.scenario for r in result.scenarios] == [s.name for s in scenarios_for(app)]
    table = result.table()
    for r in result.scenarios:
        assert r.scenario in table
        for summary in r.metrics.values():
            assert summary.low <= summary.mean <= summary.high
            assert len(summary.values) == 2
    assert json.loads(json.dumps(result.to_json()))["app"] == app


@pytest.mark.parametrize(("app", "scenario"), [("pricing", "normal"), ("advisor", "crisis_2008")])
def test_bad_policy_fails_the_shipped_gate_naming_the_scenario(app: str, scenario: str) -> None:
    result = run_gate(named_policy(app, "bad"), Thresholds.default(app), config=FAST)
    assert not result.passed
    failing = {f.scenario for f in result.failures}
    assert scenario in failing
    assert f"FAIL {scenario}" in result.report()


def test_baseline_passes_its_own_relative_gate() -> None:
    rules = Thresholds("pricing", (Threshold("reward", -1e-12, relative_to="baseline_delta"),))
    assert run_gate(named_policy("pricing", "baseline"), rules, config=FAST).passed


def test_thresholds_load_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text(
        'app = "advisor"\n[[thresholds]]\n'
        'metric = "reward"\nvalue = 0.5\nscenario = "crisis_2008"\n'
    )
    loaded = Thresholds.load(tmp_path / "t.toml")
    assert loaded.rules == (Threshold("reward", 0.5, scenario="crisis_2008"),)
    (tmp_path / "t.json").write_text(json.dumps({"app": "pricing", "thresholds": []}))
    with pytest.raises(ValidationError):
        Thresholds.load(tmp_path / "t.json")
    with pytest.raises(ValidationError):
        Threshold("reward", 0.0, op="==")  # type: ignore[arg-type]


def test_relative_thresholds_need_the_baseline() -> None:
    result = evaluate(
        FixedAction("price_change"), "pricing", config=FAST, scenarios=scenarios_for("pricing")[:1]
    )
    rules = Thresholds("pricing", (Threshold("reward", 0.0, relative_to="baseline_delta"),))
    with pytest.raises(ValidationError):
        check(result, rules)


def test_rule_engines_return_distributions_and_act_samples_them() -> None:
    rng = np.random.default_rng(0)
    features = rng.random((64, PRICING_SCHEMA.dim)).astype(np.float32)
    probs = PricingRules(PRICING_SCHEMA).probabilities(features, PRICING_ACTIONS)
    assert probs.shape == (64, len(PRICING_ACTIONS))
    assert np.allclose(probs.sum(axis=1), 1.0)
    index, propensity = act(PricingRules(PRICING_SCHEMA), features, PRICING_ACTIONS, rng)
    assert np.array_equal(index, probs.argmax(axis=1))
    assert np.all(propensity == 1.0)
    uniform = named_policy("pricing", "random")
    _, propensity = act(uniform, features, PRICING_ACTIONS, rng)
    assert np.allclose(propensity, 1.0 / len(PRICING_ACTIONS))
    assert isinstance(named_policy("advisor", "baseline"), AdvisorRules)


@pytest.mark.parametrize("reward", [pricing_reward, advisor_reward])
def test_vector_reward_equals_the_scalar_reward(reward: object) -> None:
    from rlops.rewards import RewardFunction

    assert isinstance(reward, RewardFunction)
    rng = np.random.default_rng(0)
    names = sorted(
        {
            p
            for t in reward.spec.terms
            for k, p in t.params.items()
            if k in ("signal", "numerator", "denominator", "left", "right")
        }
    )
    signals = {name: rng.normal(size=100) for name in names}
    totals = vector_reward(reward, signals)
    for i in range(100):
        scalar = reward({name: float(values[i]) for name, values in signals.items()}).total
        assert totals[i] == scalar
