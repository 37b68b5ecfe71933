"""The gate's three checks, closed forms first, then one full run stored and used to promote.

Logs here are uniform over five actions with reward 1 exactly when action 1 was logged,
so "always action 1" (v2) is worth 1, "always action 0" (v1) is worth 0 and the logging
policy 0.2: SNIPS recovers these exactly and the verdicts are known in advance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.core.errors import ValidationError
from rlops.policies import RulesPolicy
from rlops.registry.gate_record import GateRecord
from rlops.registry.gates import GateConfig, evaluate_gate, kl_check, off_policy_check
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.sim.baselines import FixedAction, UniformRandom, named_policy
from rlops.sim.battery import BatteryConfig
from rlops.sim.gate import Threshold, Thresholds
from rlops.sim.scenarios import scenarios_for
from tests.registry.conftest import CATALOG, NAME, SCHEMA, logged_examples, register_fixed

TINY = BatteryConfig(seeds=(0,), pricing_products=5)
FAST = GateConfig(n_resamples=200)


def test_kl_is_zero_against_itself_and_closed_form_against_a_floored_one_hot() -> None:
    x = np.zeros((4, SCHEMA.dim), dtype=np.float32)
    uniform = UniformRandom()
    same = kl_check(uniform, uniform, x, CATALOG, bound=0.1, floor=0.0)
    assert same.mean_kl == pytest.approx(0.0) and same.passed
    k, floor = len(CATALOG), 0.05
    action = FixedAction("price_change")
    agree = kl_check(action, action, x, CATALOG, bound=0.25, floor=floor)
    # KL(one-hot || (1 - k f) one-hot + f) = -log(1 - (k - 1) f)
    assert agree.mean_kl == pytest.approx(-math.log(1 - (k - 1) * floor))
    assert agree.passed
    strict = kl_check(action, action, x, CATALOG, bound=0.2, floor=floor)
    assert not strict.passed
    unfloored = kl_check(uniform, action, x, CATALOG, bound=1.0, floor=0.0)
    assert math.isinf(unfloored.mean_kl) and not unfloored.passed


def test_the_lower_bound_must_reach_the_incumbent(sqlite_registry: Registry) -> None:
    v1, v2 = register_fixed(sqlite_registry, 0), register_fixed(sqlite_registry, 1)
    bad, good = sqlite_registry.load(NAME, v1), sqlite_registry.load(NAME, v2)
    examples = logged_examples(500, best=1)
    first = off_policy_check(good, None, examples, FAST)
    assert first.reference_policy == "logging"
    assert first.reference == pytest.approx(np.mean([e.reward for e in examples]))
    assert first.value == pytest.approx(1.0) and first.passed
    upgrade = off_policy_check(good, bad, examples, FAST)
    assert (upgrade.reference, upgrade.reference_policy, upgrade.n) == (0.0, v1, 500)
    assert upgrade.passed
    downgrade = off_policy_check(bad, good, examples, FAST)
    assert downgrade.value == pytest.approx(0.0) and downgrade.reference == pytest.approx(1.0)
    assert not downgrade.passed
    doubly_robust = off_policy_check(
        good, bad, examples, GateConfig(estimator="dr", n_resamples=200)
    )
    assert doubly_robust.estimator == "dr" and doubly_robust.passed
    assert doubly_robust.low <= doubly_robust.value <= doubly_robust.high


@pytest.mark.parametrize(
    "settings",
    [
        {"estimator": "magic"},
        {"level": 1.0},
        {"kl_bound": -1.0},
        {"kl_bound": math.inf},
        {"baseline_floor": 2.0},
        {"n_resamples": 1},
    ],
)
def test_bad_gate_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GateConfig(**settings)  # type: ignore[arg-type]  # the table mixes types on purpose
    with pytest.raises(ValidationError):
        GateConfig.from_json({"estimator": "snips", "surprise": 1})
    assert GateConfig.from_json(FAST.to_json()) == FAST


def test_a_full_gate_is_stored_and_opens_production(sqlite_registry: Registry) -> None:
    registry = sqlite_registry
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    registry.promote(NAME, v1, force=True, reason="first release")
    thresholds = Thresholds("pricing", (Threshold("reward", -1e6), Threshold("reward", 1e6, "<=")))
    record = evaluate_gate(
        registry,
        NAME,
        v2,
        examples=logged_examples(300, best=1),
        thresholds=thresholds,
        baseline=UniformRandom(),
        baseline_name="uniform",
        battery_config=TINY,
        config=GateConfig(n_resamples=200, kl_bound=2.0),
        actor="ci",
    )
    assert record.passed, record.failures()
    assert record.against_version == v1 and record.created_by == "ci"
    assert record.battery.app == "pricing" and record.battery.seeds == (0,)
    assert len(record.battery.checks) == 2 * len(scenarios_for("pricing"))  # two rules each
    # KL(one-hot || uniform) = log k, under the bound of 2 nats.
    assert record.kl.mean_kl == pytest.approx(math.log(len(CATALOG)))
    assert registry.gate(NAME, v2) == record
    assert GateRecord.from_json(record.to_json()) == record
    assert registry.promote(NAME, v2, actor="ci").version == v2
    assert [e.forced for e in registry.history(NAME, PRODUCTION)] == [True, False]


def test_a_gate_on_logs_it_cannot_read_stores_nothing(sqlite_registry: Registry) -> None:
    registry = sqlite_registry
    v2 = register_fixed(registry, 1)
    examples = logged_examples(20, best=1)
    foreign = [
        type(e)(**{**e.to_json(), "action_ids": ("x", "y"), "action_id": "x"}) for e in examples
    ]
    thresholds = Thresholds("pricing", (Threshold("reward", -1e6),))
    for logs, app in ((foreign, "pricing"), (examples, "advisor"), ([], "pricing")):
        with pytest.raises(ValidationError):
            evaluate_gate(
                registry,
                NAME,
                v2,
                examples=logs,
                thresholds=Thresholds(app, thresholds.rules),
                baseline=named_policy("pricing", "baseline"),
                battery_config=TINY,
                config=FAST,
            )
    assert registry.gate(NAME, v2) is None


def test_rule_engines_register_and_gate_like_any_family(sqlite_registry: Registry) -> None:
    from rlops.sim.baselines import PricingRules

    record = sqlite_registry.register_policy(
        RulesPolicy.of(PricingRules(SCHEMA)), name=NAME, schema=SCHEMA, catalog=CATALOG
    )
    loaded = sqlite_registry.load(NAME, record.version)
    check = kl_check(
        loaded.policy,
        named_policy("pricing", "baseline"),
        np.zeros((3, SCHEMA.dim), dtype=np.float32),
        CATALOG,
        bound=0.5,
        floor=0.05,
    )
    assert check.passed  # the rules against themselves: only the floor's cost
