"""Masks and the serving stack: rules hold, the trust region holds, exploration is logged."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.exploration import ExplorationConfig, Explorer, Schedule
from rlops.policies import RulesPolicy, kl_divergence
from rlops.policies.stack import PolicyStack, SafetyConfig, sample
from rlops.safety import ContextRule, FlickerLimit, PriceBand, StaticMask, mask_from_json
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA
from rlops.sim.baselines import FixedAction, PricingRules
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA
from tests.policies.conftest import FAMILIES, contexts

AGGRESSIVE = 0.12


def test_no_aggressive_strategy_for_a_low_risk_user() -> None:
    rule = ContextRule("risk_tolerance", "<", 0.3, "target_vol", ">", AGGRESSIVE)
    stack = PolicyStack(
        RulesPolicy.of(FixedAction("target_vol")), ADVISOR_SCHEMA, SafetyConfig(masks=(rule,))
    )
    x = contexts(ADVISOR_SCHEMA, 300)
    risk = x[:, ADVISOR_SCHEMA.columns.index("risk_tolerance")]
    vols = ADVISOR_ACTIONS.feature_matrix()[:, ADVISOR_ACTIONS.feature_names.index("target_vol")]
    decisions = stack.decide(x, ADVISOR_ACTIONS, np.random.default_rng(1))
    chosen = vols[decisions.index]
    assert np.all(chosen[risk < 0.3] <= AGGRESSIVE)
    assert np.any(risk < 0.3) and np.any(risk >= 0.3)
    # Others still get the most aggressive strategy the fixed policy asks for.
    assert np.all(chosen[risk >= 0.3] == vols.max())


def test_prices_stay_within_floor_and_ceiling() -> None:
    band = PriceBand(floor=0.8, ceiling=1.2)
    price = PRICING_SCHEMA.columns.index("price_ratio")
    x = contexts(PRICING_SCHEMA, 400)
    x[:, price] = np.linspace(0.7, 1.3, 400)
    always_up = RulesPolicy.of(FixedAction("price_change", largest=True))
    stack = PolicyStack(always_up, PRICING_SCHEMA, SafetyConfig(masks=(band,)))
    decisions = stack.decide(x, PRICING_ACTIONS, np.random.default_rng(0))
    change = PRICING_ACTIONS.feature_matrix()[decisions.index, 0]
    new = x[:, price] * (1 + change)
    inside = (x[:, price] >= 0.8) & (x[:, price] <= 1.2)
    assert np.all(new[inside] <= 1.2 + 1e-6)
    # Below the floor, the best the policy wants (raise) is a move towards the band.
    below = x[:, price] < 0.8
    assert np.all(new[below] > x[below, price])


def test_at_most_n_price_changes_per_product_per_day() -> None:
    limit = FlickerLimit(max_changes=2)
    stack = PolicyStack(
        RulesPolicy.of(FixedAction("price_change")), PRICING_SCHEMA, SafetyConfig(masks=(limit,))
    )
    x = contexts(PRICING_SCHEMA, 1)
    hold = PRICING_ACTIONS.index("price+0pct")
    chosen = []
    for hour in range(30):
        d = stack.decide(x, PRICING_ACTIONS, np.random.default_rng(hour), ["p1"], [hour * 3600.0])
        chosen.append(int(d.index[0]))
    changes_day0 = sum(c != hold for c in chosen[:24])
    assert changes_day0 == 2
    assert chosen[24] != hold  # a new day, a new allowance
    other = stack.decide(x, PRICING_ACTIONS, np.random.default_rng(0), ["p2"], [10 * 3600.0])
    assert other.index[0] != hold  # per product


def test_masks_round_trip_through_json() -> None:
    masks = (
        StaticMask(allow=("a", "b")),
        ContextRule("risk_tolerance", "<", 0.3, "target_vol", ">", 0.12),
        PriceBand(0.7, 1.4),
        FlickerLimit(3),
    )
    config = SafetyConfig(masks=masks, kl_bound=0.05, baseline_floor=0.02)
    assert SafetyConfig.from_json(config.to_json()) == config
    with pytest.raises(ValidationError):
        mask_from_json({"kind": "astrology"})
    with pytest.raises(ValidationError):
        mask_from_json({"kind": "price_band", "floor": 2.0, "ceiling": 1.0})
    with pytest.raises(ValidationError):
        ContextRule("risk_tolerance", "~", 0.3, "target_vol", ">", 0.12)  # type: ignore[arg-type]  # a wrong operator on purpose


def test_masks_that_leave_nothing_are_a_clear_error() -> None:
    stack = PolicyStack(
        RulesPolicy.of(FixedAction("target_vol")),
        ADVISOR_SCHEMA,
        SafetyConfig(masks=(StaticMask(allow=("nope",)),)),
    )
    with pytest.raises(ValidationError, match="no action"):
        stack.decide(contexts(ADVISOR_SCHEMA, 2), ADVISOR_ACTIONS, np.random.default_rng(0))


def test_served_distribution_stays_in_the_trust_region_with_exploration() -> None:
    policy, schema, catalog = FAMILIES["linear"](np.random.default_rng(5))
    baseline = RulesPolicy.of(PricingRules(PRICING_SCHEMA))
    explorer = Explorer(
        ExplorationConfig("epsilon", Schedule("constant", 0.1), floor=0.02), ManualClock()
    )
    bound = 0.05
    stack = PolicyStack(
        policy, schema, SafetyConfig(kl_bound=bound), explorer=explorer, baseline=baseline
    )
    x = contexts(schema, 500)
    decisions = stack.decide(x, catalog, np.random.default_rng(0))
    allowed = np.ones((500, len(catalog)), dtype=bool)
    from rlops.exploration import with_floor

    base = with_floor(baseline.probabilities(x, catalog), allowed, 0.02)
    kl = kl_divergence(decisions.probs, base)
    assert np.all(kl <= bound + 1e-12)
    assert np.any(decisions.baseline_weight > 0)
    assert np.all(decisions.probs >= 0.02 * (1 - decisions.baseline_weight[:, None]) - 1e-12)
    assert explorer.decisions == 500


def test_a_trust_region_without_baseline_is_refused() -> None:
    policy, schema, _ = FAMILIES["linear"](np.random.default_rng(5))
    with pytest.raises(ValidationError):
        PolicyStack(policy, schema, SafetyConfig(kl_bound=0.1))


def test_same_seed_same_decisions_and_explored_flags() -> None:
    policy, schema, catalog = FAMILIES["mlp_q"](np.random.default_rng(2))
    config = ExplorationConfig("epsilon", Schedule("constant", 0.3))
    x = contexts(schema, 400)
    runs = [
        PolicyStack(policy, schema, explorer=Explorer(config, ManualClock())).decide(
            x, catalog, np.random.default_rng(42)
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].index, runs[1].index)
    greedy_choice = np.argmax(policy.probabilities(x, catalog), axis=1)
    np.testing.assert_array_equal(runs[0].explored, runs[0].index != greedy_choice)
    explored_share = runs[0].explored.mean()
    k = len(catalog)
    assert explored_share == pytest.approx(0.3 * (k - 1) / k, abs=0.06)
    assert np.all(runs[0].propensity[~runs[0].explored] == pytest.approx(0.7 + 0.3 / k))


def test_sampling_never_picks_a_zero_probability_action() -> None:
    probs = np.array([[0.0, 0.5, 0.5, 0.0]] * 4)
    index = sample(probs, np.array([0.0, 0.5, 1.0 - 1e-17, 1.0]))
    assert set(index.tolist()) <= {1, 2}
